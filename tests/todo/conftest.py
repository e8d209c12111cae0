"""Fixtures of the todo service's tests: the app in-process with a test token issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from tests.support.serving import serve
from tests.support.tokens import TestIssuer
from todo_service.app import create_app
from todo_service.settings import TodoSettings

# A fixed "now" for the service (due dates, overdue, completion times); tokens use real time.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class User:
    sub: str
    headers: dict[str, str]


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def alice(issuer: TestIssuer) -> User:
    return User("alice-subject", issuer.auth("alice-subject"))


@pytest.fixture
def bob(issuer: TestIssuer) -> User:
    return User("bob-subject", issuer.auth("bob-subject"))


@pytest.fixture
def carol(issuer: TestIssuer) -> User:
    return User("carol-subject", issuer.auth("carol-subject"))


@pytest.fixture
def todo_settings(migrated_url: str) -> TodoSettings:
    return TodoSettings(_env_file=None, environment="test", database_url=migrated_url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def client(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(todo_settings, db=database, verifier=issuer.verifier(), clock=clock)
    async with serve(app) as client:
        yield client


@pytest.fixture
async def committed_client(
    todo_settings: TodoSettings,
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    """Real commits on separate connections: requests really run concurrently."""
    app = create_app(todo_settings, db=committed_database, verifier=issuer.verifier(), clock=clock)
    async with serve(app) as client:
        yield client


Snapshot = Callable[[], Awaitable[list[dict[str, Any]]]]
TABLES = (
    ("tasks", "id"),
    ("idempotency_keys", "id"),
    ("task_counts", "user_id"),
    ("outbox", "id"),
    ("notifications", "id"),
)


def _snapshot(maker: async_sessionmaker[AsyncSession]) -> Snapshot:
    async def take() -> list[dict[str, Any]]:
        async with maker() as session:
            connection = await session.connection()
            rows = []
            for table, key in TABLES:
                statement = f"SELECT * FROM todo.{table} ORDER BY {key}"  # noqa: S608
                result = await connection.execute(text(statement))
                rows += [{"table": table, **row._asdict()} for row in result]
            return rows

    return take


@pytest.fixture
def snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> Snapshot:
    """Every row of the todo schema (the outbox too), to prove a refused request changed
    nothing and wrote no event."""
    return _snapshot(sessionmaker)


@pytest.fixture
def committed_snapshot(committed_sessionmaker: async_sessionmaker[AsyncSession]) -> Snapshot:
    """``snapshot`` of the committed database: for a refusal the database itself makes,
    which ends the transaction of the rolled-back test connection."""
    return _snapshot(committed_sessionmaker)


async def create(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    """A task for ``user`` through the API; the title defaults to something unique enough."""
    fields.setdefault("title", "a task")
    response = await client.post("/api/tasks", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def following(client: httpx.AsyncClient, user: User, task_id: int) -> dict[str, Any]:
    """Complete the task; its next occurrence as the API reads it."""
    done = await client.patch(
        f"/api/tasks/{task_id}/complete", json={"completed": True}, headers=user.headers
    )
    assert done.status_code == 200, done.text
    next_id = done.json()["next_occurrence_id"]
    assert next_id is not None
    response = await client.get(f"/api/tasks/{next_id}", headers=user.headers)
    task: dict[str, Any] = response.json()
    return task


async def set_task_total(maker: async_sessionmaker[AsyncSession], user: User, total: int) -> None:
    """The user's task count as if they had ``total`` tasks: what the per-user bound reads
    (migration 0012), without inserting that many rows."""
    async with maker.begin() as session:
        await (await session.connection()).execute(
            text(
                "INSERT INTO todo.task_counts (user_id, total) VALUES (:user, :total) "
                "ON CONFLICT (user_id) DO UPDATE SET total = excluded.total"
            ),
            {"user": user.sub, "total": total},
        )


async def events_of(db: Database, user: User, *, after: int = 0) -> list[dict[str, Any]]:
    """The user's outbox rows after id ``after``, in id order (the order they are published)."""
    async with db.sessionmaker() as session:
        rows = await (await session.connection()).execute(
            text(
                "SELECT id, stream, key, type, version, data FROM todo.outbox "
                "WHERE key = :key AND id > :after ORDER BY id"
            ),
            {"key": user.sub, "after": after},
        )
        return [row._asdict() for row in rows]


async def last_event_id(db: Database) -> int:
    row = await db.fetch_row("SELECT coalesce(max(id), 0) FROM todo.outbox")
    assert row is not None
    return int(row[0])
