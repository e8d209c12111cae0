"""A connection lost during COMMIT is 503 ``outcome_unknown`` (no ``Retry-After``); one lost
before COMMIT is the ordinary 503 ``database_unavailable`` (with ``Retry-After``).

The failures are real: the server terminates the request's backend, at COMMIT time through a
deferred constraint trigger (it runs inside the COMMIT), or before it, in a statement of the
request or from another connection while the request's transaction is open. The requests go
through the unit of work every service uses (``shared.deps.SessionDep``) and the middleware
and error handlers every service installs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Database, create_engine, is_database_outage
from shared.deps import SessionDep
from shared.errors import OutcomeUnknown, install_error_handlers
from shared.middleware import RequestContextMiddleware

SCHEMA = "outcome_probe"

# A write flagged ``die_at_commit`` makes its own backend terminate while COMMIT runs the
# deferred trigger; pg_sleep is where the termination is taken.
SETUP = [
    f"CREATE SCHEMA {SCHEMA}",
    f"CREATE TABLE {SCHEMA}.writes (note text PRIMARY KEY, die_at_commit boolean NOT NULL)",
    f"""CREATE FUNCTION {SCHEMA}.die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.die_at_commit THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
            PERFORM pg_sleep(10);
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON {SCHEMA}.writes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.die_at_commit()""",
]
INSERT = text("INSERT INTO outcome_probe.writes (note, die_at_commit) VALUES (:note, :die)")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        for statement in SETUP:
            await connection.execute(text(statement))
    yield engine
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
    await engine.dispose()


def app_writing_with(engine: AsyncEngine) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, service="test", max_body_bytes=1024)
    install_error_handlers(app)
    app.state.db = Database(engine)

    @app.post("/writes/{note}")
    async def write(note: str, session: SessionDep, die_at_commit: bool = False) -> dict[str, str]:
        """A write that commits when the route returns, as every service's writes do."""
        await session.exec(INSERT, params={"note": note, "die": die_at_commit})
        return {"note": note}

    @app.post("/writes/{note}/killed-in-statement")
    async def killed_in_statement(note: str, session: SessionDep) -> None:
        await session.exec(INSERT, params={"note": note, "die": False})
        await session.exec(text("SELECT pg_terminate_backend(pg_backend_pid()), pg_sleep(10)"))

    @app.post("/writes/{note}/killed-before-commit")
    async def killed_before_commit(note: str, session: SessionDep) -> dict[str, str]:
        await session.exec(INSERT, params={"note": note, "die": False})
        connection = await session.connection()
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as killer:
            await killer.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        # Returned once the driver has seen the server hang up.
        driver = (await connection.get_raw_connection()).driver_connection
        closed = asyncio.Event()
        driver.add_termination_listener(lambda _: closed.set())
        if not driver.is_closed():
            await asyncio.wait_for(closed.wait(), timeout=5)
        return {"note": note}

    return app


async def post(engine: AsyncEngine, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_writing_with(engine), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, headers={"X-Request-ID": "write-1"})


async def saved(engine: AsyncEngine, note: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT 1 FROM outcome_probe.writes WHERE note = :note"), {"note": note}
        )
        return found.first() is not None


async def test_a_connection_lost_during_commit_is_outcome_unknown_without_retry_after(
    engine: AsyncEngine,
) -> None:
    response = await post(engine, "/writes/cut?die_at_commit=true")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "outcome_unknown"
    assert body["request_id"] == "write-1"
    assert "may or may not have been saved" in body["detail"]
    assert "Idempotency-Key" in body["detail"]
    assert "retry-after" not in response.headers  # no invitation to retry blindly


async def test_a_write_that_commits_is_saved(engine: AsyncEngine) -> None:
    note = uuid.uuid4().hex
    response = await post(engine, f"/writes/{note}")

    assert response.status_code == 200
    assert await saved(engine, note)


async def test_a_connection_lost_in_a_statement_before_commit_is_the_ordinary_503(
    engine: AsyncEngine,
) -> None:
    note = uuid.uuid4().hex
    response = await post(engine, f"/writes/{note}/killed-in-statement")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "1"
    assert not await saved(engine, note)  # the answer was true: nothing was saved


async def test_a_connection_terminated_before_commit_is_the_ordinary_503(
    engine: AsyncEngine,
) -> None:
    # The failure surfaces at the commit, but the driver knew the connection was gone and
    # never sent COMMIT: the transaction died with the backend.
    note = uuid.uuid4().hex
    response = await post(engine, f"/writes/{note}/killed-before-commit")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "1"
    assert not await saved(engine, note)


# --- single statements through the driver (``Database.fetch_row``), as the chat turn writes --
# On a direct server the statement commits itself, so a connection lost under it may have
# committed; behind a transaction pooler the statement runs in a transaction that COMMIT ends.

FETCH_INSERT = (
    "INSERT INTO outcome_probe.writes (note, die_at_commit) VALUES ($1, $2) RETURNING note"
)
# The write, then the backend terminated while the same statement still runs.
FETCH_INSERT_THEN_DIE = """
WITH written AS (
    INSERT INTO outcome_probe.writes (note, die_at_commit) VALUES ($1, false) RETURNING note
)
SELECT pg_terminate_backend(pg_backend_pid()), pg_sleep(10) FROM written"""


def behind_a_pooler(database_url: str) -> Database:
    """The same server used the way a ``-pooler`` host is: statements in a transaction, and
    no statement cache (as ``Database.open`` sets up for such a host)."""
    url = make_url(database_url).update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_engine(url.render_as_string(hide_password=False), pool_size=1)
    return Database(engine, pooled=True)


@pytest.fixture(params=["direct", "pooler"])
async def statement_db(
    request: pytest.FixtureRequest, engine: AsyncEngine, database_url: str
) -> AsyncIterator[Database]:
    """A database on the probe schema (set up by ``engine``), direct or as behind a pooler."""
    if request.param == "direct":
        yield Database(engine)
        return
    pooled = behind_a_pooler(database_url)
    yield pooled
    await pooled.dispose()


async def test_a_write_statement_whose_connection_is_lost_at_commit_is_outcome_unknown(
    statement_db: Database,
) -> None:
    with pytest.raises(OutcomeUnknown):
        await statement_db.fetch_row(FETCH_INSERT, uuid.uuid4().hex, True, write=True)


async def test_a_read_statement_whose_connection_is_lost_is_the_ordinary_outage(
    statement_db: Database,
) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - any driver error; checked below
        await statement_db.fetch_row(FETCH_INSERT, uuid.uuid4().hex, True)
    assert not isinstance(raised.value, OutcomeUnknown)
    assert is_database_outage(raised.value)


async def test_a_write_statement_lost_on_a_direct_server_is_outcome_unknown(
    engine: AsyncEngine,
) -> None:
    # The statement is its own transaction: nobody can tell whether it committed.
    with pytest.raises(OutcomeUnknown):
        await Database(engine).fetch_row(FETCH_INSERT_THEN_DIE, uuid.uuid4().hex, write=True)


async def test_a_write_statement_lost_before_a_poolers_commit_is_the_ordinary_outage(
    engine: AsyncEngine, database_url: str
) -> None:
    pooled = behind_a_pooler(database_url)
    note = uuid.uuid4().hex
    try:
        with pytest.raises(Exception) as raised:  # noqa: PT011 - any driver error; checked below
            await pooled.fetch_row(FETCH_INSERT_THEN_DIE, note, write=True)
    finally:
        await pooled.dispose()
    assert not isinstance(raised.value, OutcomeUnknown)
    assert is_database_outage(raised.value)
    assert not await saved(engine, note)  # the transaction died before COMMIT


async def test_a_write_statement_that_cannot_connect_is_the_ordinary_outage(
    tmp_path: Path,
) -> None:
    unreachable = Database(
        create_engine(
            f"postgresql://postgres@/postgres?host={tmp_path}", pool_size=1, connect_timeout=2
        )
    )
    try:
        with pytest.raises(Exception) as raised:  # noqa: PT011 - any driver error; checked below
            await unreachable.fetch_row(FETCH_INSERT, "never", False, write=True)
    finally:
        await unreachable.dispose()
    assert not isinstance(raised.value, OutcomeUnknown)
    assert is_database_outage(raised.value)


async def test_a_write_statement_that_commits_is_saved(statement_db: Database) -> None:
    note = uuid.uuid4().hex
    row = await statement_db.fetch_row(FETCH_INSERT, note, False, write=True)

    assert row is not None
    assert row[0] == note
    assert await saved(statement_db.engine, note)
