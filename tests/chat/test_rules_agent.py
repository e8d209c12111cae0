"""Chat turns with the rule-based agent against the real todo service (MCP over HTTP).

Every test asserts the exact tools called, with their arguments and results, as the API
returns them and as the conversation stores them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.agents import rules
from chat_service.agents.base import too_many_tool_calls
from scripts.processes import free_port
from shared.clock import FrozenClock
from shared.db import Database, create_engine
from tests.chat.conftest import ChatAppFactory, User, stored_messages
from tests.support.database import insert_tasks
from tests.support.errors import assert_error
from tests.support.serving import live_server, serve
from tests.support.tokens import TestIssuer
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings


async def turn(
    client: httpx.AsyncClient,
    user: User,
    message: str,
    conversation: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, **fields}
    if conversation is not None:
        body["conversation_id"] = conversation
    response = await client.post("/api/chat", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def calls(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(call["name"], call["arguments"]) for call in answer["tool_calls"]]


async def add(client: httpx.AsyncClient, user: User, title: str) -> int:
    answer = await turn(client, user, f"add '{title}'")
    task_id: int = answer["tool_calls"][0]["result"]["task_id"]
    return task_id


# --- the Phase III examples ------------------------------------------------------------------


async def test_add_a_task_to_buy_groceries(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    answer = await turn(agent, alice, "Add a task to buy groceries")
    task_id = answer["tool_calls"][0]["result"]["task_id"]
    assert answer["tool_calls"] == [
        {
            "name": "add_task",
            "arguments": {"title": "Buy groceries"},
            "result": {"task_id": task_id, "status": "created", "title": "Buy groceries"},
        }
    ]
    assert answer["response"] == f"Done! I added “Buy groceries” to your list as task {task_id}."
    stored = await stored_messages(committed_sessionmaker, answer["conversation_id"])
    assert stored[-1].tool_calls == answer["tool_calls"]


async def test_show_me_all_my_tasks(agent: httpx.AsyncClient, alice: User) -> None:
    first = await add(agent, alice, "Buy groceries")
    second = await add(agent, alice, "Call mom")
    answer = await turn(agent, alice, "Show me all my tasks")
    assert calls(answer) == [("list_tasks", {"status": "all"})]
    listed = answer["tool_calls"][0]["result"]
    assert [(t["id"], t["title"], t["completed"]) for t in listed] == [
        (second, "Call mom", False),
        (first, "Buy groceries", False),
    ]
    assert answer["response"] == (
        f"Here are 2 tasks:\n• {second}: Call mom\n• {first}: Buy groceries"
    )


async def test_whats_pending_and_what_have_i_completed(
    agent: httpx.AsyncClient, alice: User
) -> None:
    done = await add(agent, alice, "Old chore")
    open_one = await add(agent, alice, "New chore")
    await turn(agent, alice, f"Mark task {done} as complete")

    pending = await turn(agent, alice, "What's pending?")
    assert calls(pending) == [("list_tasks", {"status": "pending"})]
    assert [t["id"] for t in pending["tool_calls"][0]["result"]] == [open_one]
    assert pending["response"] == f"Here is 1 pending task:\n• {open_one}: New chore"

    completed = await turn(agent, alice, "What have I completed?")
    assert calls(completed) == [("list_tasks", {"status": "completed"})]
    assert [t["id"] for t in completed["tool_calls"][0]["result"]] == [done]
    assert completed["response"] == f"Here is 1 completed task:\n✓ {done}: Old chore"


async def test_mark_task_as_complete(agent: httpx.AsyncClient, alice: User) -> None:
    task_id = await add(agent, alice, "Call mom")
    answer = await turn(agent, alice, f"Mark task {task_id} as complete")
    assert answer["tool_calls"] == [
        {
            "name": "complete_task",
            "arguments": {"task_id": task_id},
            "result": {
                "task_id": task_id,
                "status": "completed",
                "title": "Call mom",
                "completed": True,
                "next_occurrence_id": None,
            },
        }
    ]
    assert answer["response"] == f"Nice work! I marked “Call mom” (task {task_id}) as complete."


async def test_delete_the_meeting_task(agent: httpx.AsyncClient, alice: User) -> None:
    await add(agent, alice, "Buy groceries")
    meeting = await add(agent, alice, "Team meeting")
    answer = await turn(agent, alice, "Delete the meeting task")
    assert calls(answer) == [
        ("list_tasks", {"status": "all", "q": "meet"}),
        ("delete_task", {"task_id": meeting}),
    ]
    assert answer["tool_calls"][1]["result"] == {
        "task_id": meeting,
        "status": "deleted",
        "title": "Team meeting",
    }
    assert answer["response"] == f"I deleted “Team meeting” (task {meeting})."


async def test_change_a_tasks_title(agent: httpx.AsyncClient, alice: User) -> None:
    task_id = await add(agent, alice, "Call mom")
    answer = await turn(agent, alice, f"Change task {task_id} to 'Call mom tonight'")
    assert calls(answer) == [("update_task", {"task_id": task_id, "title": "Call mom tonight"})]
    assert answer["tool_calls"][0]["result"]["title"] == "Call mom tonight"
    assert answer["response"] == f"Updated task {task_id}: I renamed it to “Call mom tonight”."


async def test_i_need_to_remember_to_pay_bills(agent: httpx.AsyncClient, alice: User) -> None:
    answer = await turn(agent, alice, "I need to remember to pay bills")
    assert calls(answer) == [("add_task", {"title": "Pay bills"})]


# --- beyond the examples ---------------------------------------------------------------------


async def test_priority_tags_and_due_date_in_the_users_time_zone(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(
        agent, alice, "Add buy milk tomorrow at 5pm #errands urgent", timezone="Europe/Paris"
    )
    assert calls(answer) == [
        (
            "add_task",
            {
                "title": "Buy milk",
                "priority": "high",
                "tags": ["errands"],
                "due_at": "2026-11-28T17:00:00+01:00",
            },
        )
    ]
    assert answer["response"].endswith(
        "— due tomorrow at 17:00, high priority and tagged #errands."
    )
    listed = await turn(agent, alice, "show my #errands tasks", timezone="Europe/Paris")
    assert calls(listed) == [("list_tasks", {"status": "all", "tag": "errands"})]
    task = listed["tool_calls"][0]["result"][0]
    assert task["due_at"] == "2026-11-28T16:00:00.000000Z"
    assert "(high priority, due tomorrow at 17:00, #errands)" in listed["response"]


async def test_a_recurring_task_is_added_in_the_users_time_zone(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(agent, alice, "add stand-up daily at 9:30", timezone="Europe/Paris")
    assert calls(answer) == [
        (
            "add_task",
            {
                "title": "Stand-up",
                "due_at": "2026-11-28T09:30:00+01:00",
                "recurrence": "daily",
                "time_zone": "Europe/Paris",
            },
        )
    ]
    listed = await turn(agent, alice, "show my tasks", timezone="Europe/Paris")
    (task,) = listed["tool_calls"][0]["result"]
    assert (task["recurrence"], task["time_zone"]) == ("daily", "Europe/Paris")

    # Without a recurrence the zone is not the task's business; without a zone the turn's is UTC.
    once = await turn(agent, alice, "add call mom tomorrow at 9", timezone="Europe/Paris")
    assert "time_zone" not in calls(once)[0][1]
    plain = await turn(agent, alice, "add water plants every week")
    assert calls(plain)[0][1]["time_zone"] == "UTC"


async def test_next_monday_at_5pm_in_new_york(agent: httpx.AsyncClient, alice: User) -> None:
    answer = await turn(
        agent,
        alice,
        "remind me to send the report next Monday at 5pm",
        timezone="America/New_York",
    )
    # "remind me": due then, and a reminder at the due time.
    assert calls(answer) == [
        (
            "add_task",
            {
                "title": "Send the report",
                "due_at": "2026-11-30T17:00:00-05:00",
                "reminders": [{"before_due_minutes": 0}],
            },
        )
    ]


async def test_references_to_the_last_task_across_turns(
    agent: httpx.AsyncClient, alice: User
) -> None:
    added = await turn(agent, alice, "Add a task to call the plumber")
    conversation = added["conversation_id"]
    task_id = added["tool_calls"][0]["result"]["task_id"]

    done = await turn(agent, alice, "mark that done", conversation)
    assert calls(done) == [("complete_task", {"task_id": task_id})]

    urgent = await turn(agent, alice, "make it urgent", conversation)
    assert calls(urgent) == [("update_task", {"task_id": task_id, "priority": "high"})]

    deleted = await turn(agent, alice, "delete it", conversation)
    assert calls(deleted) == [("delete_task", {"task_id": task_id})]

    # A new conversation knows nothing of that one.
    fresh = await turn(agent, alice, "delete it")
    assert fresh["tool_calls"] == []
    assert fresh["response"] == rules.NO_REFERENCE


async def test_a_restarted_service_resolves_it_from_the_stored_history(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url)) as client:
        added = await turn(client, alice, "add water the plants")
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url)) as client:
        answer = await turn(client, alice, "mark it as done", added["conversation_id"])
    task_id = added["tool_calls"][0]["result"]["task_id"]
    assert calls(answer) == [("complete_task", {"task_id": task_id})]


async def test_several_matches_ask_which_one_then_the_answer_picks(
    agent: httpx.AsyncClient, alice: User
) -> None:
    team = await add(agent, alice, "Team meeting")
    notes = await add(agent, alice, "Meeting notes")
    asked = await turn(agent, alice, "Delete the meeting task")
    assert calls(asked) == [("list_tasks", {"status": "all", "q": "meet"})]
    assert asked["response"] == (
        f"I found 2 tasks matching “meeting”:\n• {notes}: Meeting notes\n• {team}: Team meeting"
        f"\n{rules.ASK_WHICH}"
    )
    answered = await turn(agent, alice, "the second one", asked["conversation_id"])
    assert calls(answered) == [("delete_task", {"task_id": team})]

    # One left now, so it is completed directly.
    direct = await turn(agent, alice, "complete the meeting task")
    assert calls(direct) == [
        ("list_tasks", {"status": "pending", "q": "meet"}),
        ("complete_task", {"task_id": notes}),
    ]


async def test_answering_which_one_with_an_id_or_title_words(
    agent: httpx.AsyncClient, alice: User
) -> None:
    dentist = await add(agent, alice, "Book dentist")
    await add(agent, alice, "Book flights")
    asked = await turn(agent, alice, "rename the book task to Book the dentist")
    conversation = asked["conversation_id"]
    answered = await turn(agent, alice, "dentist", conversation)
    assert calls(answered) == [("update_task", {"task_id": dentist, "title": "Book the dentist"})]
    asked = await turn(agent, alice, "delete the book task", conversation)
    answered = await turn(agent, alice, f"task {dentist}", conversation)
    assert calls(answered) == [("delete_task", {"task_id": dentist})]


async def test_no_match_and_unknown_ids_are_explained_kindly(
    agent: httpx.AsyncClient, alice: User
) -> None:
    none = await turn(agent, alice, "Delete the dentist task")
    assert calls(none) == [
        ("list_tasks", {"status": "all", "q": "dentist"}),
        ("list_tasks", {"status": "all"}),
    ]
    assert none["response"].startswith("I couldn't find a task matching “dentist”.")

    unknown = await turn(agent, alice, "Mark task 99999 as complete")
    assert unknown["tool_calls"] == [
        {
            "name": "complete_task",
            "arguments": {"task_id": 99999},
            "result": {"error": "Task 99999 not found", "code": "not_found"},
        }
    ]
    assert unknown["response"].startswith("I couldn't find task 99999 on your list.")


async def test_another_users_task_is_not_found_through_chat(
    agent: httpx.AsyncClient, alice: User, bob: User
) -> None:
    alices = await add(agent, alice, "Alice's secret")
    for message in (f"Mark task {alices} as complete", f"delete task {alices}"):
        answer = await turn(agent, bob, message)
        assert answer["tool_calls"][0]["result"] == {
            "error": f"Task {alices} not found",
            "code": "not_found",
        }
    listed = await turn(agent, bob, "Show me all my tasks")
    assert listed["tool_calls"][0]["result"] == []
    still = await turn(agent, alice, "What's pending?")
    assert [t["id"] for t in still["tool_calls"][0]["result"]] == [alices]


async def test_several_ids_in_one_message(agent: httpx.AsyncClient, alice: User) -> None:
    first = await add(agent, alice, "One")
    second = await add(agent, alice, "Two")
    answer = await turn(agent, alice, f"complete tasks {first} and {second}")
    assert calls(answer) == [
        ("complete_task", {"task_id": first}),
        ("complete_task", {"task_id": second}),
    ]


async def test_greetings_and_help_touch_no_task(agent: httpx.AsyncClient, alice: User) -> None:
    for message, reply in (("hi", rules.GREETING), ("what can you do?", rules.HELP)):
        answer = await turn(agent, alice, message)
        assert answer["tool_calls"] == []
        assert answer["response"] == reply


async def test_a_streamed_turn_sends_tool_calls_then_the_reply(
    agent: httpx.AsyncClient, alice: User
) -> None:
    await add(agent, alice, "Team meeting")
    response = await agent.post(
        "/api/chat",
        json={"message": "Delete the meeting task"},
        headers={**alice.headers, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    events = [
        (b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1][6:])) for b in blocks
    ]
    assert [name for name, _ in events] == ["tool_call", "tool_call", "message", "done"]
    assert events[0][1]["name"] == "list_tasks"
    assert events[1][1]["name"] == "delete_task"
    assert events[2][1]["response"].startswith("I deleted “Team meeting”")
    conversation = events[3][1]["conversation_id"]
    detail = await agent.get(f"/api/conversations/{conversation}", headers=alice.headers)
    stored_calls = detail.json()["messages"][-1]["tool_calls"]
    assert [c["name"] for c in stored_calls] == ["list_tasks", "delete_task"]


async def test_a_todo_service_failing_inside_is_a_502(
    make_chat_app: ChatAppFactory,
    migrated_url: str,
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The todo service answers, but its database is gone: every tool call fails inside it.
    engine = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/todo")
    todo = create_todo_app(
        TodoSettings(_env_file=None, environment="test", database_url=migrated_url),
        db=Database(engine),
        verifier=issuer.verifier(),
        clock=clock,
    )
    try:
        async with live_server(todo) as base:
            chat = make_chat_app(todo_mcp_url=f"{base}/api/mcp")
            async with serve(chat) as client:
                response = await client.post(
                    "/api/chat", json={"message": "What's pending?"}, headers=alice.headers
                )
    finally:
        await engine.dispose()
    assert_error(response, 502, "todo_bad_answer")
    stored = await stored_messages(committed_sessionmaker)
    assert [m.role for m in stored] == ["user"]


# --- text longer than the todo service keeps --------------------------------------------------


async def test_a_title_longer_than_200_characters_is_cut_and_the_reply_says_so(
    agent: httpx.AsyncClient, alice: User
) -> None:
    long_title = "Call " + "x" * 300
    answer = await turn(agent, alice, f"add '{long_title}'")
    ((name, arguments),) = calls(answer)
    assert (name, arguments["title"]) == ("add_task", long_title[:200])
    assert answer["tool_calls"][0]["result"]["title"] == long_title[:200]
    assert answer["response"].endswith(
        "It was too long, so I shortened the title to its first 200 characters."
    )


async def test_a_rename_and_a_description_cut_to_fit_are_both_said(
    agent: httpx.AsyncClient, alice: User
) -> None:
    task_id = await add(agent, alice, "Short")
    renamed = await turn(agent, alice, f"rename task {task_id} to '{'y' * 250}'")
    assert calls(renamed) == [("update_task", {"task_id": task_id, "title": "Y" + "y" * 199})]
    assert renamed["response"].endswith("I shortened the title to its first 200 characters.")
    assert "y" * 200 not in renamed["response"]  # the reply names the title as kept

    described = await turn(agent, alice, f"add 'Notes' with description {'z' * 1500}")
    assert len(calls(described)[0][1]["description"]) == 1000
    assert described["response"].endswith(
        "I shortened the description to its first 1,000 characters."
    )


async def test_a_title_of_exactly_200_characters_is_not_called_shortened(
    agent: httpx.AsyncClient, alice: User
) -> None:
    answer = await turn(agent, alice, f"add '{'w' * 200}'")
    assert "shortened" not in answer["response"]


# --- the cap on tool calls per turn ---------------------------------------------------------


async def test_a_request_for_more_tool_calls_than_the_cap_calls_none_and_asks_to_narrow_it(
    agent: httpx.AsyncClient, alice: User
) -> None:
    kept = await add(agent, alice, "Keep me")
    ids = ",".join(str(n) for n in range(1, 1000))
    answer = await turn(agent, alice, f"delete {ids}")
    assert answer["tool_calls"] == []
    assert answer["response"] == too_many_tool_calls(10)
    listed = await turn(agent, alice, "show my tasks")
    assert [t["id"] for t in listed["tool_calls"][0]["result"]] == [kept]


async def test_the_cap_is_a_setting_and_a_request_within_it_runs(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=3)) as chat:
        ids = [await add(chat, alice, f"Task {n}") for n in range(4)]
        over = await turn(chat, alice, "complete tasks " + ", ".join(map(str, ids)))
        assert (over["tool_calls"], over["response"]) == ([], too_many_tool_calls(3))
        within = await turn(chat, alice, "complete tasks " + ", ".join(map(str, ids[:3])))
        assert calls(within) == [("complete_task", {"task_id": i}) for i in ids[:3]]


async def test_adding_more_tasks_than_the_cap_in_one_message_adds_none(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=3)) as chat:
        over = await turn(chat, alice, "add 4 tasks: laundry, dishes, vacuuming, ironing")
        assert (over["tool_calls"], over["response"]) == ([], too_many_tool_calls(3))
        listed = await turn(chat, alice, "show my tasks")
        assert listed["tool_calls"][0]["result"] == []
        within = await turn(chat, alice, "add 3 tasks: laundry, dishes, vacuuming")
        assert [name for name, _ in calls(within)] == ["add_task"] * 3


async def test_a_task_due_at_the_calendars_end_is_listed_and_moved_in_a_zone_ahead_of_utc(
    agent: httpx.AsyncClient, todo_mcp_url: str, alice: User
) -> None:
    """The todo API takes instants up to the end of 9999 in UTC: 14 hours ahead of UTC such
    a due date is a local year 10000, which the reply then says in UTC instead of failing."""
    base = todo_mcp_url.removesuffix("/api/mcp")
    async with httpx.AsyncClient(base_url=base) as todo:
        created = await todo.post(
            "/api/tasks",
            json={"title": "At the end of time", "due_at": "9999-12-31T23:00:00Z"},
            headers=alice.headers,
        )
        assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    listed = await turn(agent, alice, "Show me all my tasks", timezone="Pacific/Kiritimati")
    assert listed["response"] == (
        f"Here is 1 task:\n• {task_id}: At the end of time (due Fri 31 Dec 9999 at 23:00)"
    )
    moved = await turn(agent, alice, f"move task {task_id} to 4pm", timezone="Pacific/Kiritimati")
    # The day kept is the one the API wrote, in UTC: locally it is past the calendar's end.
    assert calls(moved) == [
        ("get_task", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "due_at": "9999-12-31T16:00:00+14:00"}),
    ]


async def test_what_is_due_this_week_is_listed_soonest_first(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """Friday 27 November: added in another order than they fall due."""
    for said in ("add call mom tomorrow", "add pay rent sunday", "add water the plants at 6pm"):
        await turn(agent, alice, said)
    answer = await turn(agent, alice, "what is due this week?")
    assert calls(answer)[0][1]["sort"] == "due"
    assert [t["title"] for t in answer["tool_calls"][0]["result"]] == [
        "Water the plants",
        "Call mom",
        "Pay rent",
    ]


async def test_a_listed_task_past_its_due_time_is_said_to_be_overdue(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """Friday 27 November, 14:30: the task due at 09:00 is overdue, the one due tonight
    not, nor a finished one; a task due at a day's last minute is said as the day alone."""
    added = {}
    for title, when in (
        ("File taxes", "today at 8am"),
        ("Pay rent", "today at 9am"),
        ("Call mom", "tonight"),
        ("Water plants", "at midnight"),
    ):
        answer = await turn(agent, alice, f"add {title} {when}")
        added[title] = answer["tool_calls"][0]["result"]["task_id"]
    await turn(agent, alice, f"complete task {added['File taxes']}")
    answer = await turn(agent, alice, "show all my tasks")
    assert answer["response"].splitlines()[1:] == [
        f"• {added['Water plants']}: Water plants (due today)",
        f"• {added['Call mom']}: Call mom (due today at 20:00)",
        f"• {added['Pay rent']}: Pay rent (overdue: due today at 09:00)",
        f"✓ {added['File taxes']}: File taxes (due today at 08:00)",
    ]


# --- what people say, read as they mean it -------------------------------------------------


async def test_a_due_date_in_the_past_tense_never_renames_the_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "the report was due yesterday" tells of the past: it neither renames the task
    ("Yesterday") nor moves it."""
    await add(agent, alice, "Finish the quarterly report")
    for said in ("the report was due yesterday", "the report was due on friday"):
        answer = await turn(agent, alice, said)
        assert not [name for name, _ in calls(answer) if name != "list_tasks"], said
    listed = await turn(agent, alice, "show my tasks")
    assert [(t["title"], t["due_at"]) for t in listed["tool_calls"][0]["result"]] == [
        ("Finish the quarterly report", None)
    ]
    moved = await turn(agent, alice, "the report is due on friday")
    assert [name for name, _ in calls(moved)] == ["list_tasks", "update_task"]


async def test_a_title_said_to_be_due_moves_that_task_instead_of_adding_one(
    agent: httpx.AsyncClient, alice: User
) -> None:
    task_id = await add(agent, alice, "Book flights to Rome")
    answer = await turn(agent, alice, "book flights is due on the 25th")
    assert [name for name, _ in calls(answer)] == ["list_tasks", "update_task"]
    assert calls(answer)[-1] == (
        "update_task",
        {"task_id": task_id, "due_at": "2026-12-25T09:00:00+00:00"},
    )


async def test_asking_to_change_how_a_task_repeats_changes_and_adds_nothing(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """No chat command changes a recurrence: each of these once renamed the task ("Repeat
    weekly", "Every tuesday") or added a new one ("It", "Trash task repeat")."""
    await add(agent, alice, "Take out the trash")
    for said in (
        "make it weekly",
        "make the trash task repeat every monday",
        "set the trash to repeat weekly",
        "change the trash to every tuesday",
        "the trash should repeat every monday",
        "stop repeating the trash task",
        # A bare name, as "trash should repeat weekly": once "I can only help with your task
        # list".
        "stop trash from repeating",
    ):
        answer = await turn(agent, alice, said)
        assert answer["tool_calls"] == [], said
        assert "can't change how a task repeats" in answer["response"], said
    listed = await turn(agent, alice, "show my tasks")
    assert [t["title"] for t in listed["tool_calls"][0]["result"]] == ["Take out the trash"]


async def test_a_move_or_a_setting_that_names_no_day_never_renames_the_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """Each of these once renamed the task to its last words ("Later", "2 days", "Paid")."""
    task_id = await add(agent, alice, "Dentist appointment")
    for said in (
        "move the dentist to later",
        "postpone the dentist by 2 days",
        "move it to the weekend",
        "move the dentist to the afternoon",
        "set the dentist to paid",
        "set it to in progress",
        "change the dentist to yesterday",
        "change the dentist to 2",
    ):
        answer = await turn(agent, alice, said)
        assert not [c for c in calls(answer) if c[0] != "list_tasks"], said
    moved = await turn(agent, alice, "move the dentist to the 22nd")
    assert calls(moved)[-1] == (
        "update_task",
        {"task_id": task_id, "due_at": "2026-12-22T09:00:00+00:00"},
    )
    renamed = await turn(agent, alice, "change the dentist appointment to a checkup")
    assert calls(renamed)[-1] == ("update_task", {"task_id": task_id, "title": "A checkup"})


async def test_a_due_date_the_dates_cannot_read_asks_and_adds_no_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "make the report due after lunch" once added a task "Report due after lunch"."""
    task_id = await add(agent, alice, "Finish the report")
    for said in (
        "make the report due after lunch",
        "make the report due soonish",
        "set the report due end of the week",
        f"make task {task_id} due whenever",
    ):
        answer = await turn(agent, alice, said)
        assert answer["tool_calls"] == [], said
        assert answer["response"].startswith("I couldn't read “"), said
    asked = await turn(agent, alice, "make the report due after lunch")
    assert asked["response"] == (
        "I couldn't read “after lunch” as a day or time, so I changed nothing. Tell me the day, "
        "for example “make the report due friday at 5pm”."
    )
    moved = await turn(agent, alice, "make the report due friday at 5pm")
    assert calls(moved)[-1] == (
        "update_task",
        {"task_id": task_id, "due_at": "2026-12-04T17:00:00+00:00"},
    )
    listed = await turn(agent, alice, "show my tasks")
    assert [t["title"] for t in listed["tool_calls"][0]["result"]] == ["Finish the report"]


async def test_a_move_by_a_span_shifts_the_tasks_own_due_date(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "push the report back a day" once asked a question: the span is counted from the due
    date the todo service holds, and a task without one is said to have none."""
    added = await turn(agent, alice, "add finish the report on friday at 10am")
    task_id = added["tool_calls"][0]["result"]["task_id"]
    pushed = await turn(agent, alice, "push the report back a day")
    assert calls(pushed) == [
        ("list_tasks", {"status": "all", "q": "report"}),
        ("update_task", {"task_id": task_id, "due_at": "2026-12-05T10:00:00+00:00"}),
    ]
    assert pushed["response"] == f"Updated task {task_id}: I set it due Sat 5 Dec at 10:00."
    conversation = pushed["conversation_id"]
    forward = await turn(agent, alice, "bring the report forward an hour", conversation)
    assert calls(forward)[-1] == (
        "update_task",
        {"task_id": task_id, "due_at": "2026-12-05T09:00:00+00:00"},
    )
    # "it": the task the conversation last changed, its due date read again from the service.
    later = await turn(agent, alice, "move it a week later", conversation)
    assert calls(later) == [
        ("get_task", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "due_at": "2026-12-12T09:00:00+00:00"}),
    ]
    by_number = await turn(agent, alice, f"postpone task {task_id} by 2 days")
    assert calls(by_number)[-1] == (
        "update_task",
        {"task_id": task_id, "due_at": "2026-12-14T09:00:00+00:00"},
    )

    dentist = await add(agent, alice, "Dentist appointment")
    undated = await turn(agent, alice, "postpone the dentist by 2 days")
    assert calls(undated) == [("list_tasks", {"status": "all", "q": "dentist"})]
    assert undated["response"] == (
        f"“Dentist appointment” (task {dentist}) has no due date, so I can't move it later; "
        f"nothing was changed. Give it one first, for example “make task {dentist} due friday”."
    )


async def test_a_move_by_a_span_asks_which_task_then_moves_the_one_picked(
    agent: httpx.AsyncClient, alice: User
) -> None:
    await turn(agent, alice, "add team meeting tomorrow at 3pm")
    added = await turn(agent, alice, "add prepare the meeting agenda on monday")
    agenda = added["tool_calls"][0]["result"]["task_id"]
    asked = await turn(agent, alice, "push the meeting back an hour")
    assert [name for name, _ in calls(asked)] == ["list_tasks"]
    assert rules.ASK_WHICH in asked["response"]
    answered = await turn(agent, alice, f"task {agenda}", asked["conversation_id"])
    assert calls(answered) == [
        ("get_task", {"task_id": agenda}),
        ("update_task", {"task_id": agenda, "due_at": "2026-11-30T10:00:00+00:00"}),
    ]


async def test_several_tasks_named_in_one_message_are_changed_after_one_yes(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "mark call mom and buy milk as done" once matched no task ("call mom and buy milk"),
    and "done with milk, dentist and the bill" completed the milk only."""
    mom, milk, bill = [await add(agent, alice, t) for t in ("Call mom", "Buy milk", "Pay bill")]
    dentist, flights = await add(agent, alice, "Dentist"), await add(agent, alice, "Book flights")

    asked = await turn(agent, alice, "mark call mom and buy milk as done")
    assert calls(asked) == [
        ("list_tasks", {"status": "pending", "q": "cal"}),
        ("list_tasks", {"status": "pending", "q": "milk"}),
    ]
    assert asked["response"] == (
        f"I'm about to mark as complete these 2 tasks:\n• {mom}: Call mom\n• {milk}: Buy milk\n"
        "Shall I go ahead? Reply “yes” to confirm; anything else cancels."
    )
    done = await turn(agent, alice, "yes", asked["conversation_id"])
    assert calls(done) == [("complete_tasks", {"task_ids": [mom, milk]})]

    asked = await turn(agent, alice, "done with milk, dentist and the bill")
    # The milk is done already: no pending task has that name, and nothing changes.
    assert calls(asked) == [
        ("list_tasks", {"status": "pending", "q": "milk"}),
        ("list_tasks", {"status": "pending", "q": "dentist"}),
        ("list_tasks", {"status": "pending", "q": "bil"}),
    ]
    assert asked["response"].startswith("I couldn't find a pending task matching “milk”")
    asked = await turn(agent, alice, "done with the dentist and the bill")
    cancelled = await turn(agent, alice, "no", asked["conversation_id"])
    assert cancelled["tool_calls"] == []

    asked = await turn(agent, alice, "delete the bill and the flights")
    assert asked["response"].startswith(
        f"I'm about to delete these 2 tasks:\n• {bill}: Pay bill\n• {flights}: Book flights\n"
    )
    deleted = await turn(agent, alice, "yes", asked["conversation_id"])
    assert calls(deleted) == [("delete_tasks", {"task_ids": [bill, flights]})]
    listed = await turn(agent, alice, "what's pending?")
    assert [t["id"] for t in listed["tool_calls"][0]["result"]] == [dentist]


async def test_a_name_among_several_that_fits_two_tasks_changes_nothing_and_asks(
    agent: httpx.AsyncClient, alice: User
) -> None:
    milk = await add(agent, alice, "Buy milk")
    dentist, call_dentist = (
        await add(agent, alice, "Dentist appointment"),
        await add(agent, alice, "Ring dentist"),
    )
    answer = await turn(agent, alice, "mark the milk and the dentist as done")
    assert calls(answer) == [
        ("list_tasks", {"status": "pending", "q": "milk"}),
        ("list_tasks", {"status": "pending", "q": "dentist"}),
    ]
    assert answer["response"] == (
        f"“dentist” could be:\n• {call_dentist}: Ring dentist\n• {dentist}: Dentist appointment\n"
        "Which ones do you mean? I changed nothing. Tell me their numbers, for example "
        f"“complete tasks {milk} and {call_dentist}”."
    )
    named = await turn(agent, alice, f"complete tasks {milk} and {dentist}")
    assert calls(named) == [
        ("complete_task", {"task_id": milk}),
        ("complete_task", {"task_id": dentist}),
    ]


async def test_a_question_about_one_task_is_answered_from_it_and_changes_nothing(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "when is the dentist" and "did I pay the bill?" once got no answer, and "when's the
    report due" the whole list."""
    added = await turn(agent, alice, "add dentist appointment on friday at 10am")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    report, bill = await add(agent, alice, "Finish the report"), await add(agent, alice, "Pay bill")
    await turn(agent, alice, f"mark task {bill} as done")

    for said, reply in (
        (
            "when is the dentist",
            f"“Dentist appointment” (task {dentist}) is due Fri 4 Dec at 10:00.",
        ),
        ("when's the report due", f"“Finish the report” (task {report}) has no due date."),
        ("did I pay the bill?", f"Yes, “Pay bill” (task {bill}) is done."),
        ("did I finish the report?", None),
    ):
        answer = await turn(agent, alice, said)
        assert [name for name, _ in calls(answer)] == ["list_tasks"], said
        if reply is not None:
            assert answer["response"] == reply, said


async def test_a_task_named_by_number_is_read_by_its_id_however_many_are_newer(
    agent: httpx.AsyncClient,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """ "when is task N" and "postpone task N by 2 days" looked for N among the tasks
    list_tasks answers, the newest 100: an older task was "not on your list"."""
    added = await turn(agent, alice, "add dentist appointment on friday at 10am")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    bobs = await add(agent, bob, "Bob's plans")
    await insert_tasks(committed_sessionmaker, alice.sub, 120)

    asked = await turn(agent, alice, f"when is task {dentist}")
    assert asked["response"] == (
        f"“Dentist appointment” (task {dentist}) is due Fri 4 Dec at 10:00."
    )
    assert calls(asked) == [("get_task", {"task_id": dentist})]
    pushed = await turn(agent, alice, f"postpone task {dentist} by 2 days")
    assert pushed["response"] == f"Updated task {dentist}: I set it due Sun 6 Dec at 10:00."
    assert calls(pushed) == [
        ("get_task", {"task_id": dentist}),
        ("update_task", {"task_id": dentist, "due_at": "2026-12-06T10:00:00+00:00"}),
    ]

    # Another user's task is read as a missing one, and nothing of it is told.
    for said in (f"when is task {bobs}", f"postpone task {bobs} by 2 days"):
        answer = await turn(agent, alice, said)
        assert answer["tool_calls"] == [
            {
                "name": "get_task",
                "arguments": {"task_id": bobs},
                "result": {"error": f"Task {bobs} not found", "code": "not_found"},
            }
        ], said
        assert answer["response"].startswith(f"I couldn't find task {bobs} on your list"), said
    mine = await turn(agent, bob, f"when is task {bobs}")
    assert mine["response"] == f"“Bob's plans” (task {bobs}) has no due date."


async def test_a_move_past_the_calendars_end_says_so_and_changes_nothing(
    agent: httpx.AsyncClient, todo_mcp_url: str, alice: User
) -> None:
    """A move the calendar cannot hold (a week after a due date in 9999's last days) was
    answered "... has no due date" of a task that has one."""
    async with httpx.AsyncClient(base_url=todo_mcp_url.removesuffix("/api/mcp")) as todo:
        created = await todo.post(
            "/api/tasks",
            json={"title": "At the end of time", "due_at": "9999-12-30T10:00:00Z"},
            headers=alice.headers,
        )
        assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    pushed = await turn(agent, alice, f"push task {task_id} back a week")
    assert calls(pushed) == [("get_task", {"task_id": task_id})]
    assert pushed["response"] == (
        f"“At the end of time” (task {task_id}) can't be moved a week later: the day would "
        "be outside the calendar. Nothing was changed."
    )


async def test_several_names_never_change_a_third_task_that_has_all_their_words(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "delete call mom and buy milk" names "Call mom" and "Buy milk": a third task whose
    title holds every word of the phrase ("Call mom to buy milk") was deleted at once, no
    question asked, and the two tasks named were left."""
    mom, milk = await add(agent, alice, "Call mom"), await add(agent, alice, "Buy milk")
    both = await add(agent, alice, "Call mom to buy milk")
    asked = await turn(agent, alice, "delete call mom and buy milk")
    assert calls(asked) == [
        ("list_tasks", {"status": "all", "q": "cal"}),
        ("list_tasks", {"status": "all", "q": "milk"}),
    ]
    assert asked["response"].startswith(
        f"I'm about to delete these 2 tasks:\n• {mom}: Call mom\n• {milk}: Buy milk\n"
    )
    deleted = await turn(agent, alice, "yes", asked["conversation_id"])
    assert calls(deleted) == [("delete_tasks", {"task_ids": [mom, milk]})]
    listed = await turn(agent, alice, "show my tasks")
    assert [t["id"] for t in listed["tool_calls"][0]["result"]] == [both]


async def test_moving_all_the_tasks_offered_by_a_span_keeps_to_the_cap(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    """ "all of them" after "which one?" about a move by a span reads each task again (its
    due date) before moving it: two calls a task, counted before any is made."""
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=4)) as chat:
        ids = [
            (await turn(chat, alice, f"add team meeting on {day} at 3pm"))["tool_calls"][0][
                "result"
            ]["task_id"]
            for day in ("monday", "tuesday", "wednesday")
        ]
        asked = await turn(chat, alice, "push the meeting back an hour")
        assert rules.ASK_WHICH in asked["response"]
        answer = await turn(chat, alice, "all of them", asked["conversation_id"])
        assert (answer["tool_calls"], answer["response"]) == ([], too_many_tool_calls(4))

        await turn(chat, alice, f"delete task {ids[2]}")
        asked = await turn(chat, alice, "push the meeting back an hour")
        both = await turn(chat, alice, "both", asked["conversation_id"])
        assert calls(both) == [
            ("get_task", {"task_id": ids[0]}),
            ("get_task", {"task_id": ids[1]}),
            ("update_task", {"task_id": ids[0], "due_at": "2026-11-30T16:00:00+00:00"}),
            ("update_task", {"task_id": ids[1], "due_at": "2026-12-01T16:00:00+00:00"}),
        ]


async def test_a_question_asked_while_choosing_is_answered_and_picks_no_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "which one?" about a deletion, then "when is the team meeting?" (to decide): the
    question named one of the tasks offered, and that task was deleted."""
    added = await turn(agent, alice, "add team meeting on friday at 3pm")
    meeting = added["tool_calls"][0]["result"]["task_id"]
    await add(agent, alice, "Meeting notes")
    for question in ("when is the team meeting?", "did I hold the team meeting?"):
        asked = await turn(agent, alice, "delete the meeting")
        assert rules.ASK_WHICH in asked["response"]
        answer = await turn(agent, alice, question, asked["conversation_id"])
        assert [name for name, _ in calls(answer)] == ["list_tasks"], question
        assert f"“Team meeting” (task {meeting})" in answer["response"], question
    listed = await turn(agent, alice, "show my tasks")
    assert meeting in [t["id"] for t in listed["tool_calls"][0]["result"]]


async def test_an_unreadable_due_date_while_choosing_asks_for_a_day_and_picks_no_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "which one?" about a deletion, then "make the team meeting due after lunch": the
    question it gets named one of the tasks offered, and that task was deleted."""
    meeting = await add(agent, alice, "Team meeting")
    await add(agent, alice, "Meeting notes")
    asked = await turn(agent, alice, "delete the meeting")
    assert rules.ASK_WHICH in asked["response"]
    said = "make the team meeting due after lunch"
    answer = await turn(agent, alice, said, asked["conversation_id"])
    assert answer["tool_calls"] == []
    assert answer["response"].startswith("I couldn't read “after lunch” as a day or time")
    listed = await turn(agent, alice, "show my tasks")
    assert meeting in [t["id"] for t in listed["tool_calls"][0]["result"]]


async def test_a_task_moved_by_its_number_keeps_its_time_of_day(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "move the dentist to monday" kept the task's 15:00 but "move task 12 to monday" set
    09:00: a task named by its number had no due date to keep. Its due date is read by its
    id, as for a move by a span; a new time keeps its day the same way."""
    added = await turn(agent, alice, "add dentist appointment on friday at 3pm")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    moved = await turn(agent, alice, f"move task {dentist} to monday")
    assert calls(moved) == [
        ("get_task", {"task_id": dentist}),
        ("update_task", {"task_id": dentist, "due_at": "2026-11-30T15:00:00+00:00"}),
    ]
    assert moved["response"] == f"Updated task {dentist}: I set it due Mon 30 Nov at 15:00."
    timed = await turn(agent, alice, f"move task {dentist} to 4pm")
    assert calls(timed)[-1] == (
        "update_task",
        {"task_id": dentist, "due_at": "2026-11-30T16:00:00+00:00"},
    )
    by_title = await turn(agent, alice, "move the dentist to tuesday")
    assert calls(by_title) == [
        ("list_tasks", {"status": "all", "q": "dentist"}),
        ("update_task", {"task_id": dentist, "due_at": "2026-12-01T16:00:00+00:00"}),
    ]
    # Without a due date to keep, the day's default time; a missing task is said missing.
    undated = await add(agent, alice, "Call the plumber")
    plain = await turn(agent, alice, f"move task {undated} to monday")
    assert calls(plain)[-1] == (
        "update_task",
        {"task_id": undated, "due_at": "2026-11-30T09:00:00+00:00"},
    )
    missing = await turn(agent, alice, "move task 999999 to monday")
    assert calls(missing) == [("get_task", {"task_id": 999999})]
    assert missing["response"].startswith("I couldn't find task 999999 on your list")


async def test_a_task_picked_after_which_one_keeps_its_time_of_day_when_moved(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """The answer to "which one?" about a move to another day set the day's 09:00."""
    await turn(agent, alice, "add team meeting tomorrow at 3pm")
    added = await turn(agent, alice, "add meeting notes on monday at 11am")
    notes = added["tool_calls"][0]["result"]["task_id"]
    asked = await turn(agent, alice, "move the meeting to wednesday")
    assert rules.ASK_WHICH in asked["response"]
    answered = await turn(agent, alice, f"task {notes}", asked["conversation_id"])
    assert calls(answered) == [
        ("get_task", {"task_id": notes}),
        ("update_task", {"task_id": notes, "due_at": "2026-12-02T11:00:00+00:00"}),
    ]


async def test_a_task_named_by_its_title_is_found_among_all_of_the_users_tasks(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """With 300 newer tasks, "complete the dentist" about an older one was "not found": a
    listing holds the newest 100. The title is searched for (list_tasks's q) with a piece of
    one of its words that every matching title holds, then matched by stems as before."""
    added = await turn(agent, alice, "add dentist appointment on friday at 10am")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    stamps = await add(agent, alice, "Buy stamps")
    mom, milk = await add(agent, alice, "Call mom"), await add(agent, alice, "Buy milk")
    await insert_tasks(committed_sessionmaker, alice.sub, 300)

    asked = await turn(agent, alice, "when is the dentist")
    assert calls(asked) == [("list_tasks", {"status": "all", "q": "dentist"})]
    assert asked["response"] == f"“Dentist appointment” (task {dentist}) is due Fri 4 Dec at 10:00."
    # "buying stamps" is "Buy stamps" by stems, though neither holds the other.
    tagged = await turn(agent, alice, "tag buying stamps #errands")
    assert calls(tagged) == [
        ("list_tasks", {"status": "all", "q": "stamp"}),
        ("update_task", {"task_id": stamps, "tags": ["errands"]}),
    ]
    done = await turn(agent, alice, "complete the dentist")
    assert calls(done) == [
        ("list_tasks", {"status": "pending", "q": "dentist"}),
        ("complete_task", {"task_id": dentist}),
    ]
    paid = await turn(agent, alice, "did I go to the dentist?")
    assert paid["response"] == f"Yes, “Dentist appointment” (task {dentist}) is done."
    # Several names: one search each, then the one question.
    asked = await turn(agent, alice, "delete call mom and buy milk")
    assert calls(asked) == [
        ("list_tasks", {"status": "all", "q": "cal"}),
        ("list_tasks", {"status": "all", "q": "milk"}),
    ]
    assert asked["response"].startswith(
        f"I'm about to delete these 2 tasks:\n• {mom}: Call mom\n• {milk}: Buy milk\n"
    )


async def test_a_title_the_search_cannot_fold_is_still_matched_among_the_newest_tasks(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """The search is by substring: "strasse" finds no "Straße", which the stems match. The
    newest tasks are then matched as before the search was used."""
    street = await add(agent, alice, "Straße fegen")
    done = await turn(agent, alice, "complete STRASSE fegen")
    assert calls(done) == [
        ("list_tasks", {"status": "pending", "q": "stras"}),
        ("list_tasks", {"status": "pending"}),
        ("complete_task", {"task_id": street}),
    ]
    asked = await turn(agent, alice, "when is STRASSE fegen due")
    assert calls(asked) == [
        ("list_tasks", {"status": "all", "q": "stras"}),
        ("list_tasks", {"status": "all"}),
    ]
    assert asked["response"].startswith("“Straße fegen”")


async def test_a_lookup_looks_again_without_its_search_only_within_the_turns_bound(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    """The listing after a search that found nothing went past a bound of one call a turn."""
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=1)) as chat:
        for message in ("delete the dentist task", "when is the dentist", "I paid the bill"):
            answer = await turn(chat, alice, message)
            assert len(answer["tool_calls"]) == 1, (message, answer["tool_calls"])


async def test_a_word_longer_than_any_title_is_searched_for_by_its_start(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """A 250-letter word was sent whole as list_tasks's search, over its 200-character
    bound, and the reply was the tool's validation error."""
    answer = await turn(agent, alice, "complete " + "x" * 250)
    assert calls(answer)[0] == ("list_tasks", {"status": "pending", "q": "x" * 200})
    assert answer["response"].startswith("I couldn't find a pending task matching")


async def test_several_old_tasks_matching_a_title_get_the_which_one_question(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    team, notes = await add(agent, alice, "Team meeting"), await add(agent, alice, "Meeting notes")
    await insert_tasks(committed_sessionmaker, alice.sub, 150)
    asked = await turn(agent, alice, "delete the meeting task")
    assert calls(asked) == [("list_tasks", {"status": "all", "q": "meet"})]
    assert asked["response"] == (
        f"I found 2 tasks matching “meeting”:\n• {notes}: Meeting notes\n• {team}: Team meeting"
        f"\n{rules.ASK_WHICH}"
    )
    none = await turn(agent, alice, "delete the dentist task")
    assert calls(none) == [
        ("list_tasks", {"status": "all", "q": "dentist"}),
        ("list_tasks", {"status": "all"}),
    ]
    assert none["response"].startswith("I couldn't find a task matching “dentist”.")


async def test_a_search_for_more_names_than_the_cap_calls_no_tool(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    """Each name of several is one search: more names than the turn's calls ask to narrow."""
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=2)) as chat:
        answer = await turn(chat, alice, "delete the milk, the dentist and the bill")
        assert (answer["tool_calls"], answer["response"]) == ([], too_many_tool_calls(2))


async def test_a_todo_list_task_keeps_todo_in_its_title(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add todo list review" added "List review": the task word was dropped as in "add todo
    buy milk", which still adds "Buy milk"."""
    review = await turn(agent, alice, "add todo list review")
    assert calls(review) == [("add_task", {"title": "Todo list review"})]
    milk = await turn(agent, alice, "add todo buy milk")
    assert calls(milk) == [("add_task", {"title": "Buy milk"})]


async def test_a_task_asked_to_repeat_on_several_weekdays_is_not_added_and_the_user_is_asked(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "every monday and thursday" added one task due Monday: Thursday was dropped without a
    word. A task repeats daily, weekly or monthly, so nothing is added and the reply says
    how to get each day."""
    answer = await turn(agent, alice, "remind me to go to the gym every monday and thursday")
    assert answer["tool_calls"] == []
    assert answer["response"] == (
        "A task repeats every day, week or month, not on several days of the week, so I "
        "haven't added “Go to the gym”. I can add one weekly task for each day: say “add go "
        "to the gym every Monday”, then “add go to the gym every Thursday”."
    )


async def test_a_list_with_a_task_on_several_weekdays_adds_the_others_and_names_that_task(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add gym every monday and thursday, milk and eggs" added nothing, and the reply
    quoted "Gym , milk and eggs" as one title. Each item of a list is its own task, as with
    "add gym every monday and call mom": milk and eggs are added, and the reply says which
    task repeats on several days and how to add it."""
    answer = await turn(agent, alice, "add gym every monday and thursday, milk and eggs")
    assert calls(answer) == [("add_task", {"title": "Milk"}), ("add_task", {"title": "Eggs"})]
    milk, eggs = (call["result"]["task_id"] for call in answer["tool_calls"])
    assert answer["response"] == (
        "A task repeats every day, week or month, not on several days of the week, so I "
        "haven't added “Gym”. I can add one weekly task for each day: say “add gym every "
        "Monday”, then “add gym every Thursday”. "
        f"Done! I added “Milk” to your list as task {milk}. "
        f"Done! I added “Eggs” to your list as task {eggs}."
    )


async def test_a_task_due_by_end_of_day_is_due_at_five_that_day(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "by end of day" and "eod" were words the dates did not read, and the agent asked."""
    added = await turn(agent, alice, "add send the invoice by end of day friday")
    invoice = added["tool_calls"][0]["result"]["task_id"]
    assert calls(added) == [
        ("add_task", {"title": "Send the invoice", "due_at": "2026-12-04T17:00:00+00:00"})
    ]
    # A time alone: the task's day is kept, as for "make it 4pm".
    report = await add(agent, alice, "Finish the report")
    await turn(agent, alice, f"move task {report} to monday at 10am")
    made = await turn(agent, alice, "make the report due end of day")
    assert calls(made)[-1] == (
        "update_task",
        {"task_id": report, "due_at": "2026-11-30T17:00:00+00:00"},
    )
    today = await turn(agent, alice, f"make task {invoice} due today eod")
    assert today["response"] == f"Updated task {invoice}: I set it due today at 17:00."


async def test_a_task_added_for_today_without_a_time_is_not_due_in_the_past(
    agent: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    """ "add today call mom" said at 16:00 was due today at 09:00, already past: a day without
    a time is 09:00, but today it is the end of the day (17:00) once 09:00 has passed, and its
    last minute once 17:00 has. Tomorrow stays 09:00."""
    clock.advance(hours=1, minutes=30)  # 16:00 UTC, the turn's zone
    today = await turn(agent, alice, "add today call mom")
    assert calls(today) == [
        ("add_task", {"title": "Call mom", "due_at": "2026-11-27T17:00:00+00:00"})
    ]
    assert today["response"].endswith(" — due today at 17:00.")
    tomorrow = await turn(agent, alice, "add tomorrow call grandma")
    assert calls(tomorrow) == [
        ("add_task", {"title": "Call grandma", "due_at": "2026-11-28T09:00:00+00:00"})
    ]
    clock.advance(hours=1, minutes=30)  # 17:30
    late = await turn(agent, alice, "add water the plants today")
    assert calls(late) == [
        ("add_task", {"title": "Water the plants", "due_at": "2026-11-27T23:59:00+00:00"})
    ]
    # The last minute of a day is said as the day alone, as the web client shows it.
    assert late["response"].endswith(" — due today.")


async def test_tagging_a_task_keeps_its_other_tags(agent: httpx.AsyncClient, alice: User) -> None:
    """ "tag task 12 #home" set the task's tags to ["home"], and its other tags were gone.
    A tag is added to the task's own, read first: by its id for a task named by its number
    or as "it", from the listing for one found by its title."""
    added = await turn(agent, alice, "add fix the tap #errands #diy")
    tap = added["tool_calls"][0]["result"]["task_id"]
    tagged = await turn(agent, alice, f"tag task {tap} #home")
    assert calls(tagged) == [
        ("get_task", {"task_id": tap}),
        ("update_task", {"task_id": tap, "tags": ["errands", "diy", "home"]}),
    ]
    assert tagged["response"] == (
        f"Updated task {tap}: I tagged it #home (its tags: #errands #diy #home)."
    )
    by_title = await turn(agent, alice, "tag the tap as plumbing and weekend")
    assert calls(by_title) == [
        ("list_tasks", {"status": "all", "q": "tap"}),
        (
            "update_task",
            {"task_id": tap, "tags": ["errands", "diy", "home", "plumbing", "weekend"]},
        ),
    ]
    labelled = await turn(agent, alice, "add the tag #urgent to it", tagged["conversation_id"])
    assert calls(labelled)[0] == ("get_task", {"task_id": tap})
    assert calls(labelled)[1][1]["tags"][-1] == "urgent"
    listed = await turn(agent, alice, "show my tasks")
    assert listed["tool_calls"][0]["result"][0]["tags"] == [
        "errands",
        "diy",
        "home",
        "plumbing",
        "weekend",
        "urgent",
    ]


async def test_tag_task_with_two_words_adds_both_tags(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "tag task 3 home work" looked for a task "3 home" to tag #work: after a task named by
    its number, each word is a tag, added to the task's own."""
    added = await turn(agent, alice, "add fix the tap #errands")
    tap = added["tool_calls"][0]["result"]["task_id"]
    tagged = await turn(agent, alice, f"tag task {tap} home work")
    assert calls(tagged) == [
        ("get_task", {"task_id": tap}),
        ("update_task", {"task_id": tap, "tags": ["errands", "home", "work"]}),
    ]
    assert tagged["response"] == (
        f"Updated task {tap}: I tagged it #home #work (its tags: #errands #home #work)."
    )


async def test_untagging_a_task_removes_only_that_tag(
    agent: httpx.AsyncClient, alice: User
) -> None:
    added = await turn(agent, alice, "add fix the tap #errands #home #diy")
    tap = added["tool_calls"][0]["result"]["task_id"]
    untagged = await turn(agent, alice, f"untag task {tap} #home")
    assert calls(untagged) == [
        ("get_task", {"task_id": tap}),
        ("update_task", {"task_id": tap, "tags": ["errands", "diy"]}),
    ]
    assert untagged["response"] == (
        f"Updated task {tap}: I removed the tag #home (its tags: #errands #diy)."
    )
    removed = await turn(agent, alice, "remove the diy tag from the tap")
    assert calls(removed) == [
        ("list_tasks", {"status": "all", "q": "tap"}),
        ("update_task", {"task_id": tap, "tags": ["errands"]}),
    ]
    # A tag the task does not have: nothing to change, and the reply says so.
    absent = await turn(agent, alice, f"remove the tag garden from task {tap}")
    assert calls(absent) == [("get_task", {"task_id": tap})]
    assert absent["response"] == (
        f"“Fix the tap” (task {tap}) has no tag #garden, so nothing was changed."
    )


async def test_replacing_a_tasks_tags_takes_the_explicit_words(
    agent: httpx.AsyncClient, alice: User
) -> None:
    added = await turn(agent, alice, "add fix the tap #errands #home")
    tap = added["tool_calls"][0]["result"]["task_id"]
    replaced = await turn(agent, alice, f"set the tags of task {tap} to plumbing and weekend")
    assert calls(replaced) == [("update_task", {"task_id": tap, "tags": ["plumbing", "weekend"]})]
    assert replaced["response"] == (f"Updated task {tap}: I set its tags to #plumbing #weekend.")


async def test_a_tag_beyond_the_ten_a_task_holds_changes_nothing_and_says_so(
    agent: httpx.AsyncClient, alice: User
) -> None:
    added = await turn(agent, alice, "add pack for the trip #a #b #c #d #e #f #g #h #i #j")
    trip = added["tool_calls"][0]["result"]["task_id"]
    full = await turn(agent, alice, f"tag task {trip} #k")
    assert calls(full) == [("get_task", {"task_id": trip})]
    assert full["response"] == (
        f"“Pack for the trip” (task {trip}) has 10 tags and a task can have at most 10, so I "
        "didn't add #k; nothing was changed. Remove one first, e.g. "
        f"“untag task {trip} #a”."
    )
    # A tag it already has changes nothing either.
    again = await turn(agent, alice, f"tag task {trip} #c")
    assert calls(again) == [("get_task", {"task_id": trip})]
    assert again["response"] == (
        f"“Pack for the trip” (task {trip}) is already tagged #c, so nothing was changed."
    )


async def test_tagging_more_tasks_than_the_cap_allows_reads_and_changes_none(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, alice: User
) -> None:
    """Each task is read before it is tagged: two calls a task, counted against the cap."""
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url, max_tool_calls_per_turn=3)) as chat:
        first, second = await add(chat, alice, "Fix the tap"), await add(chat, alice, "Call mom")
        over = await turn(chat, alice, f"tag tasks {first} and {second} #home")
        assert (over["tool_calls"], over["response"]) == ([], too_many_tool_calls(3))


async def test_bumping_a_task_to_a_priority_sets_its_priority(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "bump the dentist to high priority" asked what was meant: "bump ... to" was read as
    a move, and a priority is no day. A move to a day stays a move."""
    dentist = await add(agent, alice, "Book the dentist")
    await add(agent, alice, "Call mom")
    bumped = await turn(agent, alice, "bump the dentist to high priority")
    assert calls(bumped) == [
        ("list_tasks", {"status": "all", "q": "dentist"}),
        ("update_task", {"task_id": dentist, "priority": "high"}),
    ]
    assert bumped["response"] == f"Updated task {dentist}: I set its priority to high."
    dropped = await turn(agent, alice, f"drop task {dentist} to low priority")
    assert calls(dropped) == [("update_task", {"task_id": dentist, "priority": "low"})]
    raised = await turn(agent, alice, "raise it up to urgent", dropped["conversation_id"])
    assert calls(raised) == [("update_task", {"task_id": dentist, "priority": "high"})]
    moved = await turn(agent, alice, "bump the dentist to friday")
    assert calls(moved) == [
        ("list_tasks", {"status": "all", "q": "dentist"}),
        ("update_task", {"task_id": dentist, "due_at": "2026-12-04T09:00:00+00:00"}),
    ]


async def test_a_trailing_instead_or_then_does_not_change_how_a_command_is_read(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "make task 3 4pm instead" added a task "3 instead" due at 16:00: a task named by its
    number was no reference before a time, and "instead" stayed in the words."""
    added = await turn(agent, alice, "add dentist appointment on friday at 3pm")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    timed = await turn(agent, alice, f"make task {dentist} 4pm instead")
    assert calls(timed) == [
        ("get_task", {"task_id": dentist}),
        ("update_task", {"task_id": dentist, "due_at": "2026-12-04T16:00:00+00:00"}),
    ]
    moved = await turn(agent, alice, f"move task {dentist} to monday then")
    assert calls(moved) == [
        ("get_task", {"task_id": dentist}),
        ("update_task", {"task_id": dentist, "due_at": "2026-11-30T16:00:00+00:00"}),
    ]
    polite = await turn(agent, alice, "make it 5pm instead please", moved["conversation_id"])
    assert calls(polite)[-1] == (
        "update_task",
        {"task_id": dentist, "due_at": "2026-11-30T17:00:00+00:00"},
    )
    listed = await turn(agent, alice, "show my tasks")
    assert [t["title"] for t in listed["tool_calls"][0]["result"]] == ["Dentist appointment"]


async def test_a_task_with_its_own_repetition_and_another_after_and_are_added_as_two(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add gym every monday and call mom" added one weekly task "Gym and call mom": the
    parts were split only when both start with a verb. A first part that says its own day or
    repetition ends there, so a part after "and" that starts with a verb is a task of its
    own, as with a comma."""
    answer = await turn(agent, alice, "add gym every monday and call mom")
    assert calls(answer) == [
        (
            "add_task",
            {
                "title": "Gym",
                "due_at": "2026-11-30T09:00:00+00:00",
                "recurrence": "weekly",
                "time_zone": "UTC",
            },
        ),
        ("add_task", {"title": "Call mom"}),
    ]
    # Without a verb after "and", the words stay one task, as "add fish and chips" does.
    one = await turn(agent, alice, "add dinner on friday and drinks")
    assert [name for name, _ in calls(one)] == ["add_task"]
    assert calls(one)[0][1]["title"] == "Dinner and drinks"


async def test_a_completion_stated_as_a_fact_is_matched_among_all_the_pending_tasks(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """With 150 newer tasks, "I bought the groceries" found nothing: only the newest 100
    pending tasks were matched. The object's words are searched for, as a title is; a match
    on the verb alone is still looked for among the newest pending tasks."""
    groceries = await add(agent, alice, "Buy groceries")
    milk = await add(agent, alice, "Buy milk")
    asked = await turn(agent, alice, "I bought the bread")
    assert calls(asked) == [
        ("list_tasks", {"status": "pending", "q": "bread"}),
        ("list_tasks", {"status": "pending"}),
    ]
    assert asked["response"] == (
        f"I found 2 tasks:\n• {milk}: Buy milk\n• {groceries}: Buy groceries\n{rules.ASK_WHICH}"
    )
    await insert_tasks(committed_sessionmaker, alice.sub, 150)
    done = await turn(agent, alice, "I bought the groceries")
    assert calls(done) == [
        ("list_tasks", {"status": "pending", "q": "grocer"}),
        ("complete_task", {"task_id": groceries}),
    ]


async def test_one_task_offered_is_counted_in_the_singular(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """A stated fact matching one task by its verb alone is asked about: "I found 1 tasks"."""
    milk = await add(agent, alice, "Buy milk")
    asked = await turn(agent, alice, "I bought the bread")
    assert asked["response"] == f"I found 1 task:\n• {milk}: Buy milk\n{rules.ASK_WHICH}"


async def test_undo_undoes_only_the_previous_turns_change(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "undo" after two questions deleted the task added three turns before, unasked. Only the
    turn right before is undone; a turn that changed nothing leaves nothing to undo."""
    added = await turn(agent, alice, "add write thank-you notes")
    conversation = added["conversation_id"]
    await turn(agent, alice, "what's due today?", conversation)
    await turn(agent, alice, "how many tasks do I have?", conversation)
    undone = await turn(agent, alice, "undo", conversation)
    assert calls(undone) == []
    assert undone["response"] == rules.NOTHING_TO_UNDO

    failed = await turn(agent, alice, "gym is done", conversation)
    assert [name for name, _ in calls(failed)][-1] == "list_tasks"
    after_failed = await turn(agent, alice, "undo", conversation)
    assert calls(after_failed) == []

    task_id = await add(agent, alice, "Call mom")
    done = await turn(agent, alice, f"mark task {task_id} done", conversation)
    assert calls(done) == [("complete_task", {"task_id": task_id})]
    reopened = await turn(agent, alice, "undo that", conversation)
    assert calls(reopened) == [("complete_task", {"task_id": task_id, "completed": False})]


async def test_undo_after_adding_several_tasks_deletes_each_of_them(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add buy milk, eggs and bread" then "undo" deleted "Buy bread" alone, and said so as if
    that were the turn's whole change: all three go, after a yes, as several tasks do."""
    added = await turn(agent, alice, "add buy milk, eggs and bread")
    milk, eggs, bread = (call["result"]["task_id"] for call in added["tool_calls"])
    conversation = added["conversation_id"]
    asked = await turn(agent, alice, "undo", conversation)
    assert calls(asked) == []
    assert all(f"{i}: Buy" in asked["response"] for i in (milk, eggs, bread)), asked["response"]
    undone = await turn(agent, alice, "yes", conversation)
    assert calls(undone) == [("delete_tasks", {"task_ids": [milk, eggs, bread]})]
    listed = await turn(agent, alice, "show my tasks")
    assert listed["tool_calls"][0]["result"] == []


async def test_a_repetition_no_task_can_hold_is_not_added_and_the_reply_says_how(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add water plants every 3 days" added "Water plants every 3 days" repeating never: a
    task repeats daily, weekly or monthly, so it is not added and the reply says how to add
    it, as for a task on several weekdays."""
    for message, title, said in [
        ("add water plants every 3 days", "Water plants", "every 3 days"),
        ("add pay bills every 2 weeks", "Pay bills", "every 2 weeks"),
        ("add take meds twice a day", "Take meds", "twice a day"),
    ]:
        answer = await turn(agent, alice, message)
        assert answer["tool_calls"] == [], message
        lower = title[:1].lower() + title[1:]
        assert answer["response"] == (
            f"A task repeats every day, week or month, not {said}, so I haven't added "
            f"“{title}”. Say “add {lower} every day” (or every week, or every month), or "
            f"“add {lower}” for a task that doesn't repeat."
        )
    weekdays = await turn(agent, alice, "add standup every weekday at 9am")
    assert weekdays["tool_calls"] == []
    assert weekdays["response"].startswith(
        "A task repeats every day, week or month, not on several days of the week, so I "
        "haven't added “Standup”. I can add one weekly task for each day: say “add standup "
        "every Monday”, then “add standup every Tuesday”"
    )
    for message, recurrence in [
        ("add gym every day", "daily"),
        ("add review every week", "weekly"),
        ("add gym every monday", "weekly"),
        ("add rent every month", "monthly"),
        ("add pay rent on the 1st every month", "monthly"),
    ]:
        added = await turn(agent, alice, message)
        assert [name for name, _ in calls(added)] == ["add_task"], message
        assert calls(added)[0][1]["recurrence"] == recurrence, message


async def test_a_bare_number_after_make_that_is_the_hour_of_the_tasks_due_time(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add call the bank tomorrow at 10" then "wait, make that 11" added a task "11". A
    number alone after "make that/it" is the hour of a task that has a due date, on its day;
    a task without one is left alone, since the number may be no time at all."""
    added = await turn(agent, alice, "add call the bank tomorrow at 10")
    bank = added["tool_calls"][0]["result"]["task_id"]
    conversation = added["conversation_id"]
    for message, hour in [("wait, make that 11", 11), ("change it to 9", 9), ("make it 3", 15)]:
        moved = await turn(agent, alice, message, conversation)
        assert calls(moved)[-1] == (
            "update_task",
            {"task_id": bank, "due_at": f"2026-11-28T{hour:02}:00:00+00:00"},
        ), message
    eggs = await turn(agent, alice, "add buy eggs")
    task = eggs["tool_calls"][0]["result"]["task_id"]
    left = await turn(agent, alice, "make it 3", eggs["conversation_id"])
    assert [name for name, _ in calls(left)] == ["get_task"]
    assert left["response"] == (
        f"Task {task} has no due date, so I changed nothing: to give it one, say e.g. “make it "
        "due tomorrow at 15:00”."
    )
    # After a task named by its number the number may be anything: nothing is changed.
    for message in (f"change task {bank} to 5", f"set task {bank} to 10"):
        unclear = await turn(agent, alice, message, conversation)
        assert "update_task" not in [name for name, _ in calls(unclear)], message


async def test_add_it_answers_the_question_whether_to_add_the_phrase(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """After "do you want me to add it as a new task or look it up?" about "milk tmrw", "add
    it" added a task "It" and "add it as a task" one "It as a task": the answer adds the
    phrase asked about, read as a new task."""
    for answer in ["add it", "add it as a task", "yes, add it"]:
        asked = await turn(agent, alice, "milk tmrw")
        assert calls(asked) == [], asked["response"]
        added = await turn(agent, alice, answer, asked["conversation_id"])
        assert calls(added) == [
            ("add_task", {"title": "Milk", "due_at": "2026-11-28T09:00:00+00:00"})
        ], answer
    # A number in answer names a task: the question's phrase is never sent with its id.
    for answer in ["1", "task 1", "#1"]:
        asked = await turn(agent, alice, "milk tmrw")
        numbered = await turn(agent, alice, answer, asked["conversation_id"])
        assert [name for name, _ in calls(numbered)] != ["add_task"], answer
        assert "Extra inputs" not in numbered["response"], answer


async def test_it_after_adding_several_tasks_asks_which_one(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "add buy milk, eggs and bread" then "make it high priority" changed only "Buy bread",
    silently: "it" is any of the three, so the agent asks which, and the answer picks it."""
    added = await turn(agent, alice, "add buy milk, eggs and bread")
    milk, eggs, bread = (call["result"]["task_id"] for call in added["tool_calls"])
    conversation = added["conversation_id"]
    asked = await turn(agent, alice, "make it high priority", conversation)
    assert calls(asked) == []
    assert asked["response"] == (
        f"I found 3 tasks:\n• {milk}: Buy milk\n• {eggs}: Buy eggs\n• {bread}: Buy bread\n"
        f"{rules.ASK_WHICH}"
    )
    chosen = await turn(agent, alice, "the second one", conversation)
    assert calls(chosen) == [("update_task", {"task_id": eggs, "priority": "high"})]
    # One task added: "it" is that task, as before.
    one = await turn(agent, alice, "add call mom")
    mom = one["tool_calls"][0]["result"]["task_id"]
    made = await turn(agent, alice, "make it high priority", one["conversation_id"])
    assert calls(made) == [("update_task", {"task_id": mom, "priority": "high"})]


async def test_a_chore_said_with_a_word_for_deleting_is_added_and_deletes_nothing(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "remove the trash tonight" looked for a task "trash tonight" to delete, and "drop off
    the package tomorrow" for "off the package tomorrow": a task that had those words went,
    never to come back (a deletion cannot be undone)."""
    trash = await add(agent, alice, "Take out the trash tonight")
    package = await add(agent, alice, "Pick up the package tomorrow")
    for said, title, due in (
        ("remove the trash tonight", "Remove the trash", "2026-11-27T20:00:00+00:00"),
        ("drop off the package tomorrow", "Drop off the package", "2026-11-28T09:00:00+00:00"),
        ("trash out tonite", "Trash out", "2026-11-27T20:00:00+00:00"),
    ):
        answer = await turn(agent, alice, said)
        assert calls(answer) == [("add_task", {"title": title, "due_at": due})], said
    listed = await turn(agent, alice, "show my tasks")
    assert {trash, package} <= {task["id"] for task in listed["tool_calls"][0]["result"]}
    # A task named as one is still deleted.
    deleted = await turn(agent, alice, f"remove task {trash}")
    assert calls(deleted) == [("delete_task", {"task_id": trash})]


async def test_a_chore_said_with_a_word_for_deleting_never_deletes_a_task_unasked(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "cancel my gym membership" deleted the task "Cancel gym membership" (the chore itself)
    or "Gym membership", and "clear the table" the task "Book a table", with no question: a
    deletion cannot be undone."""
    # (a) No task matches: nothing deleted, and how to add the chore.
    none = await turn(agent, alice, "cancel my gym membership")
    assert [name for name, _ in calls(none)] == ["list_tasks", "list_tasks"]
    assert none["response"] == (
        "I couldn't find a task matching “gym membership”, so I deleted nothing. If “Cancel "
        "my gym membership” is something to do, say “add cancel my gym membership” and I'll "
        "add it as a new task."
    )
    added = await turn(agent, alice, "add cancel my gym membership")
    assert calls(added) == [("add_task", {"title": "Cancel my gym membership"})]
    await turn(agent, alice, f"delete task {added['tool_calls'][0]['result']['task_id']}")

    # (b) The task is the chore said again: asked, and kept unless the answer is yes.
    chore = await add(agent, alice, "Cancel gym membership")
    asked = await turn(agent, alice, "cancel my gym membership")
    assert calls(asked) == [("list_tasks", {"status": "all", "q": "membership"})]
    assert asked["response"] == (
        f"“Cancel gym membership” (task {chore}) is already on your list. Shall I delete it? "
        "Reply “yes” to delete it; anything else leaves it as it is."
    )
    kept = await turn(agent, alice, "no", asked["conversation_id"])
    assert calls(kept) == []
    await turn(agent, alice, f"delete task {chore}")

    # (c) A task of the thing's name, the words said of the user's own: asked, then deleted
    # after a yes.
    membership = await add(agent, alice, "Gym membership")
    asked = await turn(agent, alice, "cancel my gym membership")
    assert [name for name, _ in calls(asked)] == ["list_tasks"]
    assert asked["response"].startswith(
        f"Do you mean the task “Gym membership” (task {membership})? Shall I delete it?"
    )
    assert asked["response"].endswith("say “add cancel my gym membership”.")
    yes = await turn(agent, alice, "yes", asked["conversation_id"])
    assert calls(yes) == [("delete_tasks", {"task_ids": [membership]})]
    # The one task is named, as a delete said outright names it (not "I deleted 1 task").
    assert yes["response"] == f"Done — I deleted “Gym membership” (task {membership})."

    # Another chore on the same thing: asked about, never deleted unasked.
    table = await add(agent, alice, "Book a table")
    asked = await turn(agent, alice, "clear the table")
    assert [name for name, _ in calls(asked)] == ["list_tasks"]
    assert asked["response"].startswith(f"Do you mean the task “Book a table” (task {table})?")
    listed = await turn(agent, alice, "show my tasks", asked["conversation_id"])
    assert [task["id"] for task in listed["tool_calls"][0]["result"]] == [table]


async def test_add_it_after_a_question_about_deleting_adds_the_chore(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """After "Do you mean the task “Gym membership”? ... say “add cancel my gym membership”",
    "add it" added a task "It" and "no, add it as a new task" cancelled: the chore offered is
    kept with the question, and "add it" adds it."""
    membership = await add(agent, alice, "Gym membership")
    for answer in ("add it", "no, add it as a new task", "add that"):
        asked = await turn(agent, alice, "cancel my gym membership")
        assert asked["response"].startswith(
            f"Do you mean the task “Gym membership” (task {membership})?"
        )
        added = await turn(agent, alice, answer, asked["conversation_id"])
        assert calls(added) == [("add_task", {"title": "Cancel my gym membership"})], answer
        await turn(agent, alice, f"delete task {added['tool_calls'][0]['result']['task_id']}")
    # Nothing matches: the offer is "add ...", and "add it" takes it.
    offered = await turn(agent, alice, "throw out the old milk")
    assert "say “add throw out the old milk”" in offered["response"]
    added = await turn(agent, alice, "add it", offered["conversation_id"])
    assert calls(added) == [("add_task", {"title": "Throw out the old milk"})]


async def test_the_chore_offered_is_in_the_users_own_words(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "cancel my 3pm call" offered “add cancel my call” and "clear the #work stuff" “Clear
    the stuff”: the time and the tag were lost from the chore offered to add."""
    call = await turn(agent, alice, "cancel my 3pm call")
    assert (
        "If “Cancel my 3pm call” is something to do, say “add cancel my 3pm call”"
        in (call["response"])
    )
    added = await turn(agent, alice, "add it", call["conversation_id"])
    assert calls(added) == [
        ("add_task", {"title": "Cancel my call", "due_at": "2026-11-27T15:00:00+00:00"})
    ]
    stuff = await turn(agent, alice, "clear the #work stuff")
    assert "If “Clear the #work stuff” is something to do" in stuff["response"]


async def test_a_task_named_to_be_deleted_is_still_deleted_without_a_question(
    agent: httpx.AsyncClient, alice: User
) -> None:
    milk = await add(agent, alice, "Buy milk")
    rent = await add(agent, alice, "Pay rent")
    dentist = await add(agent, alice, "Dentist appointment")
    gym = await add(agent, alice, "Gym")
    for said, task_id in (
        ("delete the milk task", milk),
        (f"remove task {rent}", rent),
        ("cancel the dentist", dentist),
        ("drop gym", gym),
    ):
        answer = await turn(agent, alice, said)
        assert calls(answer)[-1] == ("delete_task", {"task_id": task_id}), said


async def test_a_date_in_numbers_is_read_by_the_users_way_and_said_in_the_reply(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "pay rent 12/25" was answered with "Sorry, I can only help with your task list": a
    date in numbers was no date. When either number could be the month, the user's zone says
    which comes first, and the reply says the day read, so a wrong guess shows at once."""
    for said in ("pay rent 12/25", "due 12/25 pay rent"):
        rent = await turn(agent, alice, said)
        assert calls(rent) == [
            ("add_task", {"title": "Pay rent", "due_at": "2026-12-25T09:00:00+00:00"})
        ], said
        assert rent["response"].endswith("— due Fri 25 Dec at 09:00."), said
    for zone, due, said in (
        ("America/New_York", "2027-03-04T09:00:00-05:00", "Thu 4 Mar 2027"),
        ("Europe/Paris", "2027-04-03T09:00:00+02:00", "Sat 3 Apr 2027"),
    ):
        answer = await turn(agent, alice, "add dentist on 3/4", timezone=zone)
        assert calls(answer) == [("add_task", {"title": "Dentist", "due_at": due})], zone
        assert answer["response"].endswith(f"— due {said} at 09:00."), zone


async def test_a_short_weekday_name_or_a_week_after_a_day_is_the_tasks_day(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "call mom sat" was "Sorry, I can only help with your task list" and "dentist friday
    after next" too."""
    mom = await turn(agent, alice, "call mom sat")
    assert calls(mom) == [
        ("add_task", {"title": "Call mom", "due_at": "2026-11-28T09:00:00+00:00"})
    ]
    asked = await turn(agent, alice, "dentist friday after next")
    assert calls(asked) == []
    assert asked["response"].startswith("Just to be sure about “dentist friday after next”")
    added = await turn(agent, alice, "add it", asked["conversation_id"])
    assert calls(added) == [
        ("add_task", {"title": "Dentist", "due_at": "2026-12-11T09:00:00+00:00"})
    ]


async def test_is_a_task_done_is_answered_about_that_task_not_with_the_whole_list(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "is task 3 done?" listed every task, and "is the dentist done?" the tasks matching
    it, without saying whether it was done."""
    added = await turn(agent, alice, "add dentist appointment on friday at 10am")
    dentist = added["tool_calls"][0]["result"]["task_id"]
    bill = await add(agent, alice, "Pay bill")
    finish, send = (
        await add(agent, alice, "Finish the report"),
        await add(agent, alice, "Send the report"),
    )
    await add(agent, alice, "Buy milk")
    await turn(agent, alice, f"mark task {bill} as done")
    for said, expected, reply in (
        (
            "is the dentist done?",
            [("list_tasks", {"status": "all", "q": "dentist"})],
            f"No, “Dentist appointment” (task {dentist}) is not done yet; it's due Fri 4 Dec at "
            "10:00.",
        ),
        (
            f"is task {bill} done?",
            [("get_task", {"task_id": bill})],
            f"Yes, “Pay bill” (task {bill}) is done.",
        ),
        (
            f"what's the status of task {dentist}",
            [("get_task", {"task_id": dentist})],
            f"No, “Dentist appointment” (task {dentist}) is not done yet; it's due Fri 4 Dec at "
            "10:00.",
        ),
        (
            "has the report been finished yet?",
            [("list_tasks", {"status": "all", "q": "report"})],
            f"I found 2 tasks like that:\nNo, “Send the report” (task {send}) is not done yet.\n"
            f"No, “Finish the report” (task {finish}) is not done yet.",
        ),
        (
            f"when's task {dentist} due",
            [("get_task", {"task_id": dentist})],
            f"“Dentist appointment” (task {dentist}) is due Fri 4 Dec at 10:00.",
        ),
    ):
        answer = await turn(agent, alice, said)
        assert calls(answer) == expected, said
        assert answer["response"] == reply, said


async def test_a_need_to_cancel_a_plan_never_deletes_a_task_unasked(
    agent: httpx.AsyncClient, alice: User
) -> None:
    """ "I need to cancel the dentist" deleted "Dentist appointment" with no question: a need
    may be the chore of cancelling it as well as the task's end, so the agent asks first."""
    dentist = await add(agent, alice, "Dentist appointment")
    answer = await turn(agent, alice, "I need to cancel the dentist")
    assert [name for name, _ in calls(answer)] == ["list_tasks"]
    assert answer["response"].startswith(
        f"Do you mean the task “Dentist appointment” (task {dentist})? Shall I delete it?"
    )
    yes = await turn(agent, alice, "yes", answer["conversation_id"])
    assert calls(yes) == [("delete_tasks", {"task_ids": [dentist]})]
