"""``Database``: one pool per service, single statements on the driver, units of work."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, create_engine, statements

# PostgreSQL accepts this statement only inside a transaction block.
NEEDS_A_TRANSACTION = "DECLARE probe CURSOR FOR SELECT 1"


async def test_a_direct_server_runs_each_statement_on_its_own(database_url: str) -> None:
    db = Database.open(database_url, pool_size=1)
    try:
        with pytest.raises(asyncpg.NoActiveSQLTransactionError):
            await db.fetch_row(NEEDS_A_TRANSACTION)
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()


async def test_behind_a_transaction_pooler_a_statement_runs_in_a_transaction(
    database_url: str,
) -> None:
    db = Database(create_engine(database_url, pool_size=1), pooled=True)
    try:
        assert await db.fetch_row(NEEDS_A_TRANSACTION) is None
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()


def test_a_pooler_host_is_known_from_the_connection_target() -> None:
    pooled = Database.open("postgresql://u:p@ep-cool-1-pooler.eu.aws.neon.tech/db")
    direct = Database.open("postgresql://u:p@ep-cool-1.eu.aws.neon.tech/db")
    assert (pooled.pooled, direct.pooled) == (True, False)


async def test_an_error_returns_the_connection(database_url: str) -> None:
    db = Database.open(database_url, pool_size=1)
    try:
        with pytest.raises(Exception, match="syntax"):
            await db.fetch_row("SELEC 1")
        assert await db.fetch_row("SELECT 2") == (2,)
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()


async def test_a_connection_killed_under_it_is_invalidated_not_reused(database_url: str) -> None:
    db = Database.open(database_url, pool_size=1, ping_after_idle=3600.0)
    try:
        (pid,) = await db.fetch_row("SELECT pg_backend_pid()") or ()
        with pytest.raises(Exception, match=r"terminat|closed"):
            await db.fetch_row("SELECT pg_terminate_backend(pg_backend_pid(), 5000)")
        assert await db.fetch_row("SELECT pg_backend_pid() <> $1", pid) == (True,)
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()


async def test_a_connection_the_server_closed_in_the_pool_is_skipped(database_url: str) -> None:
    # A terminated backend in the pool is known closed to the driver: no request fails on it,
    # neither a single statement nor a unit of work.
    db = Database.open(database_url, pool_size=2, ping_after_idle=3600.0)
    killer = create_engine(database_url, pool_size=1)
    try:
        async with db.engine.connect() as first, db.engine.connect() as second:
            pids = {(await first.execute(text("SELECT pg_backend_pid()"))).scalar_one()}
            pids.add((await second.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        async with killer.connect() as other:
            for pid in pids:
                await other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        row = await db.fetch_row("SELECT pg_backend_pid()")
        assert row is not None
        assert row[0] not in pids
        async with db.unit_of_work() as session:
            found = await session.exec(text("SELECT pg_backend_pid()"))  # type: ignore[call-overload]
            assert found.scalar_one() not in pids
    finally:
        await db.dispose()
        await killer.dispose()


async def test_bound_to_a_connection_statements_and_sessions_share_its_transaction(
    db_connection: AsyncConnection,
) -> None:
    db = Database.bound_to(db_connection)
    await db.fetch_row("CREATE TEMP TABLE probe (n int) ON COMMIT DROP")
    async with db.unit_of_work() as session:
        await session.exec(text("INSERT INTO probe VALUES (1)"))  # type: ignore[call-overload]
    assert await db.fetch_row("SELECT count(*) FROM probe") == (1,)
    assert await db.fetch_row(NEEDS_A_TRANSACTION) is None


async def test_a_statement_in_a_unit_of_work_runs_in_its_transaction(database_url: str) -> None:
    db = Database.open(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as session:
            # Refused outside a transaction block (see the direct-server test above).
            assert await session.fetch_row(NEEDS_A_TRANSACTION) is None
            pid = await session.fetch_row("SELECT pg_backend_pid()")
            assert pid == await session.fetch_row("SELECT pg_backend_pid()")
    finally:
        await db.dispose()


async def test_a_statement_in_a_failed_unit_of_work_is_rolled_back(database_url: str) -> None:
    db = Database.open(database_url, pool_size=1)

    async def write_then_fail() -> None:
        async with db.unit_of_work() as session:
            await session.fetch_row("CREATE TABLE public.uow_probe (note text)", write=True)
            await session.fetch_row("INSERT INTO public.uow_probe VALUES ($1)", "probe")
            raise RuntimeError("the caller failed after the write")

    try:
        with pytest.raises(RuntimeError):
            await write_then_fail()
        assert await db.fetch_row("SELECT to_regclass('public.uow_probe')") == (None,)
    finally:
        await db.dispose()


def test_only_a_unit_of_works_session_passes_as_statements(database_url: str) -> None:
    db = Database.open(database_url)
    assert statements(db) is db
    assert statements(db.sessionmaker()) is not None
    with pytest.raises(TypeError):
        statements(AsyncSession())
