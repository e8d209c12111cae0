"""The hot statements are planned once per connection, however the tables grow.

asyncpg prepares each statement once per connection; PostgreSQL then plans it afresh for its
first five executions and keeps its generic plan only if that looks no dearer than a fresh
one. A statement whose cost depends on a parameter's value (a range over a column whose
statistics say much of the table matches) is planned afresh on every execution instead: a
keyed create that swept expired keys by their expiry cost about twice its CPU that way
(bench/RESULTS.md). ``pg_prepared_statements`` counts each statement's plans on the
connection the test's requests run on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Database, create_engine
from tests.todo.conftest import User
from todo_service import statements as sql

EXECUTIONS = 12


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """A connection of the test's own: asyncpg keeps a statement prepared for as long as its
    connection lives, so on the session's pooled ones the counts would start wherever the
    tests before left them."""
    engine = create_engine(migrated_url, pool_size=1)
    yield engine
    await engine.dispose()


async def plans(database: Database, statement: str) -> tuple[int, int]:
    """The generic and the custom plans PostgreSQL made for ``statement`` on this
    connection."""
    row = await database.fetch_row(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        statement,
    )
    assert row is not None, "never prepared on this connection"
    return int(row[0]), int(row[1])


async def test_a_keyed_create_keeps_its_generic_plan_with_a_days_keys_stored(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    # A day of other users' keys, a few of them expired, with statistics that say so.
    await database.fetch_row(
        "INSERT INTO todo.idempotency_keys (user_id, key, expires_at, request_hash, created_at) "
        "SELECT 'u' || n % 100, 'k' || n, now() + (n % 25 - 1) * interval '1 hour', 'h', now() "
        "FROM generate_series(1, 5000) AS n"
    )
    await database.fetch_row("ANALYZE todo.idempotency_keys")
    for n in range(EXECUTIONS):
        response = await client.post(
            "/api/tasks",
            json={"title": f"Task {n}"},
            headers={**alice.headers, "Idempotency-Key": f"create-{n}"},
        )
        assert response.status_code == 201, response.text

    generic, custom = await plans(database, sql.CREATE_TASK_ONCE)
    assert (generic, custom) == (EXECUTIONS - 5, 5)
