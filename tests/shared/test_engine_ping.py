"""The pool's idle check: connections that sat idle are checked before use, busy ones are not."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine


def count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = engine.sync_engine.dialect
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    return pings


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        return pid


async def test_connection_that_died_while_idle_is_replaced_before_use(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle=0.0)
    killer = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        pid = await backend_pid(engine)
        async with killer.connect() as connection:
            # Waits (up to 5 s) until the backend has really exited.
            await connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})

        assert await backend_pid(engine) != pid
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_recently_used_connections_skip_the_check(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle=3600.0)
    pings = count_pings(engine, monkeypatch)
    try:
        first = await backend_pid(engine)
        for _ in range(3):
            assert await backend_pid(engine) == first
        assert pings == []
    finally:
        await engine.dispose()


async def test_connections_idle_longer_than_the_window_are_checked(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle=0.0)
    pings = count_pings(engine, monkeypatch)
    try:
        for _ in range(3):
            await backend_pid(engine)
        # The first checkout opened a fresh connection; the two after it were checked.
        assert len(pings) == 2
    finally:
        await engine.dispose()
