"""``user.deleted`` reaches the chat service: its worker purges the user's conversations,
messages and turn keys, and from then on the user's still-valid access token is refused and
no row of theirs can be stored."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from chat_service.models import CONVERSATIONS, MESSAGES, TURN_KEYS
from chat_service.settings import ChatSettings
from chat_service.worker import create_app as create_worker
from shared.db import Database
from tests.chat.conftest import User
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
