"""Revision 0002 on data written under revision 0001: every token family gets its row."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from shared.migrations import upgrade
from tests.deploy.support import connect

ISSUED = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """An empty database of its own on the test server (migrations run from scratch)."""
    name = f"auth_migration_{secrets.token_hex(4)}"
    server = await connect(database_url)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


async def insert_token(
    db: asyncpg.Connection[Any],
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    *,
    issued: datetime,
    revoked: datetime | None = None,
) -> None:
    await db.execute(
        "INSERT INTO auth.refresh_tokens (id, user_id, family_id, token_hash, issued_at,"
        " expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uuid.uuid4(),
        user_id,
        family_id,
        secrets.token_hex(32),
        issued,
        issued + timedelta(days=30),
        revoked,
    )


async def test_existing_sessions_get_a_family_each_and_a_half_revoked_one_is_revoked(
    fresh_database: str,
) -> None:
    await asyncio.to_thread(upgrade, "auth_service", fresh_database, "0001")
    user_id, live, raced = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    db = await connect(fresh_database)
    try:
        await db.execute(
            "INSERT INTO auth.users (id, email, password_hash) VALUES ($1, 'ann@example.com', 'x')",
            user_id,
        )
        await insert_token(db, user_id, live, issued=ISSUED)
        await insert_token(db, user_id, live, issued=ISSUED + timedelta(days=20))
        # A logout that raced a rotation: one token revoked, the one minted beside it not.
        await insert_token(db, user_id, raced, issued=ISSUED, revoked=ISSUED + timedelta(days=1))
        await insert_token(db, user_id, raced, issued=ISSUED + timedelta(days=1))

        await asyncio.to_thread(upgrade, "auth_service", fresh_database, "head")

        families = {
            row["id"]: row
            for row in await db.fetch("SELECT * FROM auth.refresh_families ORDER BY id")
        }
        unrevoked = await db.fetchval(
            "SELECT count(*) FROM auth.refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL",
            raced,
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await insert_token(db, user_id, uuid.uuid4(), issued=ISSUED)
    finally:
        await db.close()

    assert set(families) == {live, raced}
    assert families[live]["user_id"] == user_id
    assert families[live]["created_at"] == ISSUED
    assert families[live]["expires_at"] == ISSUED + timedelta(days=90)
    assert families[live]["revoked_at"] is None
    assert families[raced]["revoked_at"] == ISSUED + timedelta(days=1)
    assert unrevoked == 0
