"""Several requests in one message with the rule-based agent ("add milk and delete task 3"),
against the real todo service: each runs as it would alone, in the order said, and no task
is ever named after another request."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.chat.conftest import ChatAppFactory, User, stored_messages
from tests.chat.test_rules_agent import add, calls, turn
from tests.support.serving import serve


async def titles(client: httpx.AsyncClient, user: User) -> list[str]:
    listed = await turn(client, user, "show all my tasks")
    return sorted(task["title"] for task in listed["tool_calls"][0]["result"])


async def test_an_add_and_a_delete_both_run_in_the_order_said(
    agent: httpx.AsyncClient, alice: User
) -> None:
    old = await add(agent, alice, "Old chore")
    answer = await turn(agent, alice, f"add milk and delete task {old}")
    new = answer["tool_calls"][0]["result"]["task_id"]
    assert calls(answer) == [
        ("add_task", {"title": "Milk"}),
        ("delete_task", {"task_id": old}),
    ]
    assert answer["response"] == (
        f"Done! I added “Milk” to your list as task {new}. I deleted “Old chore” (task {old})."
    )
    assert await titles(agent, alice) == ["Milk"]

    answer = await turn(agent, alice, f"delete task {new} and add buy milk")
    assert calls(answer) == [
        ("delete_task", {"task_id": new}),
        ("add_task", {"title": "Buy milk"}),
    ]
    assert await titles(agent, alice) == ["Buy milk"]


async def test_a_listing_after_an_add_shows_the_task_just_added(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(agent, alice, "add milk then show my tasks")
    assert calls(answer) == [("add_task", {"title": "Milk"}), ("list_tasks", {"status": "all"})]
    assert [t["title"] for t in answer["tool_calls"][1]["result"]] == ["Milk"]
    answer = await turn(agent, alice, "add pay rent, then list everything")
    assert calls(answer) == [
        ("add_task", {"title": "Pay rent"}),
        ("list_tasks", {"status": "all"}),
    ]


async def test_it_in_a_later_request_is_the_task_the_earlier_one_added(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(agent, alice, "add dentist tomorrow and make it high priority")
    new = answer["tool_calls"][0]["result"]["task_id"]
    assert calls(answer) == [
        ("add_task", {"title": "Dentist", "due_at": "2026-11-28T09:00:00+00:00"}),
        ("update_task", {"task_id": new, "priority": "high"}),
    ]
    assert answer["response"].endswith(f"Updated task {new}: I set its priority to high.")


async def test_a_reminder_said_after_a_new_task_is_that_tasks(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(agent, alice, "add laundry and remind me at 5pm", timezone="Europe/Paris")
    assert calls(answer) == [
        ("add_task", {"title": "Laundry", "reminders": [{"at": "2026-11-27T17:00:00+01:00"}]})
    ]


async def test_a_request_that_asks_stops_the_rest_and_the_reply_says_what_waits(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first = await add(agent, alice, "Write the report")
    second = await add(agent, alice, "Print the report")
    answer = await turn(agent, alice, "add milk, move the report to friday and show my tasks")
    new = answer["tool_calls"][0]["result"]["task_id"]
    assert [name for name, _ in calls(answer)] == ["add_task", "list_tasks"]
    response = answer["response"]
    assert response.startswith(f"Done! I added “Milk” to your list as task {new}.")
    assert f"{first}: Write the report" in response
    assert f"{second}: Print the report" in response
    assert response.endswith(
        "I haven't done “show my tasks” yet: send it again once this is settled."
    )
    [*_, stored] = await stored_messages(committed_sessionmaker, answer["conversation_id"])
    assert stored.state["awaiting"] == "choice"
    assert sorted(stored.state["candidates"]) == sorted([first, second])

    chosen = await turn(agent, alice, str(second), answer["conversation_id"])
    # A move to a day alone reads the task first, for the time it keeps.
    assert [(name, args["task_id"]) for name, args in calls(chosen)] == [
        ("get_task", second),
        ("update_task", second),
    ]


async def test_a_bulk_request_among_others_asks_its_confirmation(
    agent: httpx.AsyncClient, alice: User
) -> None:
    done = await add(agent, alice, "Old chore")
    await turn(agent, alice, f"mark task {done} as done")
    answer = await turn(agent, alice, "add milk and delete all completed tasks")
    assert [name for name, _ in calls(answer)] == ["add_task", "list_tasks"]
    confirmed = await turn(agent, alice, "yes", answer["conversation_id"])
    assert calls(confirmed) == [("delete_tasks", {"task_ids": [done]})]
    assert await titles(agent, alice) == ["Milk"]


async def test_a_request_past_the_turns_bound_is_not_started_and_the_reply_says_so(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    app = make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=2)
    async with serve(app) as chat:
        old = await add(chat, alice, "Old chore")
        answer = await turn(chat, alice, f"add milk and eggs, then delete task {old}")
        assert calls(answer) == [
            ("add_task", {"title": "Milk"}),
            ("add_task", {"title": "Eggs"}),
        ]
        assert answer["response"].endswith(
            f"I haven't done “delete task {old}”: with it, this message would take more than "
            "2 task operations, more than I do at once. Please send it separately."
        )
        assert await titles(chat, alice) == ["Eggs", "Milk", "Old chore"]


async def test_requests_that_cannot_each_be_read_alone_change_nothing(
    agent: httpx.AsyncClient, alice: User
) -> None:
    old = await add(agent, alice, "Old chore")
    answer = await turn(agent, alice, f"add a task and delete task {old}")
    assert answer["tool_calls"] == []
    assert answer["response"] == (
        f"That's two requests in one message: “add a task” and “delete task {old}”. I "
        "couldn't read each one on its own, so I haven't changed anything: please send them "
        "one at a time."
    )
    assert await titles(agent, alice) == ["Old chore"]


async def test_two_edits_of_one_task_named_by_its_words_both_run(
    agent: httpx.AsyncClient, alice: User
) -> None:
    task_id = await add(agent, alice, "Dentist")
    answer = await turn(agent, alice, "move the dentist to friday and make it high priority")
    changes: list[tuple[str, dict[str, Any]]] = calls(answer)[1:]
    assert changes == [
        ("update_task", {"task_id": task_id, "due_at": "2026-12-04T09:00:00+00:00"}),
        ("update_task", {"task_id": task_id, "priority": "high"}),
    ]
    assert all("error" not in call["result"] for call in answer["tool_calls"]), answer


async def test_a_request_that_did_nothing_stops_the_rest_so_it_never_means_an_older_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "complete task 99999 and delete it" deleted the task added a message before: the
    completion found nothing, so "it" reached back to the history."""
    rent = await add(agent, alice, "Pay rent")
    answer = await turn(agent, alice, "complete task 99999 and delete it")
    assert [name for name, _ in calls(answer)] == ["complete_task"]
    assert answer["response"].endswith(
        "I haven't done “delete it” yet: send it again once this is settled."
    )
    answer = await turn(agent, alice, "complete the gym and delete it")
    assert "delete_task" not in [name for name, _ in calls(answer)]
    answer = await turn(agent, alice, "add gym every monday and thursday and make it urgent")
    assert calls(answer) == []
    assert await titles(agent, alice) == ["Pay rent"]
    listed = await turn(agent, alice, "show all my tasks")
    assert listed["tool_calls"][0]["result"][0]["priority"] == "medium"
    assert listed["tool_calls"][0]["result"][0]["id"] == rent


async def test_a_task_named_by_its_words_is_never_deleted_after_a_new_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add read and delete old emails" added "Read" and deleted the task "Old emails
    cleanup", found by its words and never asked about: the words may be one task's title, so
    nothing is done and the requests are asked for one at a time. "and put them in the
    fridge" made a task "Them in the fridge": it is the same chore's."""
    await add(agent, alice, "Old emails cleanup")
    answer = await turn(agent, alice, "add read and delete old emails")
    assert calls(answer) == []
    assert answer["response"].endswith("please send them one at a time.")
    answer = await turn(agent, alice, "add groceries and put them in the fridge")
    assert calls(answer) == [("add_task", {"title": "Groceries and put them in the fridge"})]
    assert await titles(agent, alice) == [
        "Groceries and put them in the fridge",
        "Old emails cleanup",
    ]


async def test_it_deleted_right_after_a_new_task_is_asked_about_not_the_new_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add milk and complete the report and delete it" added "Milk and complete the
    report" (the completion reads as the chore's words) and deleted that new task at once:
    nothing asked for was done. A delete of "it" right after a new task is asked for one
    request at a time, and nothing changes."""
    report = await add(agent, alice, "Report")
    for message in ("add milk and complete the report and delete it", "add milk and delete it"):
        answer = await turn(agent, alice, message)
        assert calls(answer) == []
        assert answer["response"].endswith("please send them one at a time.")
    assert await titles(agent, alice) == ["Report"]
    answer = await turn(agent, alice, "add milk and make it urgent")
    new = answer["tool_calls"][0]["result"]["task_id"]
    assert calls(answer) == [
        ("add_task", {"title": "Milk"}),
        ("update_task", {"task_id": new, "priority": "high"}),
    ]
    assert report != new
