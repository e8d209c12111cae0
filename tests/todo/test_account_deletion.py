"""``user.deleted`` reaches the todo service: the worker purges the user's rows once, a
replayed or republished event changes nothing, and from then on the user's still-valid
access token is refused and no row of theirs can be stored (the token check, and the trigger
behind it for a write already past that check)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from shared.clock import FrozenClock
from shared.db import Database
from shared.events import (
    USERS_STREAM,
    Event,
    RedisStreamSubscription,
    handle_once,
    redis_client,
)
from shared.tombstones import bury
from tests.support.database import lock_waiters
from tests.support.errors import assert_error
from tests.support.events import eventually, publish, user_deleted
from tests.support.serving import serve
from tests.todo.conftest import NOW, User, create
from todo_service import events, service
from todo_service.models import (
    DELETED_SUBJECTS,
    IDEMPOTENCY_KEYS,
    NOTIFICATIONS,
    PROCESSED_EVENTS,
    TASK_COUNTS,
    TASKS,
)
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings
from todo_service.worker import create_app as create_worker


async def rows(db: Database, table: object, subject: str | None = None) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    if subject is not None:
        query = query.where(table.c.user_id == subject)  # type: ignore[attr-defined]
    async with db.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def user_rows(db: Database, subject: str) -> int:
    tables = (TASKS, TASK_COUNTS, IDEMPOTENCY_KEYS, NOTIFICATIONS)
    return sum([await rows(db, t, subject) for t in tables])


async def add_tasks(client: httpx.AsyncClient, user: User, n: int = 2) -> None:
    for i in range(n):
        headers = {**user.headers, "Idempotency-Key": f"k{i}"}
        response = await client.post("/api/tasks", json={"title": f"t{i}"}, headers=headers)
        assert response.status_code == 201, response.text


@pytest.fixture
def worker_settings(todo_settings: TodoSettings, redis_url: str) -> TodoSettings:
    return todo_settings.model_copy(
        update={"events_redis_url": redis_url, "events_idle_seconds": 0.05}
    )


@pytest.fixture
async def worker_started(
    worker_settings: TodoSettings, committed_database: Database
) -> AsyncIterator[None]:
    async with serve(create_worker(worker_settings, db=committed_database, consumer="w1")):
        yield


async def test_a_deleted_user_is_purged_and_their_token_refused_once_consumed(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    worker_settings: TodoSettings,
    redis_url: str,
    alice: User,
    bob: User,
) -> None:
    await add_tasks(committed_client, alice)
    await add_tasks(committed_client, bob)
    # Published while no worker runs: the group starts at the stream's beginning.
    await publish(redis_url, user_deleted(alice.sub, "41"))
    async with serve(create_worker(worker_settings, db=committed_database, consumer="w1")) as w:
        assert (await w.get("/healthz")).status_code == 200

        async def purged() -> bool:
            return await user_rows(committed_database, alice.sub) == 0

        await eventually(purged)
        ready = await w.get("/readyz")
        assert ready.status_code == 200, ready.text

    # The service learns of the burial from its notification, a moment after the commit.
    async def refused() -> bool:
        answer = await committed_client.get("/api/tasks", headers=alice.headers)
        return answer.status_code == 401

    await eventually(refused, seconds=5)
    listed = await committed_client.get("/api/tasks", headers=alice.headers)
    assert_error(listed, 401, "account_deleted")
    assert listed.headers["www-authenticate"] == "Bearer"
    created = await committed_client.post(
        "/api/tasks", json={"title": "back"}, headers=alice.headers
    )
    assert_error(created, 401, "account_deleted")
    assert await user_rows(committed_database, alice.sub) == 0
    # Bob is untouched.
    assert await rows(committed_database, TASKS, bob.sub) == 2
    assert (await committed_client.get("/api/tasks", headers=bob.headers)).status_code == 200


async def test_a_deletion_replayed_after_a_crash_or_published_twice_is_applied_once(
    committed_database: Database, redis_url: str, alice: User
) -> None:
    event = user_deleted(alice.sub, "42")
    await publish(redis_url, event)
    redis = redis_client(redis_url)
    applied: list[bool] = []

    def consumer() -> RedisStreamSubscription:
        return RedisStreamSubscription(
            redis, stream=USERS_STREAM, group=events.PURGE.group, consumer="w1", block_ms=50
        )

    async def apply_then_crash(e: Event) -> None:
        applied.append(
            await handle_once(committed_database, PROCESSED_EVENTS, e, events.PURGE.apply)
        )
        raise RuntimeError("the worker died before acknowledging")

    async def apply(e: Event) -> None:
        applied.append(
            await handle_once(committed_database, PROCESSED_EVENTS, e, events.PURGE.apply)
        )

    try:
        with pytest.raises(RuntimeError):
            await consumer().poll(apply_then_crash)
        # Restarted: the pending entry is replayed; then the dispatcher's duplicate arrives.
        await publish(redis_url, event)
        while await consumer().poll(apply):
            pass
    finally:
        await redis.aclose()
    assert applied == [True, False, False]
    assert await rows(committed_database, PROCESSED_EVENTS) == 1
    assert await rows(committed_database, DELETED_SUBJECTS) == 1


async def test_a_deletion_whose_user_id_is_not_its_key_purges_nothing(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    """An event is ordered, and produced, under its key: a ``user.deleted`` naming another
    user in its body than its key is not a deletion of either, and is ignored."""
    await add_tasks(committed_client, alice)
    await add_tasks(committed_client, bob)
    before = (
        await user_rows(committed_database, alice.sub),
        await user_rows(committed_database, bob.sub),
    )

    mismatched = replace(user_deleted(alice.sub, "47"), key=bob.sub)
    await events.PURGE.handle(committed_database, mismatched)

    after = (
        await user_rows(committed_database, alice.sub),
        await user_rows(committed_database, bob.sub),
    )
    assert after == before
    assert await rows(committed_database, DELETED_SUBJECTS) == 0
    listed = await committed_client.get("/api/tasks", headers=alice.headers)
    assert listed.status_code == 200, listed.text


async def test_a_write_already_past_the_token_check_is_refused_after_the_purge(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    # Alice was seen alive a moment ago: the token check may still say so for that moment.
    assert (await committed_client.get("/api/tasks", headers=alice.headers)).status_code == 200
    await events.PURGE.handle(committed_database, user_deleted(alice.sub, "43"))
    created = await committed_client.post(
        "/api/tasks", json={"title": "late"}, headers=alice.headers
    )
    assert_error(created, 401, "account_deleted")
    assert await user_rows(committed_database, alice.sub) == 0


async def test_a_write_in_flight_when_the_purge_starts_is_purged_with_the_rest(
    committed_database: Database, alice: User
) -> None:
    insert = text(
        "INSERT INTO todo.tasks (user_id, title, created_at, updated_at, version)"
        " VALUES (:user, 'in flight', now(), now(), 1)"
    )
    async with committed_database.engine.connect() as writer:
        transaction = await writer.begin()
        await writer.execute(insert, {"user": alice.sub})
        purge = asyncio.create_task(
            events.PURGE.handle(committed_database, user_deleted(alice.sub, "44"))
        )
        await asyncio.sleep(0.3)
        assert not purge.done()  # it waits for the write holding the subject's lock
        await transaction.commit()
    await asyncio.wait_for(purge, 10)
    assert await user_rows(committed_database, alice.sub) == 0
    # And a write after it is refused by the database itself.
    async with committed_database.engine.connect() as writer:
        with pytest.raises(DBAPIError) as refused:
            await writer.execute(insert, {"user": alice.sub})
    assert isinstance(refused.value.orig.__cause__, asyncpg.PostgresError)
    assert refused.value.orig.__cause__.sqlstate == "P0401"


async def test_a_deleted_users_notifications_are_purged_and_none_can_be_stored_again(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    created = await committed_client.post(
        "/api/tasks",
        json={"title": "t", "reminders": [{"at": "2026-03-15T11:00:00Z"}]},
        headers=alice.headers,
    )
    task_id = created.json()["id"]
    assert await fire_due(committed_database, now=NOW, batch=10) == 1
    assert await rows(committed_database, NOTIFICATIONS, alice.sub) == 1

    await events.PURGE.handle(committed_database, user_deleted(alice.sub, "45"))
    assert await user_rows(committed_database, alice.sub) == 0
    insert = text(
        "INSERT INTO todo.notifications (user_id, kind, task_id, task_title, remind_at, "
        "created_at) VALUES (:user, 'reminder', :task, 'late', now(), now())"
    )
    async with committed_database.engine.connect() as writer:
        with pytest.raises(DBAPIError) as refused:
            await writer.execute(insert, {"user": alice.sub, "task": task_id})
    assert refused.value.orig.__cause__.sqlstate == "P0401"


async def test_a_purge_outlasts_the_running_roles_statement_bound(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    """The running role cancels a statement after 30 s (shared/bootstrap.sql), yet a large
    account's deletion may take longer: here the session's bound is 300 ms and deleting the
    account's tasks takes 1 s."""
    await add_tasks(client, alice)
    async with database.unit_of_work() as session:
        connection = await session.connection()
        # All last until the test's transaction is rolled back; the bound comes last, so that
        # only what it is about runs under it.
        await connection.execute(
            text(
                "CREATE FUNCTION todo.slow_delete() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER slow_delete BEFORE DELETE ON todo.tasks "
                "FOR EACH STATEMENT EXECUTE FUNCTION todo.slow_delete()"
            )
        )
        await connection.execute(text("SET LOCAL statement_timeout = '300ms'"))
    count = "SELECT count(*) FROM todo.tasks WHERE user_id = $1"
    assert await database.fetch_row(count, alice.sub) == (2,)
    async with database.unit_of_work() as session:
        await events.PURGE.purge_user(session, alice.sub)
    assert await database.fetch_row(count, alice.sub) == (0,)


async def test_a_purge_and_a_completion_that_locked_the_tasks_then_inserts_both_finish(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    alice: User,
    clock: FrozenClock,
) -> None:
    """MCP ``complete_tasks`` locks up to 100 tasks, then a recurring one inserts its next
    occurrence; the purge buries the subject, then deletes the rows. Without one lock order
    (the subject's lock before the rows') each waits for the other, and PostgreSQL aborts
    the purge as a deadlock."""
    plain = await create(committed_client, alice, title="plain")
    daily = await create(committed_client, alice, title="daily", recurrence="daily")
    async with committed_database.unit_of_work() as session:
        await service.set_completed_many(
            session, alice.sub, task_ids=[plain["id"]], completed=True, clock=clock
        )
        purge = asyncio.create_task(
            events.PURGE.handle(committed_database, user_deleted(alice.sub, "46"))
        )

        async def purge_waits() -> bool:
            return await lock_waiters(committed_database) == 1

        await eventually(purge_waits, seconds=5)
        [completed] = await service.set_completed_many(
            session, alice.sub, task_ids=[daily["id"]], completed=True, clock=clock
        )
        assert completed.next_occurrence_id is not None  # inserted
    await asyncio.wait_for(purge, 10)
    assert await user_rows(committed_database, alice.sub) == 0


async def test_the_scheduler_passes_over_a_user_being_purged_without_waiting(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    """The scheduler locks due tasks of many users, then inserts their notifications: a user
    whose purge holds the subject's lock is left to the purge, not waited for (while the
    purge would wait for the scheduler's locks on that user's tasks)."""
    for user in (alice, bob):
        await create(committed_client, user, title="t", reminders=[{"at": "2026-03-15T11:00:00Z"}])
    async with committed_database.unit_of_work() as purging:
        await bury(purging, DELETED_SUBJECTS, alice.sub)
        assert await asyncio.wait_for(fire_due(committed_database, now=NOW, batch=10), 5) == 1
        await events.PURGE.purge_user(purging, alice.sub)
    assert await user_rows(committed_database, alice.sub) == 0
    assert await rows(committed_database, NOTIFICATIONS, bob.sub) == 1
