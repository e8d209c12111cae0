"""Alembic for every service: one env.py body, one programmatic ``upgrade``.

Each service keeps its own revisions in ``<service>/migrations`` and its version table inside
its own schema, so services migrate and deploy independently.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import connect_target


def alembic_config(service: str, url: str) -> Config:
    package = importlib.import_module(service)
    assert package.__file__ is not None
    config = Config()
    config.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    config.attributes["database_url"] = url
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(context: Any, metadata: MetaData, schema: str) -> None:
    """The body of a service's ``migrations/env.py``."""
    url: str = context.config.attributes["database_url"]

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name == schema

    def configure(connection: Connection) -> None:
        # CREATE SCHEMA checks the database's CREATE privilege even with IF NOT EXISTS, and
        # the schema-owning migration role (shared/bootstrap.sql) has none: create it only
        # when missing, which is the case only when migrating as the database owner.
        exists = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
        ).first()
        if exists is None:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        target = connect_target(url)
        engine = create_async_engine(
            target.url, connect_args=target.connect_args, poolclass=pool.NullPool
        )
        try:
            async with engine.begin() as connection:
                await connection.run_sync(configure)
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(run())
