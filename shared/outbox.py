"""A transactional outbox: events written in the transaction of the change they describe,
published afterwards by a dispatcher, at least once and in order per key.

A service adds ``outbox_table(metadata)`` to its metadata and a migration that creates it
(``create_outbox_table`` in the revision), writes with ``add_event(session, table, ...)``
inside the unit of work of the change, and runs an ``OutboxDispatcher`` in its worker
(``shared.worker.outbox_loop``).

Order per key: ``add_event`` takes a transaction-level advisory lock on the key
(``key_lock_sql``; a trigger writing into an outbox takes the same one), so two
transactions writing events of one key take turns from the first insert to the commit; the
later one's row therefore gets the larger id and commits later. The dispatcher publishes in
id order and only one dispatcher works on a table at a time (another advisory lock, tried
per batch), so several replicas can run and never publish a row concurrently. A crash
between publishing and marking a row sent publishes it again later: consumers drop it by
its id (``shared.events.handle_once``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database
from shared.events import Event, Publisher, utc_text

logger = logging.getLogger(__name__)

# Advisory lock namespaces (the first of the two int4 keys); the second is a hash.
KEY_LOCK_CLASS = 0x0B0C
DISPATCH_LOCK_CLASS = 0x0B0D


def outbox_table(metadata: MetaData) -> Table:
    """Columns of every outbox. ``id`` is the event's id (its idempotency key)."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("stream", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("data", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        # The dispatcher's scan: only the unsent rows, in id order.
        Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
        # Sent rows are deleted after the retention, oldest first.
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
    )


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def key_lock_sql(outbox: str, key: str) -> str:
    """The SQL taking the lock that serialises the events of one key of an ``outbox`` (its
    quoted, qualified name) until the transaction ends; ``key`` is an SQL expression (a bound
    parameter, a trigger's column). ``add_event`` takes it, and so does every trigger that
    writes events into an outbox (todo's task events, migration 0004): whichever way a
    transaction writes a user's events, it takes turns with every other that does."""
    if "'" in outbox:
        raise ValueError("an outbox name is a quoted identifier, without quotes of its own")
    return f"pg_advisory_xact_lock({KEY_LOCK_CLASS}, hashtext('{outbox}:' || {key}))"


def hash32(value: str) -> int:
    """A stable signed 32-bit hash (advisory locks take int4 pairs)."""
    unsigned = zlib.crc32(value.encode())
    return unsigned - 2**32 if unsigned >= 2**31 else unsigned


async def lock_keys(session: AsyncSession, table: Table, keys: Iterable[str]) -> None:
    """Take the event locks of several keys until the transaction ends, as ``add_event``
    takes one: in one order (the keys sorted) whoever takes them, so two transactions
    locking overlapping keys wait for each other instead of deadlocking. A writer that must
    allocate ids (a notification's) in commit order per key takes them first."""
    for key in sorted(set(keys)):
        await (await session.connection()).execute(
            text(f"SELECT {key_lock_sql(_qualified(table), ':key')}"), {"key": key}
        )


async def add_event(
    session: AsyncSession,
    table: Table,
    *,
    stream: str,
    key: str,
    type: str,
    version: int,
    data: dict[str, Any],
) -> int:
    """Write an event in the session's transaction; its id. Events of one ``key`` are
    serialised until the transaction ends (see the module's docstring)."""
    await lock_keys(session, table, (key,))
    row = (
        await (await session.connection()).execute(
            table.insert()
            .values(stream=stream, key=key, type=type, version=version, data=data)
            .returning(table.c.id)
        )
    ).one()
    return int(row[0])


@dataclass(eq=False)
class OutboxDispatcher:
    """Publishes an outbox's unsent rows in id order and marks them sent.

    Each round is one transaction that first tries the table's dispatch lock
    (``pg_try_advisory_xact_lock``): a replica that does not get it does nothing this round,
    so replicas never publish concurrently and per-key order holds. A publish that fails
    ends the round: the rows published before it are marked sent, the rest wait. So does a
    stream without room (``Publisher.room``: a consumer group too far behind): its rows wait
    here, in order, until the group catches up, and a warning names the group.
    """

    db: Database = field(repr=False)
    table: Table = field(repr=False)
    publisher: Publisher = field(repr=False)
    _: KW_ONLY
    batch: int
    retention_seconds: float
    # The key of the table's dispatch lock (``pg_try_advisory_xact_lock``).
    _lock: int = field(init=False, repr=False)
    # The streams found full, so that a full stream is reported once, not every round.
    _full: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._lock = hash32(_qualified(self.table))

    async def dispatch_once(self) -> int:
        """One round; the number of rows published (0 when idle or another replica has it).

        A publish that fails is raised after the rows published before it are committed as
        sent, so the next round starts at the failed row."""
        table = self.table
        failure: Exception | None = None
        async with self.db.unit_of_work() as session:
            locked = (
                await (await session.connection()).execute(
                    text("SELECT pg_try_advisory_xact_lock(:space, :key)"),
                    {"space": DISPATCH_LOCK_CLASS, "key": self._lock},
                )
            ).scalar_one()
            if not locked:
                return 0
            rows = (
                await (await session.connection()).execute(
                    table.select()
                    .where(table.c.sent_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self.batch)
                )
            ).all()
            sent: list[int] = []
            room: dict[str, int] = {}
            for row in rows:
                event = Event(
                    id=str(row.id),
                    type=row.type,
                    version=row.version,
                    key=row.key,
                    occurred_at=utc_text(row.created_at),
                    data=row.data,
                )
                try:
                    if row.stream not in room:
                        room[row.stream] = await self._room(row.stream)
                    if room[row.stream] <= 0:
                        break
                    await self.publisher.publish(row.stream, event.id, event.to_json())
                except Exception as exc:
                    failure = exc
                    break
                room[row.stream] -= 1
                sent.append(row.id)
            if sent:
                await (await session.connection()).execute(
                    table.update().where(table.c.id.in_(sent)).values(sent_at=func.now())
                )
            await self._forget_sent(session)
        if failure is not None:
            raise failure
        return len(sent)

    async def _room(self, stream: str) -> int:
        """How many events ``stream`` takes this round; a change of full or not is logged."""
        room = await self.publisher.room(stream)
        if room.entries <= 0 and stream not in self._full:
            self._full.add(stream)
            logger.warning(
                "stream %s is full: consumer group %s has not read or acknowledged its "
                "oldest entries; events wait in the outbox",
                stream,
                room.held_by,
            )
        elif room.entries > 0 and stream in self._full:
            self._full.discard(stream)
            logger.warning("stream %s has room again: publishing resumes", stream)
        return room.entries

    async def _forget_sent(self, session: AsyncSession) -> None:
        """Delete rows sent longer than the retention ago, a bounded number per round."""
        name = _qualified(self.table)
        await (await session.connection()).execute(
            text(
                f"DELETE FROM {name} WHERE id IN (SELECT id FROM {name} "  # noqa: S608
                "WHERE sent_at < now() - make_interval(secs => :keep) "
                "ORDER BY id LIMIT :limit)"
            ),
            {"keep": self.retention_seconds, "limit": self.batch},
        )

    async def backlog(self) -> int:
        """Rows not yet published (a gauge for operators)."""
        row = await self.db.fetch_row(
            f"SELECT count(*) FROM {_qualified(self.table)} WHERE sent_at IS NULL"  # noqa: S608
        )
        return int(row[0]) if row is not None else 0
