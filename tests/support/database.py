"""Emptying the service schemas between tests that commit real data."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.migrate import available_services

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
