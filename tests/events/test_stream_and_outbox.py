"""The event wire and the outbox, on a real Redis and the real ``auth.outbox`` table.

Publisher and consumer group (``shared.events``): every entry reaches the group once, stays
pending until handled, is replayed to a restarted consumer, and a malformed entry cannot
stop the group. The dispatcher (``shared.outbox``): id order, rows marked sent, a failed
publish resumes at the failed row, two dispatchers never publish a row concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import OUTBOX
from shared.db import Database, connect_target, engine_for
from shared.events import (
    DEAD_LETTER_SUFFIX,
    Event,
    MalformedEvent,
    RedisStreamPublisher,
    RedisStreamSubscription,
    Room,
    handle_once,
    redis_client,
)
from shared.outbox import OutboxDispatcher, add_event
from todo_service.events import PURGE as TODO_PURGE

STREAM = "test.events"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)
    yield client
    await client.aclose()


def subscription(redis: Redis, consumer: str = "a", **kwargs: int) -> RedisStreamSubscription:
    return RedisStreamSubscription(
        redis, stream=STREAM, group="g", consumer=consumer, block_ms=50, **kwargs
    )


def event(event_id: str, key: str = "u1", kind: str = "thing.happened") -> Event:
    return Event(event_id, kind, 1, key, "2026-12-06T00:00:00Z", {"n": event_id})


async def test_an_event_published_before_the_group_exists_reaches_it(redis: Redis) -> None:
    publisher = RedisStreamPublisher(redis, maxlen=1000)
    await publisher.publish(STREAM, "1", event("1").to_json())
    seen: list[Event] = []

    async def handle(e: Event) -> None:
        seen.append(e)

    assert await subscription(redis).poll(handle) == 1
    assert seen == [event("1")]
    assert await subscription(redis).poll(handle) == 0


async def test_an_entry_whose_handler_failed_is_replayed_to_the_restarted_consumer(
    redis: Redis,
) -> None:
    publisher = RedisStreamPublisher(redis, maxlen=1000)
    for n in ("1", "2"):
        await publisher.publish(STREAM, n, event(n).to_json())

    async def crash(_: Event) -> None:
        raise RuntimeError("the consumer died here")

    with pytest.raises(RuntimeError):
        await subscription(redis).poll(crash)
    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    # The same consumer name (a restarted replica): its pending entries first, in order.
    while await subscription(redis).poll(handle):
        pass
    assert seen == ["1", "2"]
    pending = await redis.xpending(STREAM, "g")
    assert pending["pending"] == 0


async def test_another_consumer_takes_over_entries_left_pending_too_long(redis: Redis) -> None:
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "1", event("1").to_json())

    async def crash(_: Event) -> None:
        raise RuntimeError("died")

    with pytest.raises(RuntimeError):
        await subscription(redis, "a").poll(crash)
    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    await asyncio.sleep(0.2)
    assert await subscription(redis, "b", claim_idle_ms=100).poll(handle) == 1
    assert seen == ["1"]


async def test_an_entry_its_consumer_is_still_handling_is_not_taken_over_nor_dead_lettered(
    redis: Redis, committed_database: Database, migrated_url: str
) -> None:
    """Two replicas of a worker: replica A applies an event for longer than the claim's idle
    time (a large account's purge may run minutes: each statement is allowed 10), holding
    the event's id uncommitted. Replica B must not take the entry over meanwhile: there,
    ``handle_once`` waits on A's id until the role's statement timeout (30 s in production,
    0.3 s here), which is an ordinary failure, so a few rounds dead-lettered and acknowledged
    the entry while A still ran; when A then stopped without committing (a rolling deploy,
    a purge statement past its bound), the event was lost to the group and the deleted
    account's rows stayed."""
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "1", event("1").to_json())
    table = TODO_PURGE.processed_events
    running, stop = asyncio.Event(), asyncio.Event()

    async def slow_then_stopped(_: AsyncSession, __: Event) -> None:
        running.set()
        await stop.wait()
        raise RuntimeError("replica stopped mid-purge")

    async def handle_a(e: Event) -> None:
        await handle_once(committed_database, table, e, slow_then_stopped)

    target = connect_target(migrated_url)
    target.connect_args["server_settings"] = {"statement_timeout": "300"}
    engine_b = engine_for(target, pool_size=2)
    seen_by_b: list[str] = []

    async def handle_b(e: Event) -> None:
        seen_by_b.append(e.id)
        await handle_once(Database(engine_b), table, e, lambda *_: asyncio.sleep(0))

    a = subscription(redis, "a", claim_idle_ms=200, max_deliveries=3)
    b = subscription(redis, "b", claim_idle_ms=200, max_deliveries=3)
    replica_a = asyncio.create_task(a.poll(handle_a))
    try:
        await running.wait()
        deadline = asyncio.get_running_loop().time() + 2.0
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(DBAPIError):  # B's wait on A's id, timed out
                await b.poll(handle_b)
            await asyncio.sleep(0.05)
        assert seen_by_b == []
        stop.set()
        with pytest.raises(RuntimeError, match="mid-purge"):
            await replica_a
        assert await redis.xlen(STREAM + DEAD_LETTER_SUFFIX) == 0
        # Still pending: the event is applied on the next delivery, not lost.
        applied: list[str] = []

        async def apply(_: AsyncSession, e: Event) -> None:
            applied.append(e.id)

        while await a.poll(lambda e: handle_once(committed_database, table, e, apply)):
            pass
        assert applied == ["1"]
        assert (await redis.xpending(STREAM, "g"))["pending"] == 0
    finally:
        stop.set()
        await asyncio.gather(replica_a, return_exceptions=True)
        await engine_b.dispose()


async def test_the_entries_of_a_batch_waiting_behind_a_slow_handler_are_not_taken_over(
    redis: Redis,
) -> None:
    """A poll reads a batch and handles its entries one after another: the ones still waiting
    behind a slow handler are this consumer's too, and another replica taking them over
    meanwhile would handle them while this one still goes on to handle them itself."""
    publisher = RedisStreamPublisher(redis, maxlen=1000)
    for n in ("1", "2"):
        await publisher.publish(STREAM, n, event(n).to_json())
    running, stop = asyncio.Event(), asyncio.Event()
    seen_by_a: list[str] = []

    async def slow_first(e: Event) -> None:
        seen_by_a.append(e.id)
        if e.id == "1":
            running.set()
            await stop.wait()

    seen_by_b: list[str] = []

    async def handle_b(e: Event) -> None:
        seen_by_b.append(e.id)

    replica_a = asyncio.create_task(subscription(redis, "a", claim_idle_ms=200).poll(slow_first))
    try:
        await running.wait()
        b = subscription(redis, "b", claim_idle_ms=200)
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:
            await b.poll(handle_b)
            await asyncio.sleep(0.05)
        stop.set()
        assert await replica_a == 2
    finally:
        stop.set()
        await asyncio.gather(replica_a, return_exceptions=True)
    assert seen_by_b == []
    assert seen_by_a == ["1", "2"]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


# Valid JSON, but "\ud800" decodes to no character UTF-8 can carry: the event could not be
# written again (dead letters, webhook payloads), so it is dropped where it is read.
_LONE_SURROGATE = (
    b'{"id":"1","type":"t","version":1,"key":"u1","occurred_at":"x","data":{"t":"\\ud800"}}'
)


@pytest.mark.parametrize(
    "malformed",
    [[b"{not json", b'{"id": "y"}'], [_LONE_SURROGATE]],
    ids=["not an event", "a lone surrogate"],
)
async def test_a_malformed_entry_is_acknowledged_and_the_next_one_handled(
    redis: Redis, malformed: list[bytes]
) -> None:
    for n, body in enumerate(malformed):
        await redis.xadd(STREAM, {"id": f"m{n}", "event": body})
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "2", event("2").to_json())
    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    while await subscription(redis).poll(handle):
        pass
    assert seen == ["2"]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_an_entry_whose_handler_keeps_failing_goes_to_the_dead_letter_stream(
    redis: Redis,
) -> None:
    publisher = RedisStreamPublisher(redis, maxlen=1000)
    for n in ("1", "2"):
        await publisher.publish(STREAM, n, event(n).to_json())
    seen: list[str] = []

    async def handle(e: Event) -> None:
        if e.id == "1":
            raise ValueError("this event cannot be applied")
        seen.append(e.id)

    consumer = subscription(redis, max_deliveries=3)
    for _ in range(2):  # deliveries 1 and 2 fail and leave the entry pending
        with pytest.raises(ValueError, match="cannot be applied"):
            await consumer.poll(handle)
    assert seen == []
    while await consumer.poll(handle):  # the third failure dead-letters it; "2" follows
        pass
    assert seen == ["2"]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0
    [(_, fields)] = await redis.xrange(STREAM + DEAD_LETTER_SUFFIX)
    assert fields[b"id"] == b"1"
    assert fields[b"group"] == b"g"
    assert fields[b"error"] == b"ValueError"
    assert Event.from_json(fields[b"event"]) == event("1")


@pytest.mark.parametrize(
    "outage",
    [ConnectionRefusedError("database down"), RedisConnectionError("broker down")],
)
async def test_an_outage_is_retried_without_end_and_never_dead_lettered(
    redis: Redis, outage: Exception
) -> None:
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "1", event("1").to_json())

    async def down(_: Event) -> None:
        raise outage

    consumer = subscription(redis, max_deliveries=2)
    for _ in range(4):
        with pytest.raises(type(outage)):
            await consumer.poll(down)
    assert await redis.xlen(STREAM + DEAD_LETTER_SUFFIX) == 0
    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    await consumer.poll(handle)
    assert seen == ["1"]


def losing_a_race(engine: AsyncEngine, sqlstate: str) -> Callable[[Event], Awaitable[None]]:
    """A handler whose transaction the server aborts with ``sqlstate`` (40P01: a deadlock,
    40001: a serialization failure), PostgreSQL's own error through the driver; the real
    deadlock of a purge is in tests/todo/test_account_deletion.py."""
    abort = text(f"DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '{sqlstate}'; END $$")

    async def handle(_: Event) -> None:
        async with engine.connect() as connection:
            await connection.execute(abort)

    return handle


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_a_deadlock_or_serialization_failure_is_retried_and_never_dead_lettered(
    redis: Redis, engine: AsyncEngine, sqlstate: str
) -> None:
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "1", event("1").to_json())
    consumer = subscription(redis, max_deliveries=1)
    for _ in range(3):
        with pytest.raises(DBAPIError, match="lost a race"):
            await consumer.poll(losing_a_race(engine, sqlstate))
    assert await redis.xlen(STREAM + DEAD_LETTER_SUFFIX) == 0
    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    await consumer.poll(handle)
    assert seen == ["1"]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_transient_failures_do_not_count_toward_dead_lettering(
    redis: Redis, engine: AsyncEngine
) -> None:
    await RedisStreamPublisher(redis, maxlen=1000).publish(STREAM, "1", event("1").to_json())

    async def down(_: Event) -> None:
        raise ConnectionRefusedError("database down")

    async def broken(_: Event) -> None:
        raise ValueError("this event cannot be applied")

    consumer = subscription(redis, max_deliveries=2)
    for handler in (down, losing_a_race(engine, "40P01"), down):
        with pytest.raises(Exception):  # noqa: B017, PT011 - an outage, then a deadlock
            await consumer.poll(handler)
    # Four deliveries so far, but only this one counts: the entry is still retried.
    with pytest.raises(ValueError, match="cannot be applied"):
        await consumer.poll(broken)
    assert await redis.xlen(STREAM + DEAD_LETTER_SUFFIX) == 0
    # The second that counts reaches max_deliveries.
    await consumer.poll(broken)
    assert await redis.xlen(STREAM + DEAD_LETTER_SUFFIX) == 1
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"id": "", "type": "t", "version": 1, "key": "k", "occurred_at": "x", "data": {}}',
        b'{"id": "1", "type": "t", "version": true, "key": "k", "occurred_at": "x", "data": {}}',
        b'{"id": "1", "type": "t", "version": 1, "key": "k", "occurred_at": "x", "data": []}',
        b'{"id": "' + b"9" * 65 + b'", "type": "t", "version": 1, "key": "k",'
        b' "occurred_at": "x", "data": {}}',
        # A well-formed event, but over the payload bound (64 KiB): refused for its size alone.
        b'{"id": "1", "type": "t", "version": 1, "key": "k", "occurred_at": "x",'
        b' "data": {"pad": "' + b"x" * 70_000 + b'"}}',
    ],
)
def test_an_event_outside_the_envelope_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedEvent):
        Event.from_json(raw)


# --- the outbox ---------------------------------------------------------------------------


class Recorder:
    """A publisher that records, and fails on a chosen event id once."""

    def __init__(self, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.published: list[tuple[str, str]] = []
        self.fail_on = fail_on
        self.delay = delay

    async def publish(self, stream: str, event_id: str, payload: bytes) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if event_id == self.fail_on:
            self.fail_on = None
            raise ConnectionError("broker went away")
        self.published.append((event_id, Event.from_json(payload).key))

    async def room(self, stream: str) -> Room:
        return Room(10_000)

    async def ping(self) -> None:
        return None


async def write_events(db: Database, keys: list[str]) -> list[int]:
    ids = []
    for key in keys:
        async with db.unit_of_work() as session:
            ids.append(
                await add_event(
                    session, OUTBOX, stream=STREAM, key=key, type="t", version=1, data={}
                )
            )
    return ids


async def unsent(db: Database) -> int:
    async with db.unit_of_work() as session:
        connection = await session.connection()
        query = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.sent_at.is_(None))
        return int((await connection.execute(query)).scalar_one())


def dispatcher(db: Database, publisher: Recorder, batch: int = 100) -> OutboxDispatcher:
    return OutboxDispatcher(db, OUTBOX, publisher, batch=batch, retention_seconds=3600)


async def test_the_dispatcher_publishes_in_id_order_and_marks_rows_sent(
    committed_database: Database,
) -> None:
    ids = await write_events(committed_database, ["a", "b", "a", "c"])
    recorder = Recorder()
    assert await dispatcher(committed_database, recorder).dispatch_once() == 4
    assert [int(i) for i, _ in recorder.published] == ids
    assert await unsent(committed_database) == 0
    assert await dispatcher(committed_database, recorder).dispatch_once() == 0


async def test_a_failed_publish_keeps_the_rows_before_it_sent_and_resumes_at_it(
    committed_database: Database,
) -> None:
    ids = await write_events(committed_database, ["a", "b", "c"])
    recorder = Recorder(fail_on=str(ids[1]))
    with pytest.raises(ConnectionError):
        await dispatcher(committed_database, recorder).dispatch_once()
    assert await unsent(committed_database) == 2
    assert await dispatcher(committed_database, recorder).dispatch_once() == 2
    assert [int(i) for i, _ in recorder.published] == ids


async def test_an_event_redis_refuses_for_lack_of_memory_stays_in_the_outbox_until_it_fits(
    committed_database: Database, redis: Redis
) -> None:
    # The shipped Redis's policy (deploy/local_secrets.py): full, it refuses writes.
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", (await redis.info("memory"))["used_memory"])
    ids = await write_events(committed_database, ["a", "b"])
    outbox = OutboxDispatcher(
        committed_database,
        OUTBOX,
        RedisStreamPublisher(redis, maxlen=1000),
        batch=100,
        retention_seconds=3600,
    )
    with pytest.raises(ResponseError, match="maxmemory"):
        await outbox.dispatch_once()
    assert await unsent(committed_database) == 2
    assert await redis.xlen(STREAM) == 0

    await redis.config_set("maxmemory", 0)
    assert await outbox.dispatch_once() == 2
    entries = await redis.xrange(STREAM)
    assert [int(fields[b"id"]) for _, fields in entries] == ids


async def test_a_group_that_falls_behind_holds_the_stream_and_loses_no_event(
    committed_database: Database, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream of at most 5 entries and a group that reads none: the sixth event waits in
    the outbox, where trimming by length would have dropped the group's first one."""
    group = subscription(redis)
    await group.ensure_group()
    ids = await write_events(committed_database, [f"k{n}" for n in range(8)])
    outbox = OutboxDispatcher(
        committed_database,
        OUTBOX,
        RedisStreamPublisher(redis, maxlen=5),
        batch=100,
        retention_seconds=3600,
    )
    with caplog.at_level("WARNING", logger="shared.outbox"):
        assert await outbox.dispatch_once() == 5
        assert await outbox.dispatch_once() == 0
    assert await unsent(committed_database) == 3
    full = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert full == [f"stream {STREAM} is full: consumer group g has not read or acknowledged "
                    "its oldest entries; events wait in the outbox"]  # fmt: skip

    seen: list[str] = []

    async def handle(e: Event) -> None:
        seen.append(e.id)

    assert await group.poll(handle) == 5
    assert await outbox.dispatch_once() == 3
    assert await group.poll(handle) == 3
    assert [int(i) for i in seen] == ids


async def test_entries_a_group_was_handed_but_has_not_acknowledged_are_never_trimmed(
    redis: Redis,
) -> None:
    publisher = RedisStreamPublisher(redis, maxlen=4)
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    for n in range(4):
        await publisher.publish(STREAM, str(n), event(str(n)).to_json())
    handed = await redis.xreadgroup("g", "c", {STREAM: ">"}, count=2)
    unacknowledged = [entry_id for entry_id, _ in handed[0][1]]
    acknowledged = await redis.xreadgroup("g", "c", {STREAM: ">"}, count=2)
    await redis.xack(STREAM, "g", *(entry_id for entry_id, _ in acknowledged[0][1]))

    # The group was handed all four but acknowledged only the last two: all four stay.
    assert await publisher.room(STREAM) == Room(0, held_by="g")
    assert [entry_id for entry_id, _ in await redis.xrange(STREAM)][:2] == unacknowledged

    await redis.xack(STREAM, "g", *unacknowledged)
    assert await publisher.room(STREAM) == Room(4 - 1)  # the last one handed out stays
    assert await redis.xlen(STREAM) == 1


@pytest.mark.parametrize("meanwhile", ["acknowledged", "destroyed"])
async def test_a_group_that_changes_while_room_is_counted_is_read_as_it_is_now(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """Between XINFO GROUPS (pending entries) and XPENDING (the oldest of them) the group's
    consumer may acknowledge its last one, or an operator destroy the group: it then holds
    nothing, and the count goes on rather than failing the dispatcher's round."""
    publisher = RedisStreamPublisher(redis, maxlen=2)
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    for n in range(2):
        await publisher.publish(STREAM, str(n), event(str(n)).to_json())
    handed = await redis.xreadgroup("g", "c", {STREAM: ">"}, count=2)
    groups_as_read = redis.xinfo_groups

    async def then_changed(stream: str) -> list[dict[str, object]]:
        groups = await groups_as_read(stream)
        if meanwhile == "acknowledged":
            await redis.xack(STREAM, "g", *(entry_id for entry_id, _ in handed[0][1]))
        else:
            await redis.xgroup_destroy(STREAM, "g")
        return groups

    monkeypatch.setattr(redis, "xinfo_groups", then_changed)
    # Acknowledged: the last entry handed out stays; destroyed: nobody holds the stream.
    expected = Room(2 - 1) if meanwhile == "acknowledged" else Room(2)
    assert await publisher.room(STREAM) == expected


async def test_a_rolled_back_event_is_never_published(committed_database: Database) -> None:
    async def failing_change() -> None:
        async with committed_database.unit_of_work() as session:
            await add_event(session, OUTBOX, stream=STREAM, key="a", type="t", version=1, data={})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    recorder = Recorder()
    assert await dispatcher(committed_database, recorder).dispatch_once() == 0
    assert recorder.published == []


async def test_two_dispatchers_never_publish_a_row_twice_at_once(
    committed_database: Database,
) -> None:
    await write_events(committed_database, [f"k{n % 3}" for n in range(30)])
    slow = Recorder(delay=0.01)
    first, second = (
        dispatcher(committed_database, slow, 10),
        dispatcher(committed_database, slow, 10),
    )
    rounds = await asyncio.gather(*(d.dispatch_once() for d in (first, second, first, second)))
    while await first.dispatch_once() or await second.dispatch_once():
        pass
    assert 0 in rounds  # a dispatcher found the lock taken and stood by
    published = [int(i) for i, _ in slow.published]
    assert published == sorted(published)
    assert len(published) == len(set(published)) == 30


async def test_events_of_one_key_commit_in_id_order(committed_database: Database) -> None:
    """The key lock: a second transaction of the key waits for the first to commit, so the
    later commit always has the larger id."""
    key = str(uuid.uuid4())
    first_inserted = asyncio.Event()
    order: list[tuple[str, int]] = []

    async def first() -> None:
        async with committed_database.unit_of_work() as session:
            row = await add_event(
                session, OUTBOX, stream=STREAM, key=key, type="t", version=1, data={}
            )
            first_inserted.set()
            await asyncio.sleep(0.3)
            order.append(("first", row))

    async def second() -> None:
        await first_inserted.wait()
        async with committed_database.unit_of_work() as session:
            row = await add_event(
                session, OUTBOX, stream=STREAM, key=key, type="t", version=1, data={}
            )
            order.append(("second", row))

    await asyncio.gather(first(), second())
    assert [name for name, _ in order] == ["first", "second"]
    assert order[0][1] < order[1][1]


async def test_sent_rows_are_forgotten_after_the_retention(committed_database: Database) -> None:
    await write_events(committed_database, ["a", "b"])
    await OutboxDispatcher(
        committed_database, OUTBOX, Recorder(), batch=10, retention_seconds=0
    ).dispatch_once()
    await asyncio.sleep(0.01)
    await OutboxDispatcher(
        committed_database, OUTBOX, Recorder(), batch=10, retention_seconds=0
    ).dispatch_once()
    async with committed_database.unit_of_work() as session:
        connection = await session.connection()
        left = (await connection.execute(text("SELECT count(*) FROM auth.outbox"))).scalar_one()
    assert left == 0
