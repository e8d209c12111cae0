"""``driver_connection``: the asyncpg connection of a pooled connection, for single statements."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.db import create_engine, driver_connection


async def test_a_direct_server_runs_each_statement_on_its_own(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with driver_connection(engine) as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT 1") == 1
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_behind_a_transaction_pooler_statements_share_one_transaction(
    database_url: str,
) -> None:
    url = make_url(database_url).update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_engine(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with driver_connection(engine) as connection:
            assert connection.is_in_transaction()
            first = await connection.fetchval("SELECT txid_current()")
            assert await connection.fetchval("SELECT txid_current()") == first
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_an_error_rolls_back_and_returns_the_connection(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        with pytest.raises(Exception, match="syntax"):
            async with driver_connection(engine) as connection:
                await connection.execute("SELEC 1")
        async with driver_connection(engine) as connection:
            assert await connection.fetchval("SELECT 2") == 2
    finally:
        await engine.dispose()


async def test_a_connection_killed_under_it_is_invalidated_not_reused(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, ping_after_idle=3600.0)
    try:
        with pytest.raises(Exception, match=r"terminat|closed"):  # noqa: PT012 - one unit
            async with driver_connection(engine) as connection:
                pid = await connection.fetchval("SELECT pg_backend_pid()")
                await connection.fetchval("SELECT pg_terminate_backend(pg_backend_pid(), 5000)")
        async with driver_connection(engine) as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") != pid
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_a_connection_the_server_closed_in_the_pool_is_skipped(database_url: str) -> None:
    # A terminated backend in the pool is known closed to the driver: no request fails on it.
    engine = create_engine(database_url, pool_size=2, ping_after_idle=3600.0)
    killer = create_engine(database_url, pool_size=1)
    try:
        async with driver_connection(engine) as first, driver_connection(engine) as second:
            pids = {await first.fetchval("SELECT pg_backend_pid()")}
            pids.add(await second.fetchval("SELECT pg_backend_pid()"))
        async with killer.connect() as other:
            for pid in pids:
                await other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        async with driver_connection(engine) as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") not in pids
    finally:
        await engine.dispose()
        await killer.dispose()
