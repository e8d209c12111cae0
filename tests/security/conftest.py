"""Fixtures of the security tests: the real processes (``tests/e2e/stack.py``), users
registered through the gateway, resources of their own, and the database as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Database
from tests.e2e.stack import Stack, running_stack
from tests.e2e.users import User, register_and_login
from todo_service.scheduler import fire_due

SCHEMAS = ("auth", "todo", "chat")


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stack(migrated_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """Every service of this checkout running, the gateway in front: one stack for this
    package (``tests/e2e/stack.py``)."""
    async with running_stack(migrated_url, engine) as running:
        yield running


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as client:
        yield client


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def owner(gateway: httpx.AsyncClient) -> User:
    """Owns the resources the intruder goes after."""
    return await register_and_login(gateway, name="Owner")


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def intruder(gateway: httpx.AsyncClient) -> User:
    """A real user with a valid token of their own."""
    return await register_and_login(gateway, name="Intruder")


async def create_resources(
    gateway: httpx.AsyncClient, user: User, kinds: set[str], *, database_url: str | None = None
) -> dict[str, int]:
    """A fresh resource of each kind for ``user``, by placeholder name (a notification needs
    the stack's ``database_url``, where the scheduler's round runs)."""
    ids: dict[str, int] = {}
    if "task_id" in kinds:
        task = await gateway.post("/api/tasks", json={"title": "mine"}, headers=user.headers)
        assert task.status_code == 201, task.text
        ids["task_id"] = task.json()["id"]
    if "notification_id" in kinds:
        assert database_url is not None, "a notification needs the stack's database_url"
        ids["notification_id"] = await _notification(gateway, user, database_url)
    if "conversation_id" in kinds:
        turn = await gateway.post("/api/chat", json={"message": "hello"}, headers=user.headers)
        assert turn.status_code == 200, turn.text
        ids["conversation_id"] = turn.json()["conversation_id"]
    if "webhook_id" in kinds:
        # At most 10 per user: the earlier tests' ones make room for this one.
        listed = await gateway.get("/api/webhooks", headers=user.headers)
        for old in listed.json():
            await gateway.delete(f"/api/webhooks/{old['id']}", headers=user.headers)
        hook = await gateway.post(
            "/api/webhooks", json={"url": "https://93.184.216.34/mine"}, headers=user.headers
        )
        assert hook.status_code == 201, hook.text
        ids["webhook_id"] = hook.json()["id"]
    return ids


async def _notification(gateway: httpx.AsyncClient, user: User, database_url: str) -> int:
    """A notification of ``user``: a task whose reminder is due now, fired by the scheduler
    (the worker's round, run here on the stack's database)."""
    due = datetime.now(UTC) - timedelta(seconds=1)
    task = await gateway.post(
        "/api/tasks",
        json={"title": "remind me", "reminders": [{"at": due.isoformat()}]},
        headers=user.headers,
    )
    assert task.status_code == 201, task.text
    db = Database.open(database_url, pool_size=1)
    try:
        await fire_due(db, now=datetime.now(UTC), batch=1000)
    finally:
        await db.dispose()
    listed = await gateway.get("/api/notifications", headers=user.headers)
    [notification] = [n for n in listed.json() if n["task_id"] == task.json()["id"]]
    notification_id: int = notification["id"]
    return notification_id


async def snapshot(engine: AsyncEngine, *, where_user: str | None = None) -> dict[str, Any]:
    """Every row of every service table (or only those of one user), to prove a refused
    request changed nothing."""
    rows: dict[str, Any] = {}
    async with engine.connect() as connection:
        tables = await connection.execute(
            text(
                "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(:schemas) "
                "AND tablename <> 'alembic_version' ORDER BY 1, 2"
            ),
            {"schemas": list(SCHEMAS)},
        )
        for schema, table in tables.all():
            columns = await connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = :schema AND table_name = :table"
                ),
                {"schema": schema, "table": table},
            )
            names = {name for (name,) in columns}
            if where_user is not None and "user_id" not in names:
                continue
            query = f'SELECT * FROM "{schema}"."{table}"'  # noqa: S608 - names from pg_tables
            params = {}
            if where_user is not None:
                query += " WHERE user_id = :user"
                params["user"] = where_user
            result = await connection.execute(text(query), params)
            rows[f"{schema}.{table}"] = sorted(map(repr, result.all()))
    return rows
