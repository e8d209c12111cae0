"""The LLM agent against a local fake OpenAI-compatible server and the real todo service.

The fake returns scripted tool calls and records what it was sent, so the tool loop, the
history the model sees and the failure paths are exercised without the internet.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.agents.base import too_many_tool_calls
from chat_service.agents.openai_agent import (
    ARGUMENTS_MAX_CHARS,
    HISTORY_MAX_CHARS,
    REPLY_MAX_CHARS,
    message_chars,
)
from tests.chat.conftest import User, stored_messages
from tests.support.database import insert_tasks
from tests.support.errors import assert_error
from tests.support.fake_openai import FakeOpenAI, Step, call, reply
from tests.support.serving import serve

TOOLS = {
    "add_task",
    "list_tasks",
    "get_task",
    "complete_task",
    "delete_task",
    "update_task",
    "complete_tasks",
    "delete_tasks",
    "list_notifications",
    "snooze_notification",
    "dismiss_notification",
}


@pytest.fixture
async def llm(openai_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(openai_app()) as client:
        yield client


async def say(
    client: httpx.AsyncClient, user: User, message: str, conversation: int | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"message": message}
    if conversation is not None:
        body["conversation_id"] = conversation
    return await client.post("/api/chat", json=body, headers=user.headers)


async def test_a_tool_call_then_the_reply(
    llm: httpx.AsyncClient,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    model.script(call("add_task", title="Buy groceries"), reply("Added “Buy groceries”."))
    response = await say(llm, alice, "Add a task to buy groceries")
    assert response.status_code == 200, response.text
    body = response.json()
    task_id = body["tool_calls"][0]["result"]["task_id"]
    assert body["response"] == "Added “Buy groceries”."
    assert body["tool_calls"] == [
        {
            "name": "add_task",
            "arguments": {"title": "Buy groceries"},
            "result": {"task_id": task_id, "status": "created", "title": "Buy groceries"},
        }
    ]

    first, second = model.requests
    assert model.authorizations == ["Bearer test-key", "Bearer test-key"]
    assert first["model"] == "fake-model"
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == "Add a task to buy groceries"
    offered = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert set(offered) == TOOLS
    # The model never sees (or sets) whose tasks these are.
    assert all("user_id" not in f["parameters"]["properties"] for f in offered.values())
    assert offered["add_task"]["parameters"]["required"] == ["title"]
    # Reminders and the reminder notifications are the model's to use as well.
    for name in ("add_task", "update_task"):
        assert "reminders" in offered[name]["parameters"]["properties"]
    assert set(offered["snooze_notification"]["parameters"]["required"]) == {
        "notification_id",
        "minutes",
    }
    assert offered["dismiss_notification"]["parameters"]["required"] == ["notification_id"]

    # Round two: the model's tool call and the tool's answer, in order.
    assistant, tool = second["messages"][2], second["messages"][3]
    assert assistant["tool_calls"][0]["function"]["name"] == "add_task"
    assert tool["role"] == "tool"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert json.loads(tool["content"]) == body["tool_calls"][0]["result"]

    stored = await stored_messages(committed_sessionmaker, body["conversation_id"])
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Add a task to buy groceries"),
        ("assistant", "Added “Buy groceries”."),
    ]
    assert stored[1].tool_calls == body["tool_calls"]


async def test_a_multi_step_tool_loop(
    llm: httpx.AsyncClient, model: FakeOpenAI, alice: User
) -> None:
    model.script(call("add_task", title="Team meeting"), reply("Added."))
    added = (await say(llm, alice, "add team meeting")).json()
    meeting = added["tool_calls"][0]["result"]["task_id"]

    model.script(
        call("list_tasks", status="all", q="meeting"),
        call("delete_task", task_id=meeting),
        reply("I deleted “Team meeting”."),
    )
    response = await say(llm, alice, "Delete the meeting task", added["conversation_id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(c["name"], c["arguments"]) for c in body["tool_calls"]] == [
        ("list_tasks", {"status": "all", "q": "meeting"}),
        ("delete_task", {"task_id": meeting}),
    ]
    assert body["tool_calls"][0]["result"][0]["title"] == "Team meeting"
    assert len(model.requests) == 3

    # The history the model saw: the earlier turn, its tool call replayed with its result.
    messages = model.requests[0]["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[1]["content"] == "add team meeting"
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "add_task",
        "arguments": json.dumps({"title": "Team meeting"}),
    }
    assert json.loads(messages[3]["content"])["task_id"] == meeting
    assert messages[4]["content"] == "Added."
    assert messages[5]["content"] == "Delete the meeting task"


async def test_the_model_sees_a_bounded_window_of_history(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    async with serve(openai_app(history_window=2)) as client:
        conversation = None
        for n in range(3):
            model.script(reply(f"answer {n}"))
            body = (await say(client, alice, f"question {n}", conversation)).json()
            conversation = body["conversation_id"]
        model.script(reply("last"))
        await say(client, alice, "question 3", conversation)
    messages = model.requests[0]["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "question 2"),
        ("assistant", "answer 2"),
        ("user", "question 3"),
    ]


async def test_a_user_id_chosen_by_the_model_is_ignored(
    llm: httpx.AsyncClient,
    model: FakeOpenAI,
    alice: User,
    bob: User,
) -> None:
    model.script(call("add_task", title="Planted", user_id=bob.sub), reply("Done."))
    body = (await say(llm, alice, "add planted")).json()
    assert body["tool_calls"][0]["arguments"] == {"title": "Planted"}
    model.script(call("list_tasks", status="all"), reply("Nothing."))
    bobs = (await say(llm, bob, "my tasks?")).json()
    assert bobs["tool_calls"][0]["result"] == []


async def test_a_recurring_task_the_model_adds_keeps_the_users_time_zone(
    llm: httpx.AsyncClient, model: FakeOpenAI, alice: User
) -> None:
    model.script(
        call("add_task", title="Stand-up", recurrence="daily"),
        call("add_task", title="Call Tokyo", recurrence="weekly", time_zone="Asia/Tokyo"),
        call("add_task", title="Water", recurrence="weekly", time_zone=None),
        call("add_task", title="Once", due_at="2026-11-28T09:00:00+01:00"),
        reply("Added."),
    )
    body = {"message": "add them", "timezone": "Europe/Paris"}
    answer = (await llm.post("/api/chat", json=body, headers=alice.headers)).json()
    assert [made["arguments"].get("time_zone") for made in answer["tool_calls"]] == [
        "Europe/Paris",  # the turn's zone, since the model gave none
        "Asia/Tokyo",  # the model's own choice stands
        "Europe/Paris",  # a null is no choice
        None,  # not recurring: no zone sent
    ]
    model.script(call("list_tasks"), reply("Here."))
    listed = (await say(llm, alice, "my tasks?")).json()
    zones = {task["title"]: task["time_zone"] for task in listed["tool_calls"][0]["result"]}
    assert zones == {
        "Stand-up": "Europe/Paris",
        "Call Tokyo": "Asia/Tokyo",
        "Water": "Europe/Paris",
        "Once": None,
    }
    offered = {tool["function"]["name"]: tool["function"] for tool in model.requests[0]["tools"]}
    for name in ("add_task", "update_task"):
        assert "time_zone" in offered[name]["parameters"]["properties"]


async def test_tool_errors_go_back_to_the_model(
    llm: httpx.AsyncClient, model: FakeOpenAI, alice: User
) -> None:
    model.script(
        call("complete_task", task_id=424242),
        Step(tool_calls=(("add_task", {}),), raw_arguments="{not json"),
        call("no_such_tool"),
        reply("Sorry, I could not find that task."),
    )
    response = await say(llm, alice, "complete task 424242")
    assert response.status_code == 200, response.text
    results = [c["result"] for c in response.json()["tool_calls"]]
    assert results[0] == {"error": "Task 424242 not found", "code": "not_found"}
    assert results[1] == {"error": "The arguments were not valid JSON"}
    assert "no_such_tool" in results[2]["error"]
    last = model.requests[-1]["messages"]
    assert json.loads(last[-1]["content"])["error"]  # the model read the refusal


@pytest.mark.parametrize(
    ("steps", "status", "code"),
    [
        ((Step(status=500),), 502, "model_error"),
        ((Step(status=429),), 502, "model_error"),
        ((Step(hang=True),), 504, "model_timeout"),
        ((Step(content=""),), 502, "model_error"),
        (tuple(call("list_tasks") for _ in range(3)), 502, "model_error"),
    ],
    ids=["server error", "rate limited", "timeout", "empty answer", "endless tools"],
)
async def test_model_failures_are_errors_and_keep_the_users_message(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    steps: tuple[Step, ...],
    status: int,
    code: str,
) -> None:
    model.script(*steps)
    # Half a second for the model that never answers; the others answer at once, which on a
    # loaded machine can still take longer than that.
    timeout = 0.5 if code == "model_timeout" else 10.0
    app = openai_app(openai_timeout_seconds=timeout, openai_max_tool_rounds=2)
    async with serve(app) as client:
        response = await say(client, alice, "What's pending?")
    assert_error(response, status, code)
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "What's pending?")]


async def test_a_model_failure_mid_stream_is_an_error_event(
    llm: httpx.AsyncClient,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    model.script(call("list_tasks", status="all"), Step(status=500))
    response = await llm.post(
        "/api/chat",
        json={"message": "show my tasks"},
        headers={**alice.headers, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    names = [b.split("\n")[0] for b in response.text.split("\n\n") if b.strip()]
    assert names == ["event: tool_call", "event: error"]
    assert '"code":"model_error"' in response.text
    assert [m.role for m in await stored_messages(committed_sessionmaker)] == ["user"]


def test_the_openai_agent_needs_a_key(chat_settings: Any) -> None:
    with pytest.raises(ValueError, match="CHAT_OPENAI_API_KEY"):
        chat_settings(agent="openai")


async def test_a_round_past_the_tool_call_cap_runs_none_of_its_calls(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    eleven = Step(tool_calls=tuple(("add_task", {"title": f"Task {n}"}) for n in range(11)))
    model.script(eleven, reply("never asked"))
    async with serve(openai_app()) as client:
        body = (await say(client, alice, "add eleven tasks")).json()
        assert body["tool_calls"] == []
        assert body["response"] == too_many_tool_calls(10)
        assert len(model.requests) == 1
        model.script(call("list_tasks", status="all"), reply("Nothing."))
        listed = (await say(client, alice, "my tasks?")).json()
    assert listed["tool_calls"][0]["result"] == []


async def test_the_cap_counts_calls_across_rounds(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    two = Step(tool_calls=(("add_task", {"title": "A"}), ("add_task", {"title": "B"})))
    model.script(two, two, reply("never asked"))
    async with serve(openai_app(max_tool_calls_per_turn=3)) as client:
        body = (await say(client, alice, "add four tasks")).json()
    assert [c["arguments"]["title"] for c in body["tool_calls"]] == ["A", "B"]
    assert body["response"] == too_many_tool_calls(3)
    assert len(model.requests) == 2


async def test_the_history_sent_to_the_model_stays_within_its_budget(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Every earlier listing is replayed on each call to the model: ten long listings per
    # stored reply would make each later turn cost about 80,000 characters per reply.
    # The longest title and description the API accepts.
    await insert_tasks(
        committed_sessionmaker,
        alice.sub,
        100,
        title="t" * 200,
        description="d" * 1000,
        tags=["work", "home"],
    )
    ten_listings = Step(tool_calls=tuple(("list_tasks", {"status": "all"}) for _ in range(10)))
    async with serve(openai_app()) as client:
        conversation = None
        for n in range(3):
            model.script(ten_listings, reply(f"answer {n}"))
            body = (await say(client, alice, f"list {n}", conversation)).json()
            assert len(body["tool_calls"]) == 10
            conversation = body["conversation_id"]
        model.script(reply("last"))
        assert (await say(client, alice, "and now?", conversation)).status_code == 200
    history = model.requests[-1]["messages"][1:-1]
    assert sum(map(message_chars, history)) <= HISTORY_MAX_CHARS
    # The newest messages are the ones kept, each tool call still followed by its answer.
    assert history[-1] == {"role": "assistant", "content": "answer 2"}
    assert {"role": "user", "content": "list 2"} in history
    assert {"role": "user", "content": "list 0"} not in history
    listed = [m for m in history if m["role"] == "tool"]
    assert listed
    assert len(listed) % 10 == 0
    assert all(m["content"].endswith("…(truncated)") for m in listed)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    """A chat completion whose one choice is ``message``, as an endpoint would send it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("field", ["max_completion_tokens", "max_tokens"])
async def test_the_model_is_asked_for_at_most_the_output_budget(
    openai_app: Any, model: FakeOpenAI, alice: User, field: str
) -> None:
    model.script(reply("Hello."))
    app = openai_app(openai_max_output_tokens=300, openai_max_output_tokens_field=field)
    async with serve(app) as client:
        assert (await say(client, alice, "hi")).status_code == 200
    (asked,) = model.requests
    assert asked[field] == 300
    (other,) = {"max_completion_tokens", "max_tokens"} - {field}
    assert other not in asked


async def test_fields_and_values_the_agent_does_not_read_are_not_checked(
    llm: httpx.AsyncClient, model: FakeOpenAI, alice: User
) -> None:
    # Compatible servers add their own (Groq's service_tier "on_demand", other finish reasons).
    answer = _completion({"role": "assistant", "content": "Hi.", "reasoning": {"x": 1}})
    answer["service_tier"] = "on_demand"
    answer["choices"][0]["finish_reason"] = "insufficient_system_resource"
    answer["usage"] = None
    model.script(Step(body=json.dumps(answer).encode()))
    response = await say(llm, alice, "hi")
    assert response.status_code == 200, response.text
    assert response.json()["response"] == "Hi."


_HELLO = json.dumps(_completion({"role": "assistant", "content": "hi"})).encode()
_TWO_MEBIBYTES = json.dumps(
    _completion({"role": "assistant", "content": "x" * (2 * 1024 * 1024)})
).encode()


@pytest.mark.parametrize(
    "step",
    [
        Step(body=_TWO_MEBIBYTES),
        Step(body=_TWO_MEBIBYTES, chunked=True),
        Step(body=gzip.compress(_HELLO), headers={"Content-Encoding": "gzip"}),
    ],
    ids=["with a length", "chunked", "compressed"],
)
async def test_an_answer_over_the_byte_bound_or_compressed_is_a_model_error(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    step: Step,
) -> None:
    # A compressed answer of a few kilobytes could unpack to gigabytes: only identity is read.
    model.script(step)
    async with serve(openai_app()) as client:
        response = await say(client, alice, "hi")
    assert_error(response, 502, "model_error")
    assert len(model.requests) == 1  # refused at once, not retried (the test app retries none)
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "hi")]


async def test_a_reply_longer_than_the_bound_is_cut(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    model.script(reply("y" * (REPLY_MAX_CHARS * 3)))
    async with serve(openai_app()) as client:
        body = (await say(client, alice, "talk a lot")).json()
    assert len(body["response"]) == REPLY_MAX_CHARS
    assert body["response"].endswith("…")
    stored = await stored_messages(committed_sessionmaker)
    assert stored[-1].content == body["response"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        json.dumps({**_completion({}), "choices": "not a list"}).encode(),
        json.dumps(_completion({"role": "assistant", "content": ["a", "list"]})).encode(),
        json.dumps(
            _completion({"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]})
        ).encode(),
        b"not json at all",
    ],
    ids=["nested too deep", "choices not a list", "content not text", "call, no function", "text"],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_a_malformed_answer_is_a_model_error_without_a_traceback(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    streamed: bool,
) -> None:
    model.script(Step(body=body))
    headers = {**alice.headers, "Accept": "text/event-stream"} if streamed else alice.headers
    async with serve(openai_app()) as client:
        response = await client.post("/api/chat", json={"message": "hi"}, headers=headers)
    if streamed:
        assert response.status_code == 200
        assert response.text.startswith("event: error")
        assert '"code":"model_error"' in response.text
    else:
        assert_error(response, 502, "model_error")
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "hi")]


async def test_a_reply_with_characters_postgres_cannot_store_is_stored_with_replacements(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Sent as the JSON escapes \u0000 and \ud800: valid JSON, yet not text PostgreSQL stores.
    message = {"role": "assistant", "content": "a\x00b\ud800c"}
    model.script(Step(body=json.dumps(_completion(message)).encode()))
    async with serve(openai_app()) as client:
        response = await say(client, alice, "hi")
    assert response.status_code == 200, response.text
    assert response.json()["response"] == "a\ufffdb\ufffdc"
    stored = await stored_messages(committed_sessionmaker)
    assert stored[-1].content == "a\ufffdb\ufffdc"


@pytest.mark.parametrize(
    ("raw_arguments", "error"),
    [
        ('{"title": "a\\u0000b"}', "not allowed"),
        ('{"title": "a\\udc00b"}', "not allowed"),
        ('{"title": "t", "tags": ' + json.dumps(_nested(40)) + "}", "nested too deeply"),
        ('{"title": "' + "z" * (ARGUMENTS_MAX_CHARS + 1) + '"}', "too long"),
        ("[" * 10_000 + "]" * 10_000, "not valid JSON"),
        ('{"title": "t", "priority": NaN}', "not valid JSON"),
        ('{"title": "t", "n": 1e400}', "not valid JSON"),
    ],
    ids=["nul", "lone surrogate", "nested", "too long", "nested past the parser", "nan", "inf"],
)
async def test_arguments_that_cannot_be_run_or_stored_go_back_to_the_model(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    raw_arguments: str,
    error: str,
) -> None:
    model.script(Step(tool_calls=(("add_task", {}),), raw_arguments=raw_arguments), reply("Sorry."))
    async with serve(openai_app()) as client:
        response = await say(client, alice, "add it")
        assert response.status_code == 200, response.text
        (refused,) = response.json()["tool_calls"]
        assert refused["arguments"] == {}
        assert error in refused["result"]["error"]
        model.script(call("list_tasks", status="all"), reply("Nothing."))
        listed = (await say(client, alice, "my tasks?")).json()
    assert listed["tool_calls"][0]["result"] == []  # nothing was added
    stored = await stored_messages(committed_sessionmaker)
    assert stored[1].tool_calls == [refused]


async def test_a_tool_the_model_was_not_offered_is_refused_without_a_call(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    model.script(call("x" * 5000, title="t"), reply("Sorry."))
    async with serve(openai_app()) as client:
        body = (await say(client, alice, "do something")).json()
    (refused,) = body["tool_calls"]
    assert refused["name"] == "x" * 64
    assert refused["result"] == {"error": f"There is no tool named {'x' * 64!r}"}


async def test_the_model_timeout_bounds_a_whole_call_not_each_read(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    # A byte every 20 ms never leaves a read waiting half a second, yet takes seconds.
    model.script(Step(content="a slow answer", trickle_seconds=0.02))
    app = openai_app(openai_timeout_seconds=0.5, turn_timeout_seconds=30.0)
    async with serve(app) as client:
        started = time.monotonic()
        response = await say(client, alice, "hi")
    assert_error(response, 504, "model_timeout")
    assert time.monotonic() - started < 5.0


async def test_the_model_client_does_not_follow_redirects(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    # A redirect would send the prompt (the user's messages and tasks) wherever it points.
    model.script(
        Step(status=307, headers={"Location": f"{model.base_url}/chat/completions"}),
        reply("followed"),
    )
    async with serve(openai_app()) as client:
        response = await say(client, alice, "hi")
    assert_error(response, 502, "model_error")
    assert len(model.requests) == 1
