"""Emptying the service schemas between tests that commit real data, and a PostgreSQL of a
test's own for tests that stop, restart or crash it (the session's is shared)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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
    """Truncate every table of every installed service's schema (not the version tables)."""
    suffix = " RESTART IDENTITY CASCADE" if restart_identity else " CASCADE"
    async with engine.begin() as connection:
        for service in available_services():
            schema = SERVICE_SCHEMAS[service]
            rows = await connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                    "AND tablename <> 'alembic_version'"
                ),
                {"schema": schema},
            )
            tables = [f'"{schema}"."{name}"' for (name,) in rows]
            if tables:
                await connection.execute(text(f"TRUNCATE {', '.join(tables)}{suffix}"))


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
