"""``POST /api/chat`` with an ``Idempotency-Key``: a retried turn is replayed, not run twice,
and a turn run again after a failure adds its tasks once (the chat keys its add_task calls).

The rules agent and the OpenAI agent (a local fake model) against the real todo service.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.models import TurnKey
from chat_service.service import claim_turn_key
from shared.db import Database
from shared.worker import forget_expired
from tests.chat.conftest import User, stored_messages
from tests.support.errors import assert_error
from tests.support.fake_openai import FakeOpenAI, Step, call, reply
from tests.support.serving import serve


async def send(
    client: httpx.AsyncClient, user: User, message: str, key: str | None, **headers: str
) -> httpx.Response:
    sent = {**user.headers, **headers}
    if key is not None:
        sent["Idempotency-Key"] = key
    return await client.post("/api/chat", json={"message": message}, headers=sent)


async def task_titles(maker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    """The todo service's tasks, read directly: (user, title) in order of creation."""
    async with maker() as session:
        connection = await session.connection()
        rows = await connection.execute(text("SELECT user_id, title FROM todo.tasks ORDER BY id"))
        return [(row[0], row[1]) for row in rows]


async def test_a_retried_turn_with_the_same_key_is_replayed_not_run_twice(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first = await send(agent, alice, "add buy milk", "turn-1")
    assert first.status_code == 200, first.text
    again = await send(agent, alice, "add buy milk", "turn-1")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await task_titles(committed_sessionmaker) == [(alice.sub, "Buy milk")]
    stored = await stored_messages(committed_sessionmaker)
    assert [m.role for m in stored] == ["user", "assistant"]

    unkeyed = await send(agent, alice, "add buy milk", None)
    assert unkeyed.json()["conversation_id"] != first.json()["conversation_id"]
    assert len(await task_titles(committed_sessionmaker)) == 2


async def test_a_replay_to_a_streaming_client_is_the_turns_events(
    agent: httpx.AsyncClient, alice: User
) -> None:
    first = (await send(agent, alice, "add buy milk", "turn-1")).json()
    streamed = await send(agent, alice, "add buy milk", "turn-1", Accept="text/event-stream")
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
        for block in streamed.text.split("\n\n")
        if block.strip()
    ]
    assert events == [
        ("tool_call", first["tool_calls"][0]),
        ("message", {"response": first["response"]}),
        ("done", {"conversation_id": first["conversation_id"]}),
    ]


async def test_the_same_key_with_another_body_is_refused_and_keys_are_per_user(
    agent: httpx.AsyncClient,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert (await send(agent, alice, "add buy milk", "turn-1")).status_code == 200
    other = await send(agent, alice, "add buy bread", "turn-1")
    assert_error(other, 422, "idempotency_key_reused")
    bobs = await send(agent, bob, "add buy bread", "turn-1")
    assert bobs.status_code == 200, bobs.text
    assert await task_titles(committed_sessionmaker) == [
        (alice.sub, "Buy milk"),
        (bob.sub, "Buy bread"),
    ]


async def test_another_users_answer_under_the_same_key_and_body_is_never_replayed(
    agent: httpx.AsyncClient,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Bob's key holds another body than the one he sends now; Alice's, under the same key,
    # holds exactly that body and its answer. His refusal must come from his own key.
    alices = await send(agent, alice, "add buy milk", "turn-1")
    assert alices.status_code == 200, alices.text
    assert (await send(agent, bob, "add buy bread", "turn-1")).status_code == 200

    again = await send(agent, bob, "add buy milk", "turn-1")

    assert_error(again, 422, "idempotency_key_reused")
    assert await task_titles(committed_sessionmaker) == [
        (alice.sub, "Buy milk"),
        (bob.sub, "Buy bread"),
    ]


async def test_a_failed_turns_key_with_another_body_is_refused_not_taken_over(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A key whose turn failed (no answer, its lease given back) is taken over only by a
    retry of the same body: another message under it is refused and runs nothing."""
    async with serve(openai_app()) as client:
        model.script(Step(status=500))
        failed = await send(client, alice, "add buy milk", "turn-1")
        assert_error(failed, 502, "model_error")
        other = await send(client, alice, "add buy bread", "turn-1")
        assert_error(other, 422, "idempotency_key_reused")
    assert len(model.requests) == 1
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "add buy milk")]
    assert await task_titles(committed_sessionmaker) == []


async def test_a_malformed_key_is_a_validation_error(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for key in ("has space", "k" * 256, "caf\u00e9"):
        headers: dict[str, str | bytes] = {**alice.headers, "Idempotency-Key": key.encode()}
        response = await agent.post("/api/chat", json={"message": "hi"}, headers=headers)
        assert_error(response, 422, "validation_error")
    assert await stored_messages(committed_sessionmaker) == []


async def test_a_retry_while_the_first_attempt_runs_is_409_with_retry_after(
    openai_app: Any, model: FakeOpenAI, alice: User
) -> None:
    model.script(Step(hang=True, content="Nothing pending."))
    async with serve(openai_app(openai_timeout_seconds=10.0)) as client:
        first = asyncio.create_task(send(client, alice, "What's pending?", "turn-1"))
        async with asyncio.timeout(10):
            while not model.requests:  # noqa: ASYNC110 (the first attempt reached the model)
                await asyncio.sleep(0.01)
        retry = await send(client, alice, "What's pending?", "turn-1")
        assert_error(retry, 409, "idempotent_request_in_progress")
        assert retry.headers["retry-after"] == "1"
        model.release()
        answered = await first
    assert answered.status_code == 200, answered.text
    assert answered.json()["response"] == "Nothing pending."


async def test_a_turn_that_failed_after_adding_a_task_runs_again_without_a_duplicate(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with serve(openai_app()) as client:
        # The task is added, then the model fails: the turn is a 502, the task exists.
        model.script(call("add_task", title="Buy milk"), Step(status=500))
        failed = await send(client, alice, "add buy milk", "turn-1")
        assert_error(failed, 502, "model_error")
        assert await task_titles(committed_sessionmaker) == [(alice.sub, "Buy milk")]

        # The retry runs the turn again on the same stored message: the same add_task key,
        # so the todo service answers the first task instead of adding another.
        model.script(call("add_task", title="Buy milk"), reply("Added."))
        retried = await send(client, alice, "add buy milk", "turn-1")
        assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["response"] == "Added."
    assert body["tool_calls"][0]["arguments"] == {"title": "Buy milk"}
    assert await task_titles(committed_sessionmaker) == [(alice.sub, "Buy milk")]
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "add buy milk"),
        ("assistant", "Added."),
    ]
    # The model is never offered the key, nor can it choose one.
    offered = {tool["function"]["name"]: tool["function"] for tool in model.requests[0]["tools"]}
    assert "idempotency_key" not in offered["add_task"]["parameters"]["properties"]


async def test_every_add_task_call_of_a_turn_has_its_own_key(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    two = Step(tool_calls=(("add_task", {"title": "Same"}), ("add_task", {"title": "Same"})))
    model.script(two, reply("Added both."))
    async with serve(openai_app()) as client:
        body = (await send(client, alice, "add same twice", None)).json()
    ids = [c["result"]["task_id"] for c in body["tool_calls"]]
    assert len(set(ids)) == 2
    assert await task_titles(committed_sessionmaker) == [(alice.sub, "Same")] * 2


# The first user message of a turn: its own backend terminated while its statement commits.
DIE_AT_COMMIT = [
    """CREATE FUNCTION chat.die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(10);
        RETURN NULL;
    END $$""",
    """CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON chat.messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.role = 'user')
    EXECUTE FUNCTION chat.die_at_commit()""",
]


async def run_sql(maker: async_sessionmaker[AsyncSession], *statements: str) -> None:
    async with maker() as session:
        connection = await session.connection()
        for statement in statements:
            await connection.execute(text(statement))
        await session.commit()


async def test_a_turn_whose_message_may_not_be_saved_is_outcome_unknown_and_a_keyed_retry_runs_it(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await run_sql(committed_sessionmaker, *DIE_AT_COMMIT)
    try:
        lost = await send(agent, alice, "add buy milk", "turn-lost")
    finally:
        await run_sql(
            committed_sessionmaker,
            "DROP TRIGGER die_at_commit ON chat.messages",
            "DROP FUNCTION chat.die_at_commit()",
        )
    # Not "unavailable, retry": the statement that stores the message commits itself, and
    # the connection went while it did.
    body = assert_error(lost, 503, "outcome_unknown")
    assert "Idempotency-Key" in body["detail"]
    assert "retry-after" not in lost.headers

    retried = await send(agent, alice, "add buy milk", "turn-lost")
    assert retried.status_code == 200, retried.text
    assert await task_titles(committed_sessionmaker) == [(alice.sub, "Buy milk")]


TURN_KEYS = "chat.turn_keys"


async def test_expired_turn_keys_are_forgotten_oldest_first_in_batches(
    database: Database, alice: User, bob: User
) -> None:
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    day, lease = timedelta(hours=24), timedelta(minutes=2)
    for minute, (user, key) in enumerate(((alice, "first"), (bob, "second"), (alice, "third"))):
        now = start + timedelta(minutes=minute)
        await claim_turn_key(
            database, user.sub, key=key, request_hash="h", now=now, lease=lease, ttl=day
        )

    async def keys() -> list[str]:
        row = await database.fetch_row(
            "SELECT coalesce(array_agg(key ORDER BY key), '{}') FROM chat.turn_keys"
        )
        assert row is not None
        return list(row[0])

    # A key lives a day: the first is not expired a moment before, and is at its expiry.
    assert await forget_expired(database, TURN_KEYS, now=start + day - lease, batch=10) == 0
    past_two = start + day + timedelta(minutes=1)
    assert await forget_expired(database, TURN_KEYS, now=past_two, batch=1) == 1
    assert await keys() == ["second", "third"]
    assert await forget_expired(database, TURN_KEYS, now=past_two, batch=1) == 1
    assert await forget_expired(database, TURN_KEYS, now=past_two, batch=1) == 0
    assert await keys() == ["third"]


async def test_a_deleted_conversations_turn_is_not_replayed_nor_run_again(
    agent: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The answer a keyed turn keeps for its retries is the conversation's content: deleted
    with the conversation, a retry of that turn is the conversation's 404, and nothing of it
    is stored or run again."""
    first = await send(agent, alice, "add call the bank about my overdraft", "turn-gone")
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]
    deleted = await agent.delete(f"/api/conversations/{conversation}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text

    again = await send(agent, alice, "add call the bank about my overdraft", "turn-gone")

    assert_error(again, 404, "conversation_not_found")
    assert "overdraft" not in again.text
    assert await stored_messages(committed_sessionmaker) == []
    assert len(await task_titles(committed_sessionmaker)) == 1
    async with committed_sessionmaker() as session:
        kept = await session.exec(select(TurnKey.response))
        assert kept.all() == [None]
