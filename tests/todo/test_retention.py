"""Retention in the todo worker: notifications read long ago are deleted in bounded batches
(unread ones stay whatever their age), and so are the ids of users-stream events applied
longer ago than the processed-events retention and expired idempotency keys; the loops doing
it run every few minutes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from shared.events import forget_processed
from shared.purge import processed_retention_loop
from shared.settings import ServiceSettings
from shared.worker import forget_expired, periodic_loop
from tests.todo.conftest import NOW, User, create
from todo_service.events import PURGE
from todo_service.models import PROCESSED_EVENTS
from todo_service.notifications import forget_read
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings


async def notify(client: httpx.AsyncClient, db: Database, user: User, count: int) -> list[int]:
    """``count`` new notifications of ``user``; their ids, oldest first."""
    for n in range(count):
        await create(
            client,
            user,
            title=f"n{n}",
            due_at=(NOW + timedelta(minutes=5)).isoformat(),
            reminders=[{"before_due_minutes": 5}],
        )
        assert await fire_due(db, now=NOW, batch=10) == 1
    listed = (await client.get("/api/notifications", headers=user.headers)).json()
    return sorted(n["id"] for n in listed)


async def stored(db: Database, table: str, column: str) -> list[Any]:
    """The values of ``column`` in the whole ``table``, in order."""
    row = await db.fetch_row(
        f"SELECT coalesce(array_agg({column} ORDER BY {column}), '{{}}') FROM {table}"  # noqa: S608
    )
    assert row is not None
    return list(row[0])


async def remaining(db: Database) -> list[int]:
    return await stored(db, "todo.notifications", "id")


async def test_notifications_read_before_the_bound_are_deleted_in_batches(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    db = committed_database
    old_a, old_b, unread = await notify(committed_client, db, alice, 3)
    (bobs,) = await notify(committed_client, db, bob, 1)
    for user, notification in ((alice, old_a), (alice, old_b), (bob, bobs)):
        response = await committed_client.post(
            f"/api/notifications/{notification}/read", headers=user.headers
        )
        assert response.status_code == 200
    # Read at NOW: not yet older than a bound at NOW.
    assert await forget_read(db, before=NOW, batch=10) == 0
    assert await remaining(db) == sorted([old_a, old_b, unread, bobs])
    # Past the bound: at most a batch per statement, oldest first; unread ones stay.
    later = NOW + timedelta(seconds=1)
    assert await forget_read(db, before=later, batch=2) == 2
    assert await remaining(db) == sorted([unread, bobs])
    assert await forget_read(db, before=later, batch=2) == 1
    assert await forget_read(db, before=later, batch=2) == 0
    assert await remaining(db) == [unread]
    listed = (await committed_client.get("/api/notifications", headers=alice.headers)).json()
    assert [n["id"] for n in listed] == [unread]


async def test_an_unread_notification_is_kept_whatever_its_age(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    (unread,) = await notify(committed_client, committed_database, alice, 1)
    far = NOW + timedelta(days=3650)
    assert await forget_read(committed_database, before=far, batch=100) == 0
    assert await remaining(committed_database) == [unread]


async def _applied(db: Database, event_id: str, days_ago: int) -> None:
    await db.fetch_row(
        "INSERT INTO todo.processed_events (event_id, processed_at) "
        "VALUES ($1, now() - make_interval(days => $2))",
        event_id,
        days_ago,
        write=True,
    )


async def _applied_ids(db: Database) -> list[str]:
    return await stored(db, "todo.processed_events", "event_id")


KEYS = "todo.idempotency_keys"


async def test_expired_idempotency_keys_are_forgotten_oldest_first_in_batches(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    db = committed_database
    keyed = []
    for user, key in ((alice, "first"), (bob, "second"), (alice, "third")):
        response = await committed_client.post(
            "/api/tasks", json={"title": key}, headers={**user.headers, "Idempotency-Key": key}
        )
        assert response.status_code == 201
        keyed.append(key)
        clock.advance(minutes=1)
    # A key lives a day: the first is not expired a moment before, and is at its expiry.
    day = timedelta(hours=24)
    assert await forget_expired(db, KEYS, now=NOW + day - timedelta(seconds=1), batch=10) == 0
    # At the second's expiry: at most a batch per statement, oldest first.
    past_two = NOW + day + timedelta(minutes=1)
    assert await forget_expired(db, KEYS, now=past_two, batch=1) == 1
    assert await stored(db, "todo.idempotency_keys", "key") == ["second", "third"]
    assert await forget_expired(db, KEYS, now=past_two, batch=1) == 1
    assert await forget_expired(db, KEYS, now=past_two, batch=1) == 0
    assert await stored(db, "todo.idempotency_keys", "key") == ["third"]
    # The live key still replays its task.
    again = await committed_client.post(
        "/api/tasks", json={"title": "third"}, headers={**alice.headers, "Idempotency-Key": "third"}
    )
    assert again.status_code == 201
    assert await stored(db, "todo.idempotency_keys", "key") == ["third"]


async def test_applied_event_ids_older_than_the_retention_are_forgotten_in_batches(
    committed_database: Database,
) -> None:
    db = committed_database
    for event_id, days_ago in (("1-0", 45), ("2-0", 31), ("3-0", 29), ("4-0", 0)):
        await _applied(db, event_id, days_ago)
    keep = 30 * 24 * 3600.0
    assert await forget_processed(db, PROCESSED_EVENTS, keep_seconds=keep, batch=1) == 1
    assert await forget_processed(db, PROCESSED_EVENTS, keep_seconds=keep, batch=1) == 1
    assert await forget_processed(db, PROCESSED_EVENTS, keep_seconds=keep, batch=1) == 0
    assert await _applied_ids(db) == ["3-0", "4-0"]


async def test_the_processed_events_loop_uses_the_settings_retention(
    committed_database: Database, todo_settings: TodoSettings
) -> None:
    await _applied(committed_database, "1-0", 3)
    await _applied(committed_database, "2-0", 1)
    settings = todo_settings.model_copy(update={"events_processed_retention_seconds": 2 * 86400})
    loop = processed_retention_loop(PURGE, settings, committed_database)
    assert await loop.step() == 1
    assert await loop.step() == 0
    assert await _applied_ids(committed_database) == ["2-0"]


def test_the_processed_events_retention_cannot_be_shorter_than_a_day() -> None:
    with pytest.raises(ValueError, match="events_processed_retention_seconds"):
        ServiceSettings(_env_file=None, events_processed_retention_seconds=3600)  # type: ignore[call-arg]
    assert ServiceSettings(_env_file=None).events_processed_retention_seconds == 30 * 86400  # type: ignore[call-arg]
    assert TodoSettings(_env_file=None).notifications_read_retention_days == 30  # type: ignore[call-arg]


async def test_a_periodic_loop_catches_up_one_batch_a_pause_then_waits_a_period() -> None:
    work = [2, 1, 0, 5]
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        return work.pop(0)

    loop = periodic_loop("test", step, every_seconds=0.6, pause_seconds=0.1)
    assert await loop.step() == 2
    assert await loop.step() == 0  # a batch found work: the next waits for the pause
    assert calls == 1
    for expected in (1, 0):
        await asyncio.sleep(0.15)
        assert await loop.step() == expected
    assert calls == 3
    await asyncio.sleep(0.15)
    assert await loop.step() == 0  # nothing found: the next waits for the period
    assert calls == 3
    await asyncio.sleep(0.5)
    assert await loop.step() == 5
    assert calls == 4


async def test_a_failing_periodic_step_is_retried_next_period_and_the_loop_still_beats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[int | Exception] = [RuntimeError("permission denied for table"), 3]
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    loop = periodic_loop("retention-test", step, every_seconds=0.2)
    assert await loop.step() == 0  # the round ends normally, so the loop's heartbeat beats
    assert "retention-test: round failed" in caplog.text
    assert await loop.step() == 0  # not retried before the next period
    assert calls == 1
    await asyncio.sleep(0.25)
    assert await loop.step() == 3
    assert calls == 2
