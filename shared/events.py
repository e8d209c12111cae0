"""Domain events between services: the envelope, a publisher, a consumer group, and
handling each event once.

The wire is a small interface (``Publisher``, ``Subscription``) with a Redis Streams
implementation; another broker (Kafka) implements the same two classes and nothing else
changes: the outbox (``shared.outbox``) publishes through ``Publisher`` only, and consumers
see ``Event`` values only. Delivery is at least once; a consumer drops a duplicate by the
event's id (``handle_once``). docs/events.md describes the envelope and every event type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, func, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, is_transaction_conflict
from shared.tasks import stop_tasks

logger = logging.getLogger(__name__)

# Bounds of what one event may carry and of one read from the stream.
MAX_PAYLOAD_BYTES = 64 * 1024
EVENT_ID_MAX = 64

# The auth service's users stream, and the event on it that every service holding
# user-owned rows acts on (shared/purge.py).
USERS_STREAM = "events.users"
USER_DELETED = "user.deleted"
# The todo service's stream: task changes and due reminders, keyed by user.
TASKS_STREAM = "events.tasks"


class MalformedEvent(ValueError):
    """An entry on a stream that is not an event of the platform's envelope."""


@dataclass(frozen=True)
class Event:
    """One event as it travels: ``id`` is the idempotency key (the producer's outbox row),
    ``key`` the subject its order is kept for (a user id), ``data`` the type's body."""

    id: str
    type: str
    version: int
    key: str
    occurred_at: str
    data: dict[str, Any]

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON: a character outside ASCII takes its 2-4 bytes, not a 6- or
        12-byte ``\\uXXXX`` escape, so the largest task event is a third as large on the
        stream (docs/events.md, "The envelope")."""
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "version": self.version,
                "key": self.key,
                "occurred_at": self.occurred_at,
                "data": self.data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Event:
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise MalformedEvent("event larger than the payload limit")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent("not JSON") from exc
        if not isinstance(body, dict):
            raise MalformedEvent("not a JSON object")
        fields = {
            "id": str,
            "type": str,
            "version": int,
            "key": str,
            "occurred_at": str,
            "data": dict,
        }
        for name, kind in fields.items():
            value = body.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise MalformedEvent(f"field {name!r} missing or not a {kind.__name__}")
        if not 0 < len(body["id"]) <= EVENT_ID_MAX:
            raise MalformedEvent("event id empty or too long")
        event = cls(**{name: body[name] for name in fields})
        try:
            # JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 can carry: such an
            # event could be neither dead-lettered nor stored, and would hold its group.
            event.to_json()
        except UnicodeEncodeError:
            raise MalformedEvent("a string that is not Unicode text") from None
        return event


# --- publishing -------------------------------------------------------------------------


class Publisher(Protocol):
    """Puts one event on a stream. Returns once the broker has it (or raises); publishing the
    same ``event_id`` twice is allowed and consumers drop the second."""

    async def room(self, stream: str) -> Room: ...

    async def publish(self, stream: str, event_id: str, payload: bytes) -> None: ...

    async def ping(self) -> None: ...


@dataclass(frozen=True)
class Room:
    """How many more events a stream takes now, and when it takes none, the consumer group
    whose unread or unacknowledged entries fill it."""

    entries: int
    held_by: str | None = None


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry's id (``<ms>-<seq>``) as a pair that orders as Redis orders ids."""
    text_id = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class RedisStreamPublisher:
    """``XADD`` to a Redis stream of at most ``maxlen`` entries, none of which a consumer
    group still needs is ever trimmed.

    ``room`` says how many more entries the stream takes; at its length, it first trims the
    entries every group has read and acknowledged. A group that falls ``maxlen`` entries
    behind (stopped, or failing) so holds the stream full, and the outbox keeps the events in
    PostgreSQL until it catches up (docs/events.md). A stream no group reads keeps its newest
    ``maxlen`` entries, for the first group, which starts at the stream's beginning.
    ``maxlen`` is also each ``XADD``'s approximate trim: the bound of Redis's memory whoever
    publishes.
    """

    redis: Redis = field(repr=False)
    _: KW_ONLY
    maxlen: int

    async def room(self, stream: str) -> Room:
        free = self.maxlen - await self.redis.xlen(stream)
        if free > 0:
            return Room(free)
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # the stream is gone since (an operator deleted it)
            return Room(self.maxlen)
        if not groups:  # nobody reads it: XADD's trim may drop the oldest
            return Room(self.maxlen)
        # Each group needs the entries after the last one it was handed, and those it was
        # handed but has not acknowledged (the oldest pending one onwards). Keeping the last
        # delivered entry too is one entry, and keeps the trim exact with ids alone.
        needed: dict[str, tuple[int, int]] = {}
        for group in groups:
            oldest = _entry_id(group["last-delivered-id"])
            if group["pending"]:
                try:
                    pending = await self.redis.xpending(stream, group["name"])
                except ResponseError:  # NOGROUP: destroyed since, it holds nothing
                    continue
                # None: the group acknowledged its last pending entry since XINFO.
                if pending["min"] is not None:
                    oldest = min(oldest, _entry_id(pending["min"]))
            name = group["name"]
            needed[name.decode() if isinstance(name, bytes) else str(name)] = oldest
        if not needed:
            return Room(self.maxlen)
        slowest = min(needed, key=needed.__getitem__)
        ms, seq = needed[slowest]
        await self.redis.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)
        free = self.maxlen - await self.redis.xlen(stream)
        return Room(free) if free > 0 else Room(0, held_by=slowest)

    async def publish(self, stream: str, event_id: str, payload: bytes) -> None:
        await self.redis.xadd(
            stream, {"id": event_id, "event": payload}, maxlen=self.maxlen, approximate=True
        )

    async def ping(self) -> None:
        await self.redis.ping()


def redis_client(url: str) -> Redis:
    """A client for the events' Redis; every call bounded in time."""
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


# --- consuming --------------------------------------------------------------------------

Handler = Callable[[Event], Awaitable[None]]

# Where a consumer group puts the entries its handler keeps failing on, and how many it keeps
# (counted in Redis's memory budget beside the streams: docs/deploy.md, "Redis's memory").
DEAD_LETTER_SUFFIX = ".dead"
DEAD_LETTER_MAXLEN = 1_000


def is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the event: an outage of the database or the broker,
    or a transaction the database aborted for losing a race with another (a deadlock, a
    serialization failure). Retried without end (the worker backs off), never counted toward
    dead-lettering."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if is_transaction_conflict(exc):
        return True
    return isinstance(exc, (RedisError, OSError, TimeoutError, OperationalError, InterfaceError))


class Subscription(Protocol):
    """One consumer of a consumer group: every event of the stream reaches one consumer of
    the group, and stays pending until the handler returned for it."""

    async def poll(self, handler: Handler) -> int: ...

    async def ping(self) -> None: ...


@dataclass(eq=False)
class RedisStreamSubscription:
    """A consumer in a Redis Streams consumer group.

    Each ``poll`` first takes over entries another consumer of the group left pending for
    longer than ``claim_idle_ms`` (a crashed replica), then this consumer's own pending
    entries (its previous life crashed before acknowledging), then new ones, blocking up to
    ``block_ms``. While a batch is handled, its entries not yet acknowledged are kept claimed
    (their idle time reset), so only a consumer that stopped loses its entries, never a slow
    one. An entry is acknowledged only after the handler returned: a crash replays it, so
    handlers drop duplicates by id (``handle_once``). A malformed entry is logged and
    acknowledged, so it cannot stop the group. An entry whose handler still fails after
    ``max_deliveries`` deliveries is moved to the dead-letter stream ``<stream>.dead`` with
    the group and the error's type, and acknowledged: one poisonous event cannot stop the
    entries behind it forever. A delivery that failed transiently (``is_transient``: an
    outage, a deadlock) is retried and not counted.
    """

    redis: Redis = field(repr=False)
    _: KW_ONLY
    stream: str
    group: str
    consumer: str
    batch: int = 50
    block_ms: int = 2000
    claim_idle_ms: int = 60_000
    max_deliveries: int = 5
    _group_ready: bool = field(default=False, init=False, repr=False)

    async def ensure_group(self) -> None:
        """Create the group at the stream's start (so no event published before the first
        consumer started is missed); an existing group is kept as it is."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def poll(self, handler: Handler) -> int:
        """Handle one batch; the number of entries handled."""
        await self.ensure_group()
        claimed = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.batch,
        )
        entries: list[tuple[Any, dict[Any, Any]]] = list(claimed[1]) if claimed else []
        if not entries:
            entries = await self._read("0", block=None)
        if not entries:
            entries = await self._read(">", block=self.block_ms)
        if entries:
            await self._handle_claimed(handler, entries)
        return len(entries)

    async def _read(self, start: str, *, block: int | None) -> list[tuple[Any, dict[Any, Any]]]:
        response = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.batch, block=block
        )
        if not response:
            return []
        items: Any
        # RESP2: [[stream, [(id, fields), ...]]]; RESP3: {stream: [[(id, fields), ...]]}
        if isinstance(response, dict):
            items = next(iter(response.values()))
            items = items[0] if items and isinstance(items[0], list) else items
        else:
            items = response[0][1]
        # A pending entry trimmed from the stream comes back without fields: nothing to do.
        return [(entry[0], entry[1]) for entry in items if entry[1]]

    async def _deliver(self, handler: Handler, entry_id: Any, fields: dict[Any, Any]) -> None:
        raw = fields.get(b"event", fields.get("event"))
        try:
            if raw is None:
                raise MalformedEvent("entry without an event field")
            event = Event.from_json(raw if isinstance(raw, bytes) else str(raw).encode())
        except MalformedEvent as exc:
            logger.error("dropping malformed entry %s on %s: %s", entry_id, self.stream, exc)
        else:
            try:
                await handler(event)
            except Exception as exc:
                if is_transient(exc):
                    await self._uncount(entry_id)
                    raise
                if await self._deliveries(entry_id) < self.max_deliveries:
                    raise
                await self._dead_letter(entry_id, event, exc)
        await self.redis.xack(self.stream, self.group, entry_id)

    async def _handle_claimed(
        self, handler: Handler, entries: list[tuple[Any, dict[Any, Any]]]
    ) -> None:
        """Deliver the batch while keeping the entries not yet acknowledged this consumer's:
        every third of ``claim_idle_ms`` their idle time is reset (``XCLAIM ... JUSTID``, which
        counts no delivery), so another replica takes them over only once this one has
        stopped, never while a slow handler (a large account's purge) still runs, nor the
        entries of the batch waiting behind it. Taken over then, an entry ran twice at once,
        and the other replica's failures waiting on this one's transaction could dead-letter
        and acknowledge it before this one failed: the event was lost."""
        waiting = [entry_id for entry_id, _ in entries]
        keeper = asyncio.create_task(self._keep_claimed(waiting), name="keep-claimed")
        try:
            for entry_id, fields in entries:
                await self._deliver(handler, entry_id, fields)
                waiting.remove(entry_id)
        finally:
            await stop_tasks([keeper])

    async def _keep_claimed(self, waiting: list[Any]) -> None:
        """Reset the idle time of the ``waiting`` entries (the batch's own list, shortened as
        each is acknowledged) until cancelled."""
        every = self.claim_idle_ms / 3000
        while True:
            await asyncio.sleep(every)
            if not waiting:
                continue
            try:
                await self._reclaim(*waiting)
            except RedisError as exc:
                logger.warning("could not keep %d entries claimed: %s", len(waiting), exc)

    async def _deliveries(self, entry_id: Any) -> int:
        """How often the group has handed this entry out (each replay counts)."""
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _uncount(self, entry_id: Any) -> None:
        """Take back the delivery that just failed transiently (``is_transient``): Redis
        counts every delivery, so without this a few outages or deadlocks would leave the
        entry one ordinary failure away from the dead letters, or past them. The entry stays
        this consumer's, pending, its count one less (``XCLAIM ... RETRYCOUNT``)."""
        delivered = await self._deliveries(entry_id)
        await self._reclaim(entry_id, retrycount=max(delivered - 1, 0))

    async def _reclaim(self, *entry_ids: Any, retrycount: int | None = None) -> None:
        """Make the entries this consumer's, their idle time reset, without counting a
        delivery (``XCLAIM ... JUSTID``); ``retrycount`` sets how many deliveries each has
        had."""
        await self.redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=0,
            message_ids=list(entry_ids),
            retrycount=retrycount,
            justid=True,
        )

    async def _dead_letter(self, entry_id: Any, event: Event, exc: Exception) -> None:
        logger.error(
            "moving event %s (%s) on %s to %s after %d failed deliveries",
            event.id,
            event.type,
            self.stream,
            self.stream + DEAD_LETTER_SUFFIX,
            self.max_deliveries,
            exc_info=exc,
        )
        await self.redis.xadd(
            self.stream + DEAD_LETTER_SUFFIX,
            {
                "id": event.id,
                "event": event.to_json(),
                "group": self.group,
                "error": type(exc).__name__,
            },
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )

    async def ping(self) -> None:
        await self.redis.ping()


# --- handling each event once -----------------------------------------------------------


def processed_events_table(metadata: MetaData, name: str = "processed_events") -> Table:
    """The ids of the events a service has applied (dropped when delivered again). A service
    consuming two streams keeps one table per stream: ids are unique only within a stream."""
    return Table(
        name,
        metadata,
        Column("event_id", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # The retention's oldest-first batches (forget_processed) read it, not the table.
        Index(f"ix_{name}_processed_at", "processed_at"),
    )


Apply = Callable[[AsyncSession, Event], Awaitable[None]]


async def handle_once(db: Database, table: Table, event: Event, apply: Apply) -> bool:
    """Apply ``event`` in one transaction with the record of its id: a second delivery
    (a redelivery, a republished outbox row) changes nothing. True if it was applied now."""
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    async with db.unit_of_work() as session:
        inserted = (
            await (await session.connection()).execute(
                text(
                    f"INSERT INTO {name} (event_id) VALUES (:id) "  # noqa: S608 - our own table
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
                ),
                {"id": event.id},
            )
        ).first()
        if inserted is None:
            return False
        await apply(session, event)
    return True


async def forget_processed(db: Database, table: Table, *, keep_seconds: float, batch: int) -> int:
    """Delete at most ``batch`` ids of events applied more than ``keep_seconds`` ago (by the
    database's clock); how many were deleted."""
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    row = await db.fetch_row(
        f"WITH gone AS (DELETE FROM {name} WHERE event_id IN ("  # noqa: S608 - our own table
        f"SELECT event_id FROM {name} WHERE processed_at < now() - make_interval(secs => $1) "
        "ORDER BY processed_at LIMIT $2) RETURNING 1) SELECT count(*) FROM gone",
        keep_seconds,
        batch,
        write=True,
    )
    return int(row[0]) if row is not None else 0


# --- loops ------------------------------------------------------------------------------


class Heartbeat:
    """When a loop last finished a round; a worker is healthy while every loop beats."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last


async def run_forever(
    name: str,
    step: Callable[[], Awaitable[int]],
    heartbeat: Heartbeat,
    *,
    idle_seconds: float,
    max_backoff_seconds: float = 30.0,
) -> None:
    """Run ``step`` until cancelled: again at once while it finds work, after
    ``idle_seconds`` when it found none, with a growing pause (bounded) after a failure of
    the database or the broker."""
    failures = 0
    while True:
        try:
            done = await step()
        except (RedisError, OSError, TimeoutError) as exc:
            failures += 1
            logger.warning("%s: broker unavailable (%s); retrying", name, exc)
            await asyncio.sleep(min(max_backoff_seconds, 0.5 * 2**failures))
            continue
        except Exception:
            failures += 1
            logger.exception("%s: round failed; retrying", name)
            await asyncio.sleep(min(max_backoff_seconds, 0.5 * 2**failures))
            continue
        failures = 0
        heartbeat.beat()
        if not done:
            await asyncio.sleep(idle_seconds)


def utc_text(moment: datetime) -> str:
    """A timestamp as events carry it: RFC 3339 in UTC."""
    return moment.isoformat().replace("+00:00", "Z")
