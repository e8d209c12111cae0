"""The reminder scheduler on real commits: a due reminder is one notification and one
``reminder.due`` event written in the same transaction; two schedulers at once never fire a
reminder twice; a completed task fires nothing; a scheduler stopped before the due time
fires it once after its restart, late but not lost; the event reaches the tasks stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.db import Database
from shared.events import TASKS_STREAM, redis_client
from tests.support.events import eventually
from tests.support.serving import serve
from tests.todo.conftest import NOW, User, create
from todo_service.scheduler import REMINDER_DUE, fire_due
from todo_service.settings import TodoSettings
from todo_service.worker import create_app as create_worker


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def query(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


async def notifications(db: Database) -> list[Any]:
    return await query(
        db,
        "SELECT id, user_id, task_id, remind_at, xmin::text AS xid "
        "FROM todo.notifications ORDER BY id",
    )


async def due_events(db: Database) -> list[Any]:
    return await query(
        db,
        "SELECT key, data, xmin::text AS xid FROM todo.outbox WHERE type = :type ORDER BY id",
        type=REMINDER_DUE,
    )


async def test_a_due_reminder_is_one_notification_and_its_event_in_one_transaction(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    task = await create(
        committed_client,
        alice,
        title="Call the dentist",
        due_at=iso(NOW + timedelta(hours=1)),
        reminders=[{"before_due_minutes": 60}, {"at": iso(NOW + timedelta(minutes=30))}],
    )

    assert await fire_due(committed_database, now=NOW - timedelta(seconds=1), batch=10) == 0
    assert await fire_due(committed_database, now=NOW, batch=10) == 1
    assert await fire_due(committed_database, now=NOW, batch=10) == 0

    [notification] = await notifications(committed_database)
    [event] = await due_events(committed_database)
    assert notification.xid == event.xid  # written by the same transaction
    assert event.key == alice.sub
    assert event.data == {
        "user_id": alice.sub,
        "notification_id": notification.id,
        "task_id": task["id"],
        "title": "Call the dentist",
        "due_at": "2026-03-15T13:00:00Z",
        "remind_at": "2026-03-15T12:00:00Z",
    }
    read = await committed_client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert [r["fires_at"] for r in read.json()["reminders"]] == [
        None,
        "2026-03-15T12:30:00.000000Z",
    ]
    # The representation changed, so does its version (a cached copy is stale).
    assert read.json()["version"] == task["version"] + 1

    assert await fire_due(committed_database, now=NOW + timedelta(minutes=30), batch=10) == 1
    assert len(await notifications(committed_database)) == 2
    assert await fire_due(committed_database, now=NOW + timedelta(days=1), batch=10) == 0


async def test_reminders_missed_while_stopped_each_fire_once(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    await create(
        committed_client,
        alice,
        due_at=iso(NOW + timedelta(hours=2)),
        reminders=[{"before_due_minutes": 60}, {"before_due_minutes": 90}],
    )
    assert await fire_due(committed_database, now=NOW + timedelta(hours=3), batch=10) == 1
    assert [n.remind_at for n in await notifications(committed_database)] == [
        NOW + timedelta(minutes=30),
        NOW + timedelta(minutes=60),
    ]


async def test_a_completed_task_fires_nothing_and_once_reopened_it_fires(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    task = await create(
        committed_client, alice, reminders=[{"at": iso(NOW + timedelta(minutes=5))}]
    )
    url = f"/api/tasks/{task['id']}/complete"
    await committed_client.patch(url, json={"completed": True}, headers=alice.headers)
    assert await fire_due(committed_database, now=NOW + timedelta(hours=1), batch=10) == 0
    assert await notifications(committed_database) == []

    await committed_client.patch(url, json={"completed": False}, headers=alice.headers)
    assert await fire_due(committed_database, now=NOW + timedelta(hours=1), batch=10) == 1
    assert len(await notifications(committed_database)) == 1


async def test_two_schedulers_at_once_fire_every_reminder_exactly_once(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    migrated_url: str,
    alice: User,
    bob: User,
) -> None:
    users = (alice, bob)
    for n in range(40):
        await create(
            committed_client,
            users[n % 2],
            due_at=iso(NOW + timedelta(minutes=n)),
            reminders=[{"before_due_minutes": 0}, {"before_due_minutes": 10}],
        )
    replicas = [Database.open(migrated_url, pool_size=2) for _ in range(2)]
    handled = [0, 0]

    async def run(index: int) -> None:
        # Small batches, so that the two interleave over many rounds.
        while done := await fire_due(replicas[index], now=NOW + timedelta(hours=1), batch=3):
            handled[index] += done
            await asyncio.sleep(0)

    try:
        await asyncio.wait_for(asyncio.gather(run(0), run(1)), 60)
    finally:
        for replica in replicas:
            await replica.dispose()

    fired = await notifications(committed_database)
    assert len(fired) == 80
    assert len({(n.task_id, n.remind_at) for n in fired}) == 80
    events = await due_events(committed_database)
    assert sorted(e.data["notification_id"] for e in events) == [n.id for n in fired]
    assert sum(handled) == 40
    # Each user's notification ids follow their reminders' order of firing per round.
    for user in users:
        mine = [n for n in fired if n.user_id == user.sub]
        assert len(mine) == 40


async def unread_remind_ats(client: httpx.AsyncClient, user: User) -> list[datetime]:
    """When the user's unread notifications were meant to fire, in order."""
    response = await client.get("/api/notifications?unread=true", headers=user.headers)
    assert response.status_code == 200, response.text
    return sorted(datetime.fromisoformat(n["remind_at"]) for n in response.json())


async def test_a_user_keeps_only_the_newest_unread_notifications_up_to_the_bound(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    """Reminders at instants already past fire at once, so one task re-sent with new past
    instants fires on every request; the scheduler keeps the newest ``unread_max`` unread
    notifications of each user it notifies and deletes the older ones, in its transaction.
    Read notifications and other users' are left alone."""
    past = [NOW - timedelta(minutes=m) for m in range(10, 0, -1)]  # oldest first
    bobs = await create(committed_client, bob, reminders=[{"at": iso(t)} for t in past[:4]])
    read = await create(committed_client, alice, reminders=[{"at": iso(NOW - timedelta(days=1))}])
    assert await fire_due(committed_database, now=NOW, batch=10) == 2
    [earlier] = [n for n in await notifications(committed_database) if n.task_id == read["id"]]
    response = await committed_client.post(
        f"/api/notifications/{earlier.id}/read", headers=alice.headers
    )
    assert response.status_code == 200, response.text
    bob_before = [n for n in await notifications(committed_database) if n.user_id == bob.sub]

    task = await create(committed_client, alice, reminders=[{"at": iso(t)} for t in past[:5]])
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
    assert await unread_remind_ats(committed_client, alice) == past[2:5]
    # The same task's next list of past instants: again only the newest three stay unread.
    patched = await committed_client.patch(
        f"/api/tasks/{task['id']}",
        json={"reminders": [{"at": iso(t)} for t in past[5:]]},
        headers=alice.headers,
    )
    assert patched.status_code == 200, patched.text
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
    assert await unread_remind_ats(committed_client, alice) == past[7:]
    alices = [n for n in await notifications(committed_database) if n.user_id == alice.sub]
    assert len(alices) == 4
    assert alices[0].id == earlier.id  # the read one: not counted, and kept
    # Bob's four unread, over alice's bound, were not this round's to bound.
    assert [n for n in await notifications(committed_database) if n.user_id == bob.sub] == (
        bob_before
    )
    assert len(bob_before) == 4
    assert all(n.task_id == bobs["id"] for n in bob_before)


async def test_read_notifications_newer_than_the_unread_ones_do_not_count_toward_the_bound(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    """The bound counts unread notifications only: read ones newer than the unread (the
    user read today's, not last week's) must not push older unread ones out."""
    past = [NOW - timedelta(minutes=m) for m in range(10, 0, -1)]  # oldest first
    await create(committed_client, alice, reminders=[{"at": iso(t)} for t in past[:2]])
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
    newer = await create(committed_client, alice, reminders=[{"at": iso(t)} for t in past[2:5]])
    assert await fire_due(committed_database, now=NOW, batch=10) == 1
    for n in await notifications(committed_database):
        if n.task_id == newer["id"]:
            read = await committed_client.post(
                f"/api/notifications/{n.id}/read", headers=alice.headers
            )
            assert read.status_code == 200, read.text

    await create(committed_client, alice, reminders=[{"at": iso(past[5])}])
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1

    # Three unread, within the bound: nothing deleted, read or unread.
    assert await unread_remind_ats(committed_client, alice) == [past[0], past[1], past[5]]
    assert len(await notifications(committed_database)) == 6


async def test_the_bound_skips_an_unread_notification_another_transaction_has_locked(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    """A task's deletion locks its notifications (the cascade) before it waits for the
    user's outbox lock, which a round holds while it bounds the unread: the round skips such
    a row instead of waiting for it, and a later round deletes it if it is still unread."""
    past = [NOW - timedelta(minutes=m) for m in range(10, 0, -1)]
    await create(committed_client, alice, reminders=[{"at": iso(t)} for t in past[:3]])
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
    oldest = (await notifications(committed_database))[0]
    async with committed_database.engine.connect() as holder:
        await holder.execute(
            text("SELECT id FROM todo.notifications WHERE id = :id FOR UPDATE"), {"id": oldest.id}
        )
        await create(committed_client, alice, reminders=[{"at": iso(t)} for t in past[3:5]])
        async with asyncio.timeout(10):
            assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
        ids = [n.id for n in await notifications(committed_database)]
        assert len(ids) == 4
        assert ids[0] == oldest.id  # kept: the next oldest went in its place
        await holder.rollback()
    await create(committed_client, alice, reminders=[{"at": iso(past[5])}])
    assert await fire_due(committed_database, now=NOW, batch=10, unread_max=3) == 1
    assert await unread_remind_ats(committed_client, alice) == past[3:6]


def test_unread_notifications_are_bounded_at_1000_per_user_by_default() -> None:
    assert TodoSettings(_env_file=None).notifications_unread_max == 1000  # type: ignore[call-arg]


@pytest.fixture
def worker_settings(todo_settings: TodoSettings, redis_url: str) -> TodoSettings:
    return todo_settings.model_copy(
        update={
            "events_redis_url": redis_url,
            "events_idle_seconds": 0.05,
            "reminders_poll_seconds": 0.1,
        }
    )


@pytest.fixture
async def stream_entries(redis_url: str) -> AsyncIterator[Any]:
    redis = redis_client(redis_url)

    async def read() -> list[dict[str, Any]]:
        entries = await redis.xrange(TASKS_STREAM)
        return [json.loads(fields[b"event"]) for _, fields in entries]

    yield read
    await redis.aclose()


async def test_a_scheduler_stopped_before_the_due_time_fires_it_once_after_its_restart(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    worker_settings: TodoSettings,
    stream_entries: Any,
    alice: User,
) -> None:
    # Time to create the task and start and stop a worker before it, on a loaded machine too.
    due = datetime.now(UTC) + timedelta(seconds=4)
    task = await create(committed_client, alice, reminders=[{"at": iso(due)}])

    async with serve(create_worker(worker_settings, db=committed_database, consumer="w1")):
        await asyncio.sleep(0.3)
    assert await notifications(committed_database) == []  # stopped before it was due
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)
    assert await notifications(committed_database) == []  # nothing runs while stopped

    async with serve(create_worker(worker_settings, db=committed_database, consumer="w1")):

        async def fired() -> bool:
            return len(await notifications(committed_database)) == 1

        await eventually(fired)

        async def published() -> bool:
            return any(e["type"] == REMINDER_DUE for e in await stream_entries())

        await eventually(published)
        await asyncio.sleep(0.5)  # several more rounds: still once
    [notification] = await notifications(committed_database)
    assert notification.task_id == task["id"]
    [created_at] = (
        await query(
            committed_database,
            "SELECT created_at FROM todo.notifications WHERE id = :id",
            id=notification.id,
        )
    )[0]
    assert created_at > due  # late, but not lost
    [entry] = [e for e in await stream_entries() if e["type"] == REMINDER_DUE]
    assert entry["key"] == alice.sub
    assert entry["data"]["notification_id"] == notification.id


async def test_the_worker_fires_a_reminder_within_a_few_seconds_of_its_time(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    worker_settings: TodoSettings,
    alice: User,
) -> None:
    async with serve(create_worker(worker_settings, db=committed_database, consumer="w1")):
        due = datetime.now(UTC) + timedelta(seconds=0.5)
        await create(committed_client, alice, reminders=[{"at": iso(due)}])
        started = time.monotonic()

        async def fired() -> bool:
            return len(await notifications(committed_database)) == 1

        await eventually(fired, seconds=10)
        assert time.monotonic() - started < 5
