"""``user.deleted`` reaches the chat service: its worker purges the user's conversations,
messages and turn keys, and from then on the user's still-valid access token is refused and
no row of theirs can be stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select

from chat_service import service
from chat_service.events import PURGE
from chat_service.models import CONVERSATIONS, MESSAGES, TURN_KEYS, Role
from chat_service.settings import ChatSettings
from chat_service.worker import create_app as create_worker
from shared.db import Database
from shared.tombstones import bury
from tests.chat.conftest import NOW, User
from tests.support.database import lock_waiters
from tests.support.errors import assert_error
from tests.support.events import eventually, publish, user_deleted
from tests.support.serving import serve

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def user_rows(db: Database, subject: str) -> int:
    total = 0
    async with db.engine.connect() as connection:
        for table in (CONVERSATIONS, MESSAGES, TURN_KEYS):
            query = select(func.count()).select_from(table).where(table.c.user_id == subject)
            total += int((await connection.execute(query)).scalar_one())
    return total


async def chat(client: httpx.AsyncClient, user: User, key: str) -> httpx.Response:
    headers = {**user.headers, "Idempotency-Key": key}
    return await client.post("/api/chat", json={"message": "hello"}, headers=headers)


async def test_a_deleted_user_is_purged_and_their_token_refused_once_consumed(
    client: httpx.AsyncClient,
    committed_database: Database,
    chat_settings: object,
    redis_url: str,
    alice: User,
    bob: User,
) -> None:
    for user in (alice, bob):
        assert (await chat(client, user, "k1")).status_code == 200
    assert await user_rows(committed_database, alice.sub) > 0
    settings: ChatSettings = chat_settings(  # type: ignore[operator]
        events_redis_url=redis_url, events_idle_seconds=0.05
    )
    await publish(redis_url, user_deleted(alice.sub, "51"))
    async with serve(create_worker(settings, db=committed_database, consumer="w1")):

        async def purged() -> bool:
            return await user_rows(committed_database, alice.sub) == 0

        await eventually(purged)

    # The service learns of the burial from its notification, a moment after the commit.
    async def refused() -> bool:
        answer = await client.get("/api/conversations", headers=alice.headers)
        return answer.status_code == 401

    await eventually(refused, seconds=5)
    assert_error(
        await client.get("/api/conversations", headers=alice.headers), 401, "account_deleted"
    )
    assert_error(await chat(client, alice, "k2"), 401, "account_deleted")
    assert await user_rows(committed_database, alice.sub) == 0
    assert await user_rows(committed_database, bob.sub) > 0
    assert (await client.get("/api/conversations", headers=bob.headers)).status_code == 200


async def purge_racing(db: Database, subject: str, write: Callable[[], Awaitable[None]]) -> None:
    """The purge of ``subject`` with ``write`` arriving after it buried the subject and deleted
    the messages (the first of its tables), while the conversations are still there: the
    purge goes on once the write waits, and both must end (the write refused, nothing of
    the subject left)."""
    first, *rest = PURGE.tables
    async with db.unit_of_work() as purging:
        await bury(purging, PURGE.deleted_subjects, subject)
        connection = await purging.connection()
        await connection.execute(first.delete().where(first.c.user_id == subject))
        writing = asyncio.create_task(write())

        async def write_waits() -> bool:
            return await lock_waiters(db) == 1

        await eventually(write_waits, seconds=5)
        for table in rest:
            await asyncio.wait_for(
                connection.execute(table.delete().where(table.c.user_id == subject)), 10
            )
    with pytest.raises(service.ConversationNotFound):
        await asyncio.wait_for(writing, 10)
    assert await user_rows(db, subject) == 0


async def test_a_purge_and_a_reply_that_updates_the_conversation_then_inserts_both_finish(
    client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    """A turn's reply is one statement: it updates the conversation (locking its row), then
    inserts the message, whose trigger takes the subject's lock. The purge holds that lock and
    deletes the conversation: without the subject's lock first, each waits for the other and
    PostgreSQL aborts the reply as a deadlock."""
    started = (await chat(client, alice, "k1")).json()

    async def reply() -> None:
        await service.add_message(
            committed_database,
            alice.sub,
            conversation_id=started["conversation_id"],
            role=Role.ASSISTANT,
            content="a late reply",
            now=NOW,
        )

    await purge_racing(committed_database, alice.sub, reply)


async def test_a_purge_and_a_conversations_deletion_both_finish(
    client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    """Deleting a conversation locks its row, then its messages (the cascade); the purge
    deletes the messages, then the conversations: without the subject's lock first, each
    waits for the other."""
    started = (await chat(client, alice, "k1")).json()

    async def delete() -> None:
        async with committed_database.unit_of_work() as session:
            await service.delete_conversation(
                session, alice.sub, conversation_id=started["conversation_id"]
            )

    await purge_racing(committed_database, alice.sub, delete)
