"""Test fixtures: one real PostgreSQL per test session, migrations once, isolation per test.

The server is the embedded one in a throw-away directory (never ``.data/``) unless
``TEST_DATABASE_URL`` names another. Under pytest-xdist (``make test``) each worker is a
session of its own: its own embedded server, or its own database on that other server.
Each test runs inside a transaction that is rolled back; tests of concurrent behaviour use
``committed_sessionmaker`` and the tables are emptied after.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, create_engine
from shared.embedded_pg import EmbeddedPostgres
from shared.migrate import available_services
from shared.migrations import upgrade
from tests.support.database import database_of_own, empty_service_schemas
from tests.support.redis import redis_server


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile``: whole packages for those sharing a stack, the longest units
    first (``tests/support/schedule.py``)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.schedule import PackageLoadFileScheduling

    return PackageLoadFileScheduling(config, log)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if url and worker:
        # Parallel workers (make test): a database each, as each has its own embedded server.
        database = make_url(url).database or "postgres"
        with database_of_own(url, f"{database}_{worker}") as own:
            yield own
        return
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="todo-platform-test-pg-") as directory:
        server = EmbeddedPostgres(Path(directory) / "pgdata")
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    for service in available_services():
        upgrade(service, database_url)
    return database_url


@pytest.fixture(scope="session")
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_url, pool_size=5, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside an outer transaction that the test never gets to commit."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        # BEGIN is sent lazily: sent now, so statements run straight on the driver
        # (Database.fetch_row) are inside the transaction too.
        await connection.execute(text("SELECT 1"))
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def database(db_connection: AsyncConnection) -> Database:
    """The services' ``Database`` on the rolled-back connection: the production code paths,
    where each commit only releases a savepoint of the outer transaction."""
    return Database.bound_to(db_connection)


@pytest.fixture
def sessionmaker(database: Database) -> async_sessionmaker[AsyncSession]:
    return database.sessionmaker


@pytest.fixture
async def committed_database(engine: AsyncEngine) -> AsyncIterator[Database]:
    """Real commits on pooled connections, for tests of concurrent requests; emptied after."""
    yield Database(engine)
    await empty_service_schemas(engine, restart_identity=True)


@pytest.fixture
def committed_sessionmaker(committed_database: Database) -> async_sessionmaker[AsyncSession]:
    return committed_database.sessionmaker


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real Redis for this test only (tests/support/redis.py: skipped without
    ``redis-server``, except under CI, where that fails)."""
    with redis_server(tmp_path) as url:
        yield url
