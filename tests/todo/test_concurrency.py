"""Concurrent requests on committed data: each on its own connection, really interleaved."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from tests.support.database import lock_waiters
from tests.support.errors import assert_error
from tests.support.events import eventually
from tests.todo.conftest import User, create
from todo_service import service
from todo_service.schemas import TaskPublic

ROUNDS = 5


async def count_rows(maker: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> int:
    async with maker() as session:
        connection = await session.connection()
        value: int = (await connection.execute(text(sql), params)).scalar_one()
        return value


@pytest.mark.parametrize(
    ("method", "suffix", "bodies"),
    [
        ("PATCH", "", [{"title": "from A"}, {"title": "from B"}]),
        ("PUT", "", [{"title": "from A"}, {"title": "from B", "priority": "high"}]),
        ("PATCH", "/complete", [None, None]),
    ],
)
async def test_two_writers_with_the_same_if_match_exactly_one_wins(
    committed_client: httpx.AsyncClient,
    alice: User,
    method: str,
    suffix: str,
    bodies: list[Any],
) -> None:
    for _ in range(ROUNDS):
        task = await create(committed_client, alice, title="contended")
        headers = {**alice.headers, "If-Match": '"1"'}
        responses = await asyncio.gather(
            *(
                committed_client.request(
                    method, f"/api/tasks/{task['id']}{suffix}", json=body, headers=headers
                )
                for body in bodies
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 412], [r.text for r in responses]
        assert_error(next(r for r in responses if r.status_code == 412), 412, "precondition_failed")
        winner = next(r for r in responses if r.status_code == 200)
        current = await committed_client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
        assert current.json() == winner.json()
        assert current.json()["version"] == 2


async def test_a_write_racing_a_delete_never_resurrects_the_task(
    committed_client: httpx.AsyncClient, alice: User
) -> None:
    """Whoever loses: 412 if the delete came second, 404 if the task was already gone."""
    for _ in range(ROUNDS):
        task = await create(committed_client, alice, title="contended")
        url = f"/api/tasks/{task['id']}"
        headers = {**alice.headers, "If-Match": '"1"'}
        patched, deleted = await asyncio.gather(
            committed_client.patch(url, json={"title": "edited"}, headers=headers),
            committed_client.delete(url, headers=headers),
        )
        outcome = (patched.status_code, deleted.status_code)
        assert outcome in {(200, 412), (404, 204)}, (patched.text, deleted.text)
        gone = (await committed_client.get(url, headers=alice.headers)).status_code == 404
        assert gone == (deleted.status_code == 204)


async def test_concurrent_retries_with_one_key_create_exactly_one_task(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    for round_number in range(ROUNDS):
        headers = {**alice.headers, "Idempotency-Key": f"order-{round_number}"}
        body = {"title": f"order {round_number}"}
        responses = await asyncio.gather(
            *(committed_client.post("/api/tasks", json=body, headers=headers) for _ in range(8))
        )
        assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len({r.headers["location"] for r in responses}) == 1
        assert (
            await count_rows(
                committed_sessionmaker,
                "SELECT count(*) FROM todo.tasks WHERE title = :title",
                title=body["title"],
            )
            == 1
        )


async def test_concurrent_requests_with_one_key_and_different_bodies(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "mixed"}
    bodies = [{"title": "first"}, {"title": "second"}] * 4
    responses = await asyncio.gather(
        *(committed_client.post("/api/tasks", json=body, headers=headers) for body in bodies)
    )
    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 422]
    assert len(created) + len(refused) == len(bodies)
    winner_title = created[0].json()["title"]
    assert all(r.json()["title"] == winner_title for r in created)
    assert len(created) == len(refused) == 4
    for response in refused:
        assert_error(response, 422, "idempotency_key_reused")
    assert await count_rows(committed_sessionmaker, "SELECT count(*) FROM todo.tasks") == 1


async def test_concurrent_completions_of_a_recurring_task_schedule_one_occurrence(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    task = await create(
        committed_client, alice, title="daily", recurrence="daily", due_at="2026-03-15T08:00:00Z"
    )
    url = f"/api/tasks/{task['id']}/complete"
    responses = await asyncio.gather(
        *(committed_client.patch(url, json={"completed": True}, headers=alice.headers)
          for _ in range(6))
    )  # fmt: skip
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["next_occurrence_id"] for r in responses}) == 1
    assert await count_rows(committed_sessionmaker, "SELECT count(*) FROM todo.tasks") == 2


async def test_counts_stay_exact_under_concurrent_writes(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
) -> None:
    created = await asyncio.gather(
        *(create(committed_client, alice, title=f"t{i}") for i in range(20))
    )
    await asyncio.gather(
        *(
            committed_client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
            for task in created[:7]
        ),
        *(
            committed_client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
            for task in created[15:]
        ),
    )
    totals = {}
    for status in ("all", "pending", "completed"):
        response = await committed_client.get(
            "/api/tasks", params={"status": status, "limit": 1}, headers=alice.headers
        )
        totals[status] = int(response.headers["x-total-count"])
    assert totals == {"all": 15, "pending": 8, "completed": 7}
    assert totals["all"] == await count_rows(
        committed_sessionmaker, "SELECT count(*) FROM todo.tasks WHERE user_id = :u", u=alice.sub
    )


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("created", "desc"),
        ("created", "asc"),
        ("title", "asc"),
        ("due", "asc"),
        ("priority", "desc"),
    ],
)
async def test_a_walk_returns_every_existing_row_once_while_rows_are_inserted(
    committed_client: httpx.AsyncClient,
    alice: User,
    clock: FrozenClock,
    sort: str,
    order: str,
) -> None:
    priorities = ["low", "medium", "high"]
    existing = []
    for i in range(30):
        existing.append(
            await create(
                committed_client,
                alice,
                title=f"task {i:02d}",
                priority=priorities[i % 3],
                due_at=None if i % 4 == 0 else f"2026-04-{1 + i % 28:02d}T09:00:00Z",
            )
        )
        clock.advance(seconds=1)
    start_ids = {task["id"] for task in existing}

    inserted = 0
    inserted_during_walk: list[int] = []

    async def insert_while_walking() -> None:
        # New rows land before, inside and after the part of the walk still to come.
        nonlocal inserted
        for i in range(40):
            clock.advance(seconds=1)
            await create(
                committed_client,
                alice,
                title=f"task {i % 30:02d} new",
                priority=priorities[i % 3],
                due_at=None if i % 5 == 0 else f"2026-04-{1 + (i * 7) % 28:02d}T09:00:00Z",
            )
            inserted += 1
            await asyncio.sleep(0)

    async def walk() -> list[int]:
        seen: list[int] = []
        url = f"/api/tasks?limit=4&sort={sort}&order={order}"
        for _ in range(100):
            response = await committed_client.get(url, headers=alice.headers)
            assert response.status_code == 200, response.text
            seen += [task["id"] for task in response.json()]
            inserted_during_walk.append(inserted)
            link = response.headers.get("link")
            if link is None:
                return seen
            url = link[1 : link.index(">")]
            await asyncio.sleep(0)
        raise AssertionError("the walk did not end")

    seen, _ = await asyncio.gather(walk(), insert_while_walking())

    assert inserted == 40
    # The walk really overlapped the inserts: rows arrived between its pages.
    assert len(set(inserted_during_walk)) > 2, inserted_during_walk
    counts = Counter(seen)
    assert all(counts[task_id] == 1 for task_id in start_ids), counts
    assert max(counts.values()) == 1


async def test_deleting_an_occurrence_while_it_and_its_predecessor_are_completed_never_deadlocks(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    alice: User,
    clock: FrozenClock,
) -> None:
    """``DELETE /api/tasks/C`` clears the link of C's predecessor A (the lower id) while
    ``complete_tasks([A, C])`` locks A, then C. A third transaction holds C, so the deletion
    waits for C first and the completion queues behind it: had the deletion locked C before
    A, the two would wait for each other once C is free (a 500 with PostgreSQL's deadlock)."""
    daily = await create(committed_client, alice, title="daily", recurrence="daily")
    done = await committed_client.patch(f"/api/tasks/{daily['id']}/complete", headers=alice.headers)
    a, c = daily["id"], done.json()["next_occurrence_id"]
    assert a < c

    async def delete() -> TaskPublic:
        async with committed_database.unit_of_work() as session:
            return await service.delete_task(session, alice.sub, task_id=c, clock=clock)

    async def complete() -> list[TaskPublic]:
        async with committed_database.unit_of_work() as session:
            return await service.set_completed_many(
                session, alice.sub, task_ids=[a, c], completed=True, clock=clock
            )

    async with committed_database.unit_of_work() as holder:
        await holder.fetch_row("SELECT id FROM todo.tasks WHERE id = $1 FOR UPDATE", c)
        deleting = asyncio.create_task(delete())

        async def waiting(n: int) -> bool:
            return await lock_waiters(committed_database) == n

        await eventually(lambda: waiting(1), seconds=5)
        completing = asyncio.create_task(complete())
        await eventually(lambda: waiting(2), seconds=5)
    async with asyncio.timeout(10):
        deleted, completed = await asyncio.gather(deleting, completing, return_exceptions=True)
    assert isinstance(deleted, TaskPublic), deleted
    assert deleted.id == c
    # The completion came second and found C gone: refused whole, not a deadlock.
    assert isinstance(completed, service.TasksNotFound), completed
    assert completed.task_ids == [c]
    linked = await committed_client.get(f"/api/tasks/{a}", headers=alice.headers)
    assert linked.json()["next_occurrence_id"] is None
