"""A database outage, or a statement past its time bound, is a 503 ``database_unavailable``
with ``Retry-After``, not a 500.

The failures are real ones: a server that is not there (no socket), a session that the
server terminates while it is checked out, and a relay to the real server that says the
server's shutdown goodbye to an idle connection and holds its close back.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db import (
    Database,
    connect_target,
    create_engine,
    is_database_outage,
    is_statement_cancelled,
)
from shared.errors import OutcomeUnknown, install_error_handlers
from shared.middleware import RequestContextMiddleware
from tests.support.errors import assert_error
from tests.support.raw_server import raw_server
from tests.support.tls import open_postgres, pump


@pytest.fixture
async def nowhere(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine for a server that does not run: its socket directory is empty."""
    engine = create_engine(f"postgresql+asyncpg://postgres:@/postgres?host={tmp_path}")
    yield engine
    await engine.dispose()


async def raised_by(engine: AsyncEngine, sql: str) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is examined
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    return caught.value


async def test_no_server_is_an_outage(nowhere: AsyncEngine) -> None:
    assert is_database_outage(await raised_by(nowhere, "SELECT 1"))


async def test_session_terminated_by_the_server_is_an_outage(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    killer = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with killer.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            with pytest.raises(Exception) as caught:  # noqa: PT011
                await connection.execute(text("SELECT 1"))
        assert is_database_outage(caught.value)
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_session_terminated_under_the_driver_is_an_outage(database_url: str) -> None:
    # Single statements run on asyncpg directly: its own errors must be recognised too.
    db = Database.open(database_url, pool_size=1, ping_after_idle=3600.0)
    try:
        # Closed under a call already made on it: the driver's errors are outages too.
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is examined
            await db.fetch_row("SELECT pg_terminate_backend(pg_backend_pid(), 5000)")
        assert is_database_outage(caught.value), repr(caught.value)
        assert (await db.fetch_row("SELECT 2")) == (2,)  # the dead one was not reused
    finally:
        await db.dispose()


def _error_response(*fields: tuple[bytes, bytes]) -> bytes:
    body = b"".join(kind + value + b"\0" for kind, value in fields) + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


# What PostgreSQL sends each session as a fast shutdown begins, before it closes the socket.
ADMIN_SHUTDOWN = _error_response(
    (b"S", b"FATAL"),
    (b"V", b"FATAL"),
    (b"C", b"57P01"),
    (b"M", b"terminating connection due to administrator command"),
)


class GoodbyeRelay:
    """Relays each connection to the test PostgreSQL. ``say_goodbye`` ends the relay of those
    open now with the server's shutdown goodbye and keeps their sockets open: the moment
    between a server's FATAL and its close, which a client reads in two steps. Connections
    made later are relayed as before."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._open: set[asyncio.Event] = set()

    async def say_goodbye(self) -> None:
        """Say it, and give the client time to read it (its socket stays open)."""
        for goodbye in self._open:
            goodbye.set()
        await asyncio.sleep(0.2)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await open_postgres(self.database_url)
        goodbye = asyncio.Event()
        self._open.add(goodbye)
        # Either side hanging up ends the relay (and the handler's return closes the client).
        running = {
            asyncio.ensure_future(pump(reader, upstream_writer, close_sink=False)),
            asyncio.ensure_future(pump(upstream_reader, writer, close_sink=False)),
            said := asyncio.ensure_future(goodbye.wait()),
        }
        try:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            if said.done():
                upstream_writer.close()
                writer.write(ADMIN_SHUTDOWN)
                await writer.drain()
                await asyncio.Event().wait()  # held open until the relay's server stops
        finally:
            self._open.discard(goodbye)
            for task in running:
                task.cancel()
            upstream_writer.close()
            await asyncio.gather(*running, return_exceptions=True)


@pytest.fixture
async def goodbye_relay(database_url: str) -> AsyncIterator[tuple[GoodbyeRelay, str]]:
    """The relay and a database URL through it."""
    relay = GoodbyeRelay(database_url)
    async with raw_server(relay) as address:
        port = int(address.rsplit(":", 1)[1])
        url = make_url(database_url).difference_update_query(["host", "port"])
        yield relay, url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


async def one_statement(db: Database, n: int) -> int:
    row = await db.fetch_row(f"SELECT {n}")
    assert row is not None
    return int(row[0])


async def one_write_statement(db: Database, n: int) -> int:
    row = await db.fetch_row(f"SELECT {n}", write=True)
    assert row is not None
    return int(row[0])


async def in_a_unit_of_work(db: Database, n: int) -> int:
    async with db.unit_of_work() as session:
        row = await session.fetch_row(f"SELECT {n}")
    assert row is not None
    return int(row[0])


Run = Callable[[Database, int], Awaitable[int]]


@pytest.mark.parametrize(
    "run",
    [one_statement, one_write_statement, in_a_unit_of_work],
    ids=["statement", "write", "session"],
)
async def test_a_pooled_connection_told_goodbye_before_its_close_is_an_outage_not_reused(
    goodbye_relay: tuple[GoodbyeRelay, str], run: Run
) -> None:
    relay, url = goodbye_relay
    # Drawn again within the idle bound, as a busy service draws it: no ping first.
    db = Database.open(url, pool_size=1, ping_after_idle=3600.0)
    try:
        assert await run(db, 1) == 1
        await relay.say_goodbye()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is examined
            await run(db, 2)
        assert is_database_outage(caught.value), repr(caught.value)
        # Refused before anything was sent: nothing is in doubt, a retry is safe.
        assert not isinstance(caught.value, OutcomeUnknown)
        assert await run(db, 3) == 3  # the told connection was not pooled again
    finally:
        await db.dispose()


async def test_a_pre_ping_that_meets_a_goodbye_draws_a_fresh_connection(
    goodbye_relay: tuple[GoodbyeRelay, str],
) -> None:
    relay, url = goodbye_relay
    db = Database.open(url, pool_size=1)  # every checkout pinged first
    try:
        await one_statement(db, 1)
        await relay.say_goodbye()
        assert await in_a_unit_of_work(db, 2) == 2
        await relay.say_goodbye()
        assert await one_statement(db, 3) == 3
    finally:
        await db.dispose()


async def test_a_bad_query_or_a_bug_is_not_an_outage(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        error = await raised_by(engine, "SELEC 1")
    finally:
        await engine.dispose()
    assert isinstance(error, ProgrammingError)
    assert not is_database_outage(error)
    db = Database.open(database_url)
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011
            await db.fetch_row("SELECT 1 / 0")
    finally:
        await db.dispose()
    assert not is_database_outage(caught.value)
    assert not is_database_outage(ValueError("a bug"))
    # asyncpg's catch-all for its own surprises is a bug too, but for a goodbye (above).
    assert not is_database_outage(asyncpg.exceptions.InternalClientError("no decoder for OID 1"))
    assert not is_database_outage(asyncpg.exceptions.OutdatedSchemaCacheError("plan is invalid"))


def app_using(engine: AsyncEngine) -> FastAPI:
    """The middleware where every service has it: inside Starlette's last-resort handler."""
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, service="test", max_body_bytes=1024)

    @app.get("/query")
    async def query() -> dict[str, int]:
        async with engine.connect() as connection:
            return {"one": (await connection.execute(text("SELECT 1"))).scalar_one()}

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    @app.get("/lose-a-race/{sqlstate}")
    async def lose_a_race(sqlstate: str) -> None:
        # PostgreSQL's own abort of a transaction that lost to another, through the driver.
        raised = f"RAISE EXCEPTION 'lost a race' USING ERRCODE = '{sqlstate}'"
        async with engine.connect() as connection:
            await connection.execute(text(f"DO $$ BEGIN {raised}; END $$"))

    return app


async def test_outage_is_503_with_retry_after_and_a_bug_stays_500(nowhere: AsyncEngine) -> None:
    transport = httpx.ASGITransport(app=app_using(nowhere), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        down = await client.get("/query", headers={"X-Request-ID": "outage-1"})
        bug = await client.get("/bug")
    assert down.status_code == 503
    assert down.json() == {
        "detail": "The database is unavailable; please retry shortly",
        "code": "database_unavailable",
        "request_id": "outage-1",
    }
    assert down.headers["retry-after"] == "1"
    assert bug.status_code == 500
    assert bug.json()["code"] == "internal_error"


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"], ids=["deadlock", "serialization"])
async def test_a_transaction_aborted_for_a_concurrent_one_is_503_with_retry_after(
    engine: AsyncEngine, sqlstate: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing of it was saved and the same request again goes through: not a bug (500).
    transport = httpx.ASGITransport(app=app_using(engine), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        lost = await client.get(f"/lose-a-race/{sqlstate}")
    assert_error(lost, 503, "transaction_conflict")
    assert lost.headers["retry-after"] == "1"
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"


async def test_exhausted_pool_is_503_and_no_connection_is_opened_beyond_it(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1, pool_timeout=0.2)
    transport = httpx.ASGITransport(app=app_using(engine), raise_app_exceptions=False)
    try:
        async with (
            engine.connect() as held,
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            await held.execute(text("SELECT 1"))
            busy = await client.get("/query")
        assert busy.status_code == 503
        assert busy.json()["code"] == "database_unavailable"
        assert busy.headers["retry-after"] == "1"
        assert engine.sync_engine.pool.checkedout() == 0
        assert engine.sync_engine.pool.overflow() <= 0  # the pool never grew past its size
    finally:
        await engine.dispose()


@pytest.fixture
async def impatient(database_url: str) -> AsyncIterator[Database]:
    """A database whose sessions cancel any statement after 100 ms, as the app roles' 30 s
    bound does (shared/bootstrap.sql)."""
    target = connect_target(database_url)
    engine = create_async_engine(
        target.url,
        connect_args={**target.connect_args, "server_settings": {"statement_timeout": "100"}},
    )
    yield Database(engine)
    await engine.dispose()


def slow_app(db: Database) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="test", max_body_bytes=1024)

    @app.get("/driver")
    async def driver() -> None:
        await db.fetch_row("SELECT pg_sleep(1)", write=True)

    @app.get("/orm")
    async def orm() -> None:
        async with db.unit_of_work() as session:
            connection = await session.connection()
            await connection.execute(text("SELECT pg_sleep(1)"))

    return app


async def test_a_statement_past_its_time_bound_is_a_503_not_a_500_nor_outcome_unknown(
    impatient: Database,
) -> None:
    transport = httpx.ASGITransport(app=slow_app(impatient), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/driver", "/orm"):
            answer = await client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["code"] == "database_unavailable"
            assert answer.headers["retry-after"] == "1"
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is examined
        await impatient.fetch_row("SELECT pg_sleep(1)")
    assert is_statement_cancelled(caught.value)
    assert not is_database_outage(caught.value)  # the server is there: no outcome in doubt
    assert (await impatient.fetch_row("SELECT 1")) == (1,)  # and the connection still serves
