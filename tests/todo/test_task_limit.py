"""A user keeps at most ``TASKS_PER_USER_MAX`` tasks: the database refuses the insert past it
(migration 0012), whichever path adds the task, as a 409 that changes nothing.

The user's counter row stands in for the tasks themselves: the bound reads it, and setting
it spares inserting 100,000 rows. The refusal ends the statement's transaction, so these
tests run on committed connections.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support.errors import assert_error
from tests.todo.conftest import Snapshot, User, create, set_task_total
from todo_service.models import TASKS_PER_USER_MAX

LIMIT = "task_limit_reached"


async def test_a_create_past_the_users_task_limit_is_409_and_changes_nothing(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    committed_snapshot: Snapshot,
    alice: User,
    bob: User,
) -> None:
    client, snapshot = committed_client, committed_snapshot
    await set_task_total(committed_sessionmaker, alice, TASKS_PER_USER_MAX - 1)
    await create(client, alice, title="the last one")
    before = await snapshot()
    refused = await client.post("/api/tasks", json={"title": "one more"}, headers=alice.headers)
    body = assert_error(refused, 409, LIMIT)
    assert body["detail"] == f"At most {TASKS_PER_USER_MAX} tasks per user; delete some first"
    keyed = await client.post(
        "/api/tasks",
        json={"title": "one more"},
        headers={**alice.headers, "Idempotency-Key": "k-1"},
    )
    assert_error(keyed, 409, LIMIT)
    assert await snapshot() == before  # no task, no key, no count, no event
    await create(client, bob, title="another user's")


async def test_deleting_a_task_at_the_limit_makes_room_for_one(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], alice: User
) -> None:
    await set_task_total(sessionmaker, alice, TASKS_PER_USER_MAX - 1)
    task = await create(client, alice)
    deleted = await client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    await create(client, alice, title="in its place")


async def test_completing_a_recurring_task_at_the_limit_is_409_and_leaves_it_open(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    committed_snapshot: Snapshot,
    alice: User,
) -> None:
    # Its next occurrence would be a task past the bound.
    client, snapshot = committed_client, committed_snapshot
    await set_task_total(committed_sessionmaker, alice, TASKS_PER_USER_MAX - 1)
    task = await create(client, alice, recurrence="daily", due_at="2026-03-16T09:00:00Z")
    before = await snapshot()
    refused = await client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    assert_error(refused, 409, LIMIT)
    assert await snapshot() == before


async def test_concurrent_creates_at_the_limit_admit_exactly_the_room_left(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    await set_task_total(committed_sessionmaker, alice, TASKS_PER_USER_MAX - 3)
    answers = await asyncio.gather(
        *(
            committed_client.post("/api/tasks", json={"title": f"t{n}"}, headers=alice.headers)
            for n in range(12)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 9
    async with committed_sessionmaker() as session:
        connection = await session.connection()
        total = await connection.scalar(
            text("SELECT total FROM todo.task_counts WHERE user_id = :u"), {"u": alice.sub}
        )
    assert total == TASKS_PER_USER_MAX
