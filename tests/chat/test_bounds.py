"""What one account may store: at most ``CHAT_MAX_CONVERSATIONS_PER_USER`` conversations (a
new one deletes the least recently active) and ``CHAT_MAX_MESSAGES_PER_CONVERSATION`` messages
in one (a turn past it is a 409 ``conversation_full``), sequentially and under concurrent
turns, and nothing of another user changes.

Greetings need no tool, so the todo service is not running here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from tests.chat.conftest import ChatAppFactory, User, stored_messages
from tests.support.errors import assert_error
from tests.support.serving import serve


@pytest.fixture
async def bounded(make_chat_app: ChatAppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The chat service keeping 3 conversations an account, of at most 5 messages (2 turns)."""
    app = make_chat_app(max_conversations_per_user=3, max_messages_per_conversation=5)
    async with serve(app) as client:
        yield client


async def say(client: httpx.AsyncClient, user: User, **fields: Any) -> httpx.Response:
    return await client.post("/api/chat", json={"message": "hello", **fields}, headers=user.headers)


async def start(client: httpx.AsyncClient, user: User) -> int:
    answer = await say(client, user)
    assert answer.status_code == 200, answer.text
    conversation_id: int = answer.json()["conversation_id"]
    return conversation_id


async def conversation_ids(client: httpx.AsyncClient, user: User) -> set[int]:
    listed = await client.get("/api/conversations", headers=user.headers)
    assert listed.status_code == 200
    assert int(listed.headers["x-total-count"]) == len(listed.json())
    return {conversation["id"] for conversation in listed.json()}


async def test_a_turn_past_the_message_bound_is_refused_and_stores_nothing(
    bounded: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
    bob: User,
) -> None:
    theirs = await start(bounded, bob)
    mine = await start(bounded, alice)
    assert (await say(bounded, alice, conversation_id=mine)).status_code == 200  # 4 messages
    for streaming in (False, True):
        headers = {"Accept": "text/event-stream"} if streaming else {}
        refused = await bounded.post(
            "/api/chat",
            json={"message": "one more", "conversation_id": mine},
            headers={**alice.headers, **headers},
        )
        body = assert_error(refused, 409, "conversation_full")
        assert "start a new conversation" in body["detail"]
    keyed = {**alice.headers, "Idempotency-Key": "full-1"}
    refused = await bounded.post(
        "/api/chat", json={"message": "one more", "conversation_id": mine}, headers=keyed
    )
    assert_error(refused, 409, "conversation_full")
    assert len(await stored_messages(committed_sessionmaker, mine)) == 4
    detail = await bounded.get(f"/api/conversations/{mine}", headers=alice.headers)
    assert detail.headers["x-total-count"] == "4"
    # Another user's conversation goes on; a new one of the user's own too.
    assert (await say(bounded, bob, conversation_id=theirs)).status_code == 200
    assert len(await stored_messages(committed_sessionmaker, theirs)) == 4
    assert (await say(bounded, alice)).status_code == 200


async def test_concurrent_turns_never_pass_the_message_bound(
    bounded: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    mine = await start(bounded, alice)  # one turn of two taken
    answers = await asyncio.wait_for(
        asyncio.gather(*(say(bounded, alice, conversation_id=mine) for _ in range(8))), 30
    )
    assert sorted(answer.status_code for answer in answers) == [200] + [409] * 7
    for answer in answers:
        if answer.status_code == 409:
            assert_error(answer, 409, "conversation_full")
    assert len(await stored_messages(committed_sessionmaker, mine)) == 4


async def test_a_new_conversation_past_the_bound_deletes_the_least_recently_active(
    bounded: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    theirs = await start(bounded, bob)
    first = await start(bounded, alice)
    clock.advance(minutes=1)
    second = await start(bounded, alice)
    clock.advance(minutes=1)
    third = await start(bounded, alice)
    clock.advance(minutes=1)
    assert (await say(bounded, alice, conversation_id=first)).status_code == 200
    clock.advance(minutes=1)
    fourth = await start(bounded, alice)
    assert await conversation_ids(bounded, alice) == {first, third, fourth}
    assert_error(
        await bounded.get(f"/api/conversations/{second}", headers=alice.headers),
        404,
        "conversation_not_found",
    )
    assert await stored_messages(committed_sessionmaker, second) == []
    assert await conversation_ids(bounded, bob) == {theirs}
    assert len(await stored_messages(committed_sessionmaker, theirs)) == 2


async def test_concurrent_new_conversations_never_pass_the_bound(
    bounded: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
    bob: User,
) -> None:
    theirs = await start(bounded, bob)
    answers = await asyncio.wait_for(asyncio.gather(*(say(bounded, alice) for _ in range(8))), 30)
    # A turn whose conversation later starts trimmed before its reply was stored is a 404
    # with nothing of it kept (the user racing themselves past the bound); the rest answer.
    started = []
    for answer in answers:
        if answer.status_code == 404:
            assert_error(answer, 404, "conversation_not_found")
        else:
            assert answer.status_code == 200, answer.text
            started.append(answer.json()["conversation_id"])
    kept = await conversation_ids(bounded, alice)
    assert len(kept) == 3
    # The newest three are kept (ids grow in commit order here: the starts took turns), and
    # their turns answered: nothing started after them could trim them.
    assert kept == set(sorted(started)[-3:])
    assert {m.conversation_id for m in await stored_messages(committed_sessionmaker)} == kept | {
        theirs
    }


async def test_a_keyed_turn_of_a_conversation_the_bound_deleted_is_not_replayed(
    bounded: httpx.AsyncClient, clock: FrozenClock, alice: User, bob: User
) -> None:
    """A conversation the bound deletes goes with the answers its keyed turns kept for their
    retries: a retry is that conversation's 404, not its deleted reply (nor another user's
    keyed answers touched)."""
    keyed = {**alice.headers, "Idempotency-Key": "oldest"}
    first = await bounded.post("/api/chat", json={"message": "hello"}, headers=keyed)
    assert first.status_code == 200, first.text
    bobs = {**bob.headers, "Idempotency-Key": "oldest"}
    theirs = await bounded.post("/api/chat", json={"message": "hello"}, headers=bobs)
    for _ in range(3):
        clock.advance(minutes=1)
        await start(bounded, alice)

    again = await bounded.post("/api/chat", json={"message": "hello"}, headers=keyed)

    assert_error(again, 404, "conversation_not_found")
    replayed = await bounded.post("/api/chat", json={"message": "hello"}, headers=bobs)
    assert replayed.json() == theirs.json()
