"""Reminders through the chat, end to end: the rule-based agent against the real todo service
(MCP over HTTP), whose scheduler step (``todo_service.scheduler.fire_due``, what the worker's
loop runs) turns a due reminder into a notification. The tasks and notifications are read
back through the todo service's REST API.

The clock of both services is frozen at Friday 2026-11-27 14:30 UTC; turns are read in UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from tests.chat.conftest import NOW, User
from tests.support.serving import serve
from tests.support.tokens import TestIssuer
from todo_service.app import create_app as create_todo_app
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings


@pytest.fixture
async def todo(
    migrated_url: str, committed_database: Database, issuer: TestIssuer, clock: FrozenClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The todo service's REST API in process, on the database the chat's todo server uses."""
    settings = TodoSettings(_env_file=None, environment="test", database_url=migrated_url)
    app = create_todo_app(settings, db=committed_database, verifier=issuer.verifier(), clock=clock)
    async with serve(app) as client:
        yield client


async def say(
    agent: httpx.AsyncClient, user: User, message: str, conversation: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if conversation is not None:
        body["conversation_id"] = conversation
    response = await agent.post("/api/chat", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def names(answer: dict[str, Any]) -> list[str]:
    return [call["name"] for call in answer["tool_calls"]]


async def task_of(todo: httpx.AsyncClient, user: User, task_id: int) -> dict[str, Any]:
    response = await todo.get(f"/api/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def unread(todo: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await todo.get("/api/notifications", params={"unread": "true"}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def fired_reminder(
    todo: httpx.AsyncClient, db: Database, user: User, title: str
) -> dict[str, Any]:
    """A task of ``user`` whose reminder fell due: one unread notification about it."""
    created = await todo.post(
        "/api/tasks",
        json={"title": title, "reminders": [{"at": (NOW + timedelta(minutes=5)).isoformat()}]},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    assert await fire_due(db, now=NOW + timedelta(minutes=5), batch=100) >= 1
    [notification] = [n for n in await unread(todo, user) if n["task_title"] == title]
    return notification


async def test_remind_me_at_5pm_adds_the_task_with_a_reminder_then(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, alice: User
) -> None:
    answer = await say(agent, alice, "remind me at 5pm to call mum")
    [call] = answer["tool_calls"]
    assert call["name"] == "add_task"
    assert call["arguments"] == {
        "title": "Call mum",
        "reminders": [{"at": "2026-11-27T17:00:00+00:00"}],
    }
    task = await task_of(todo, alice, call["result"]["task_id"])
    assert task["due_at"] is None
    assert [instant(r["fires_at"]) for r in task["reminders"]] == [instant("2026-11-27T17:00Z")]
    assert "remind you today at 17:00" in answer["response"]


async def test_remind_me_in_10_minutes_fires_ten_minutes_later(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    answer = await say(agent, alice, "remind me in 10 minutes to stretch")
    task_id = answer["tool_calls"][0]["result"]["task_id"]
    assert await fire_due(committed_database, now=NOW + timedelta(minutes=9), batch=100) == 0
    assert await fire_due(committed_database, now=NOW + timedelta(minutes=10), batch=100) == 1
    [notification] = await unread(todo, alice)
    assert notification["task_id"] == task_id
    assert notification["task_title"] == "Stretch"


async def test_remind_me_to_call_the_dentist_on_friday_sets_the_due_date_and_a_reminder(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, alice: User
) -> None:
    answer = await say(agent, alice, "remind me to call the dentist on Friday at 3pm")
    [call] = answer["tool_calls"]
    assert call["arguments"] == {
        "title": "Call the dentist",
        "due_at": "2026-12-04T15:00:00+00:00",
        "reminders": [{"before_due_minutes": 0}],
    }
    task = await task_of(todo, alice, call["result"]["task_id"])
    assert instant(task["due_at"]) == instant("2026-12-04T15:00Z")
    [reminder] = task["reminders"]
    assert reminder["at"] is None
    assert reminder["before_due_minutes"] == 0
    assert instant(reminder["fires_at"]) == instant("2026-12-04T15:00Z")


async def test_remind_me_an_hour_before_is_about_the_task_in_context(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, alice: User
) -> None:
    added = await say(agent, alice, "add dentist appointment on monday at 10am")
    task_id = added["tool_calls"][0]["result"]["task_id"]
    answer = await say(agent, alice, "remind me an hour before", added["conversation_id"])
    assert answer["tool_calls"][0]["name"] == "update_task"
    assert answer["tool_calls"][0]["arguments"] == {
        "task_id": task_id,
        "reminders": [{"before_due_minutes": 60}],
    }
    task = await task_of(todo, alice, task_id)
    assert [instant(r["fires_at"]) for r in task["reminders"]] == [instant("2026-11-30T09:00Z")]
    assert "an hour before it's due" in answer["response"]


async def test_a_reminder_before_a_task_without_a_due_date_is_explained_not_set(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, alice: User
) -> None:
    added = await say(agent, alice, "add call the bank")
    task_id = added["tool_calls"][0]["result"]["task_id"]
    answer = await say(agent, alice, "remind me an hour before", added["conversation_id"])
    [call] = answer["tool_calls"]
    assert call["result"]["code"] == "invalid"
    assert "Sorry" in answer["response"]
    assert (await task_of(todo, alice, task_id))["reminders"] == []


async def test_stop_reminding_me_about_the_dentist_removes_its_reminders(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, alice: User
) -> None:
    due = (NOW + timedelta(days=3)).isoformat()
    for title in ("Dentist appointment", "Buy milk"):
        created = await todo.post(
            "/api/tasks",
            json={"title": title, "due_at": due, "reminders": [{"before_due_minutes": 60}]},
            headers=alice.headers,
        )
        assert created.status_code == 201, created.text
    dentist, milk = (t for t in (await todo.get("/api/tasks", headers=alice.headers)).json()[::-1])
    answer = await say(agent, alice, "stop reminding me about the dentist")
    assert names(answer) == ["list_tasks", "update_task"]
    assert answer["tool_calls"][1]["arguments"] == {"task_id": dentist["id"], "reminders": []}
    assert (await task_of(todo, alice, dentist["id"]))["reminders"] == []
    assert len((await task_of(todo, alice, milk["id"]))["reminders"]) == 1


async def test_remind_me_again_in_10_minutes_snoozes_the_latest_unread_reminder(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    await fired_reminder(todo, committed_database, alice, "Older one")
    latest = await fired_reminder(todo, committed_database, alice, "Call the plumber")
    answer = await say(agent, alice, "remind me again in 10 minutes")
    assert names(answer) == ["list_notifications", "snooze_notification"]
    assert answer["tool_calls"][0]["arguments"] == {"unread_only": True, "limit": 1}
    assert answer["tool_calls"][1]["arguments"] == {
        "notification_id": latest["id"],
        "minutes": 10,
    }
    assert answer["tool_calls"][1]["result"]["read_at"] is not None
    assert "again in 10 minutes" in answer["response"]
    assert [n["task_title"] for n in await unread(todo, alice)] == ["Older one"]
    # The task's one-off reminder fires a new notification ten minutes on (the todo clock).
    assert await fire_due(committed_database, now=NOW + timedelta(minutes=10), batch=100) == 1
    assert [n["task_title"] for n in await unread(todo, alice)] == [
        "Call the plumber",
        "Older one",
    ]


async def test_dismiss_it_marks_the_latest_reminder_read_and_it_is_the_task_in_context(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    latest = await fired_reminder(todo, committed_database, alice, "Water the plants")
    answer = await say(agent, alice, "dismiss it")
    assert names(answer) == ["list_notifications", "dismiss_notification"]
    assert answer["tool_calls"][1]["arguments"] == {"notification_id": latest["id"]}
    assert await unread(todo, alice) == []
    # "it" is now the reminder's task.
    done = await say(agent, alice, "mark it as done", answer["conversation_id"])
    assert done["tool_calls"][0]["arguments"] == {"task_id": latest["task_id"]}


async def test_got_it_dismisses_an_unread_reminder_and_is_only_thanks_without_one(
    agent: httpx.AsyncClient, todo: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    quiet = await say(agent, alice, "got it")
    assert names(quiet) == ["list_notifications"]
    assert quiet["response"] == "You're welcome! Anything else I can do for your tasks?"
    await fired_reminder(todo, committed_database, alice, "Feed the cat")
    answer = await say(agent, alice, "got it")
    assert names(answer) == ["list_notifications", "dismiss_notification"]
    assert await unread(todo, alice) == []


async def test_another_users_reminder_is_never_snoozed_or_dismissed(
    agent: httpx.AsyncClient,
    todo: httpx.AsyncClient,
    committed_database: Database,
    alice: User,
    bob: User,
) -> None:
    bobs = await fired_reminder(todo, committed_database, bob, "Bob's secret")
    for message in ("remind me again in 10 minutes", "dismiss it"):
        answer = await say(agent, alice, message)
        assert names(answer) == ["list_notifications"]
        assert answer["tool_calls"][0]["result"] == []
        assert "no unread reminders" in answer["response"]
    assert [n["id"] for n in await unread(todo, bob)] == [bobs["id"]]
