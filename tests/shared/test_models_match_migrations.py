"""The migrations build exactly what the models describe, for every service.

The session's database is migrated to head; a fresh database gets the same schemas straight
from the models (``MetaData.create_all``). Their catalogs must agree on every column (type,
length, nullability, default), index definition, constraint and enum: a model changed
without a migration (or a migration without the model) fails here.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from shared.db import connect_target
from shared.migrate import available_services
from tests.deploy.support import connect

COLUMNS = """
    SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
           is_nullable, column_default, is_identity, identity_generation
    FROM information_schema.columns
    WHERE table_schema = $1 AND table_name <> 'alembic_version'
"""
INDEXES = """
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = $1 AND tablename <> 'alembic_version'
"""
# A check a migration added NOT VALID (so as not to read a large table under its lock) is the
# models' rule for every row written since; whether the rows before were read is not a
# difference of schema.
CONSTRAINTS = """
    SELECT conrelid::regclass::text, conname,
           regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '')
    FROM pg_constraint
    WHERE connamespace = $1::regnamespace AND conrelid::regclass::text NOT LIKE '%alembic_version'
"""
ENUMS = """
    SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE t.typnamespace = $1::regnamespace
    GROUP BY t.typname
"""


def service_metadata(package: str) -> tuple[str, Any]:
    """A service's schema and the MetaData its models (and its Alembic env) declare."""
    models = importlib.import_module(f"{package}.models")
    bases = {
        value.metadata
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, SQLModel)
        and value.metadata.schema == models.SCHEMA
    }
    assert len(bases) == 1, f"{package}.models: one MetaData for schema {models.SCHEMA}"
    return models.SCHEMA, bases.pop()


async def catalog(url: str, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    connection = await connect(url)
    try:
        return {
            name: {tuple(row) for row in await connection.fetch(sql, schema)}
            for name, sql in (
                ("columns", COLUMNS),
                ("indexes", INDEXES),
                ("constraints", CONSTRAINTS),
                ("enums", ENUMS),
            )
        }
    finally:
        await connection.close()


@pytest.fixture
async def models_database(database_url: str) -> AsyncIterator[str]:
    """A fresh database with every service's schema created from its models."""
    name = f"models_{secrets.token_hex(4)}"
    server = await connect(database_url)
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        target = connect_target(url)
        engine = create_async_engine(
            target.url, connect_args=target.connect_args, poolclass=NullPool
        )
        try:
            async with engine.begin() as connection:
                for package in available_services():
                    schema, metadata = service_metadata(package)
                    await connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                    await connection.run_sync(metadata.create_all)
        finally:
            await engine.dispose()
        yield url
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.mark.parametrize("package", available_services())
async def test_the_migrated_schema_is_the_models_schema(
    package: str, migrated_url: str, models_database: str
) -> None:
    schema, _ = service_metadata(package)
    migrated = await catalog(migrated_url, schema)
    modelled = await catalog(models_database, schema)
    for kind in migrated:
        assert migrated[kind] - modelled[kind] == set(), f"{kind} only in the migrations"
        assert modelled[kind] - migrated[kind] == set(), f"{kind} only in the models"
    assert migrated["indexes"], "the comparison saw the schema's indexes"


async def test_a_model_change_without_a_migration_is_seen(
    migrated_url: str, models_database: str
) -> None:
    """The comparison is not blind: one column's length changed on the models' side."""
    schema, metadata = service_metadata("todo_service")
    table = next(t for t in metadata.sorted_tables if t.name == "tasks")
    column = next(c for c in table.columns if c.type.python_type is str and not c.primary_key)
    connection: asyncpg.Connection[Any] = await connect(models_database)
    try:
        await connection.execute(
            f'ALTER TABLE "{schema}"."{table.name}" ALTER COLUMN "{column.name}" TYPE varchar(7)'
        )
    finally:
        await connection.close()
    assert await catalog(migrated_url, schema) != await catalog(models_database, schema)
