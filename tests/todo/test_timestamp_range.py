"""Timestamps at the ends of the calendar: an instant whose UTC form leaves Python's range (a
small offset on the year 1 or 9999) was a 500, and its two ends, which the driver stores as
PostgreSQL's -infinity and infinity, read back as no date at all. Both are refused as invalid
input wherever a timestamp comes in: bodies, list filters, cursors, MCP tool arguments."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from shared.db import Database
from tests.support.errors import assert_error
from tests.todo.conftest import NOW, Snapshot, User, create
from todo_service.scheduler import fire_due

# Past the year 1 or 9999 once in UTC, and exactly the range's two ends.
OUT_OF_RANGE = [
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:30:00-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
]


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["due_at", "reminder"])
async def test_a_timestamp_outside_the_calendar_is_422_and_stores_nothing(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, instant: str, field: str
) -> None:
    body: dict[str, Any] = {"title": "x"}
    if field == "due_at":
        body["due_at"] = instant
    else:
        body["reminders"] = [{"at": instant}]
    task = await create(client, alice, title="kept")
    before = await snapshot()
    created = await client.post("/api/tasks", json=body, headers=alice.headers)
    assert_error(created, 422, "validation_error")
    patched = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert_error(patched, 422, "validation_error")
    replaced = await client.put(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert_error(replaced, 422, "validation_error")
    assert await snapshot() == before


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
@pytest.mark.parametrize(
    "parameter", ["due_before", "due_after", "completed_before", "completed_after"]
)
async def test_a_list_filter_outside_the_calendar_is_422(
    client: httpx.AsyncClient, alice: User, instant: str, parameter: str
) -> None:
    response = await client.get("/api/tasks", params={parameter: instant}, headers=alice.headers)
    assert_error(response, 422, "validation_error")


def _forge(payload: Any) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("key", OUT_OF_RANGE[:2])
@pytest.mark.parametrize("sort", ["created", "updated", "due"])
async def test_a_cursor_past_the_calendar_is_400(
    client: httpx.AsyncClient, alice: User, sort: str, key: str
) -> None:
    cursor = _forge({"s": sort, "o": "desc", "k": key, "i": 5})
    response = await client.get(
        "/api/tasks",
        params={"sort": sort, "order": "desc", "cursor": cursor},
        headers=alice.headers,
    )
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("recurrence", ["daily", "weekly", "monthly"])
async def test_a_series_whose_next_date_would_be_the_last_instant_ends(
    client: httpx.AsyncClient, alice: User, recurrence: str
) -> None:
    due = {
        "daily": "9999-12-30T23:59:59.999999Z",
        "weekly": "9999-12-24T23:59:59.999999Z",
        "monthly": "9999-11-30T23:59:59.999999Z",
    }[recurrence]
    # A reminder an hour before the due date: carried forward, it would be after the range.
    task = await create(
        client,
        alice,
        recurrence=recurrence,
        due_at=due,
        reminders=[{"at": due[:11] + "22:59:59.999999Z"}],
    )
    done = await client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    assert done.status_code == 200, done.text
    if recurrence == "monthly":
        # 9999-12-30: still a date; its reminder is carried as far (still in range).
        following = await client.get(
            f"/api/tasks/{done.json()['next_occurrence_id']}", headers=alice.headers
        )
        assert following.json()["due_at"] == "9999-12-30T23:59:59.999999Z"
        return
    assert done.json()["next_occurrence_id"] is None
    listed = await client.get("/api/tasks", headers=alice.headers)
    assert [t["id"] for t in listed.json()] == [task["id"]]


async def test_a_reminder_carried_to_the_last_instant_is_dropped_not_stored_as_infinity(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        recurrence="daily",
        due_at="9999-12-29T00:00:00Z",
        reminders=[{"at": "9999-12-30T23:59:59.999999Z"}, {"at": "9999-12-28T09:00:00Z"}],
    )
    done = await client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    following = await client.get(
        f"/api/tasks/{done.json()['next_occurrence_id']}", headers=alice.headers
    )
    assert following.json()["due_at"] == "9999-12-30T00:00:00.000000Z"
    assert [r["at"] for r in following.json()["reminders"]] == ["9999-12-29T09:00:00.000000Z"]


@pytest.mark.parametrize("due_at", ["0001-01-01T00:00:30Z", "0001-01-01T00:05:00Z"])
async def test_an_offset_reminder_before_the_first_instant_fires_and_its_notification_reads(
    client: httpx.AsyncClient, database: Database, alice: User, due_at: str
) -> None:
    """Minutes before a due date in the first minutes of the year 1 are before the calendar,
    or exactly at its start (which the driver writes as -infinity): the reminder fires at
    once, as of the first instant there is, and its notification is read back with that
    time, not as no time at all."""
    task = await create(client, alice, due_at=due_at, reminders=[{"before_due_minutes": 5}])

    assert await fire_due(database, now=NOW, batch=10) == 1

    listed = await client.get("/api/notifications", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    [notification] = listed.json()
    assert notification["task_id"] == task["id"]
    assert notification["remind_at"] == "0001-01-01T00:00:00.000001Z"
    assert task["reminders"][0]["fires_at"] == "0001-01-01T00:00:00.000001Z"
