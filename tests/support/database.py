"""Emptying the service schemas between tests that commit real data, a PostgreSQL of a
test's own for tests that stop, restart or crash it (the session's is shared), how many
transactions wait for a lock (to interleave concurrent ones in a known order), and many
tasks written at once."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, create_engine
from shared.embedded_pg import EmbeddedPostgres
from shared.migrate import available_services
from shared.migrations import upgrade

SERVICE_SCHEMAS = {
    "auth_service": "auth",
    "todo_service": "todo",
    "chat_service": "chat",
    "web_service": "web",
}


async def empty_service_schemas(engine: AsyncEngine, *, restart_identity: bool = False) -> None:
    """Empty every table of every installed service's schema (not the version tables), and
    with ``restart_identity`` start every sequence of those schemas again, as ``TRUNCATE ...
    RESTART IDENTITY`` of them all would. Only the tables that hold a row are truncated and only
    the sequences that were used are restarted: a ``TRUNCATE`` costs the same, empty or not,
    and most tests leave most tables empty."""
    schemas = [SERVICE_SCHEMAS[service] for service in available_services()]
    async with engine.begin() as connection:
        names = (
            await connection.execute(
                text(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
                    "FROM pg_tables WHERE schemaname = ANY(:schemas) "
                    "AND tablename <> 'alembic_version' ORDER BY 1"
                ),
                {"schemas": schemas},
            )
        ).scalars()
        tables = list(names)
        if tables:
            # The catalog's own names, quoted: nothing from outside goes into the statement.
            holding = " UNION ALL ".join(
                f"SELECT {n} FROM (SELECT FROM {table} LIMIT 1) AS t{n}"  # noqa: S608
                for n, table in enumerate(tables)
            )
            full = [tables[n] for n in (await connection.execute(text(holding))).scalars()]
            if full:
                await connection.execute(text(f"TRUNCATE {', '.join(full)} CASCADE"))
        if restart_identity:
            # The sequences owned by the tables' columns (serial or identity), once used.
            used = (
                await connection.execute(
                    text(
                        "SELECT format('%I.%I', q.schemaname, q.sequencename) "
                        "FROM pg_sequences q "
                        "JOIN pg_namespace n ON n.nspname = q.schemaname "
                        "JOIN pg_class s ON s.relnamespace = n.oid AND s.relname = q.sequencename "
                        "JOIN pg_depend d ON d.objid = s.oid "
                        "AND d.classid = 'pg_class'::regclass "
                        "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                        "WHERE q.schemaname = ANY(:schemas) AND q.last_value IS NOT NULL"
                    ),
                    {"schemas": schemas},
                )
            ).scalars()
            for sequence in list(used):
                await connection.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))


async def lock_waiters(db: Database) -> int:
    """How many sessions of this database wait for a lock (a row's, an advisory one)."""
    row = await db.fetch_row(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    assert row is not None
    return int(row[0])


@contextmanager
def database_of_own(url: str, name: str) -> Iterator[str]:
    """A new, empty database ``name`` on the server of ``url`` (whose role may create
    databases), for one pytest-xdist worker of a session run against ``TEST_DATABASE_URL``:
    its URL. Dropped after, and first if a killed run left it behind."""
    quoted = '"' + name.replace('"', '""') + '"'

    async def run(*statements: str) -> None:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                for statement in statements:
                    await autocommit.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", f"CREATE DATABASE {quoted}"))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


@asynccontextmanager
async def own_postgres(services: Iterable[str]) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """An embedded PostgreSQL of the caller's own in a temporary directory (a short path: its
    Unix socket lives there), ``services`` migrated: the server and its URL. Stopped after."""
    with tempfile.TemporaryDirectory(prefix="todo-platform-own-pg-") as directory:
        server = EmbeddedPostgres(Path(directory) / "pgdata")
        url = await asyncio.to_thread(server.start)
        try:
            for service in services:
                await asyncio.to_thread(upgrade, service, url)
            yield server, url
        finally:
            await asyncio.to_thread(server.stop)


async def insert_tasks(
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: str,
    count: int,
    *,
    title: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
) -> None:
    """``count`` tasks of ``user_id``, committed in one statement and newer than every task
    the user had (so a listing's newest 100 leave those out); titled ``title``, or
    "Newer <n>"."""
    async with sessionmaker.begin() as session:
        connection = await session.connection()
        await connection.execute(
            text(
                "INSERT INTO todo.tasks (user_id, title, description, tags, created_at,"
                " updated_at, version) SELECT :user, coalesce(:title, 'Newer ' || n),"
                " :description, :tags, now(), now(), 1 FROM generate_series(1, :count) n"
            ),
            {
                "user": user_id,
                "title": title,
                "description": description,
                "tags": list(tags),
                "count": count,
            },
        )
