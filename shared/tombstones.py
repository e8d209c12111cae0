"""Deleted subjects: once a service has purged a deleted account's rows, that account's
remaining access tokens are refused there and no row of it can be stored again.

Each service keeps its own ``deleted_subjects`` table (``tombstone_table``), filled by its
consumer of ``user.deleted`` together with the purge (``bury``). Two defences use it:

- ``TombstoneVerifier`` wraps the service's token verifier: a token of a buried subject is a
  401 ``account_deleted``, whatever its remaining lifetime.
- A trigger on every user-owned table (``refusal_trigger_sql``) refuses an insert for a
  buried subject. It takes a shared advisory lock on the subject and ``bury`` an exclusive
  one, so a write that passed the token check just before the purge either commits before
  the purge starts (and is purged with the rest) or waits for it (and is refused): no row
  survives the purge, whichever write path stored it.

One lock order: a subject's lock, then its rows. The purge holds the exclusive lock while it
deletes the subject's rows, table after table, waiting for any row another transaction has
locked. A write that locked some of those rows first and then needs the shared lock (an
insert, through the trigger) or another of the rows in the purge's other order would wait
for the purge while the purge waits for it: a deadlock, which PostgreSQL breaks by aborting
one of them. So a write that locks rows of a subject takes the subject's shared lock first
(``lock_subject``); shared, it costs concurrent writes of that subject nothing. A write that
must not wait at all (one locking the rows of many subjects with ``SKIP LOCKED``) tries the
lock in its row query instead (``try_lock_subject``) and passes over a subject being purged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Column, ColumnElement, DateTime, MetaData, Table, Text, func, text
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, is_database_outage
from shared.errors import DELETED_SUBJECT_SQLSTATE
from shared.tasks import stop_tasks
from shared.tokens import InvalidToken, Principal, TokenVerifier

logger = logging.getLogger(__name__)

# Subjects named by notifications and not looked up yet, at most; past this the table is
# loaded again instead.
ANNOUNCED_MAX = 1_000

# The advisory lock namespace of subjects (the first int4 key; the second is hashtext).
SUBJECT_LOCK_CLASS = 0x0B0E


class AccountDeleted(
    InvalidToken, code="account_deleted", message="The account of this access token was deleted"
):
    """The token's subject deleted the account after the token was issued."""


def tombstone_table(metadata: MetaData) -> Table:
    return Table(
        "deleted_subjects",
        metadata,
        Column("subject", Text, primary_key=True),
        Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def refusal_function_sql(schema: str) -> str:
    """The trigger function of ``schema`` (run by its migration)."""
    return f"""
CREATE OR REPLACE FUNCTION "{schema}".refuse_deleted_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({SUBJECT_LOCK_CLASS}, hashtext(NEW.user_id));
    IF EXISTS (SELECT 1 FROM "{schema}".deleted_subjects WHERE subject = NEW.user_id) THEN
        RAISE EXCEPTION 'the account was deleted' USING ERRCODE = '{DELETED_SUBJECT_SQLSTATE}';
    END IF;
    RETURN NEW;
END
$$"""  # noqa: S608 - the service's own schema name


def refusal_trigger_sql(schema: str, table: str) -> str:
    return (
        f'CREATE TRIGGER refuse_deleted_subject BEFORE INSERT ON "{schema}"."{table}" '
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_deleted_subject()'
    )


def notify_channel(table: Table) -> str:
    """The channel on which ``bury`` announces a subject of ``table`` (its qualified name)."""
    return f"{table.schema}.{table.name}" if table.schema else table.name


def subject_lock_sql(subject: str) -> str:
    """The SQL taking ``subject``'s lock in shared mode, as ``lock_subject`` does, for a single
    statement to take before it locks any row (``subject`` is an SQL expression: a bound
    parameter)."""
    return f"pg_advisory_xact_lock_shared({SUBJECT_LOCK_CLASS}, hashtext({subject}))"


async def lock_subject(session: AsyncSession, subject: str) -> None:
    """Take ``subject``'s lock in shared mode until the transaction ends, as the trigger does
    for an insert: before locking any row of the subject (the module's lock order)."""
    connection = await session.connection()
    await connection.execute(text(f"SELECT {subject_lock_sql(':subject')}"), {"subject": subject})


def try_lock_subject(subject: ColumnElement[str]) -> ColumnElement[bool]:
    """A condition on a row that takes its subject's lock in shared mode without waiting:
    false while that subject's purge holds or waits for the lock. In a ``FOR UPDATE`` query
    it is evaluated before the row is locked, so a row of a subject being purged is neither
    locked nor returned."""
    return func.pg_try_advisory_xact_lock_shared(SUBJECT_LOCK_CLASS, func.hashtext(subject))


async def bury(session: AsyncSession, table: Table, subject: str) -> None:
    """Record ``subject`` as deleted, holding its lock until the transaction ends: purge its
    rows after this, in the same transaction. The service's processes hear of it when the
    transaction commits (a NOTIFY on ``notify_channel``), not before."""
    connection = await session.connection()
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(:space, hashtext(:subject))"),
        {"space": SUBJECT_LOCK_CLASS, "subject": subject},
    )
    await connection.execute(
        text(
            f"INSERT INTO {_qualified(table)} (subject) VALUES (:subject) "  # noqa: S608
            "ON CONFLICT (subject) DO NOTHING"
        ),
        {"subject": subject},
    )
    await connection.execute(
        text("SELECT pg_notify(:channel, :subject)"),
        {"channel": notify_channel(table), "subject": subject},
    )


@dataclass(frozen=True)
class Timing:
    """How ``Tombstones`` keeps its listening connection, in seconds."""

    heartbeat: float = 2.0  # between two heartbeats
    lease: float = 6.0  # how long an answered heartbeat vouches for the set, from its question
    give_up: float = 30.0  # a heartbeat unanswered this long: the connection is replaced
    retry: float = 0.5  # the first pause before reconnecting, doubled at each failure
    max_retry: float = 10.0  # the longest pause


class Tombstones:
    """Whether a subject is buried: a set in process, kept current by LISTEN/NOTIFY, or one
    read of the table per question when the set cannot be trusted.

    ``watching()`` keeps one connection of its own (outside the pool) listening on the
    table's channel. It listens before it loads the table, so a burial committed while it
    loads is in the load or in a notification, never in neither. A notification is a hint,
    not a fact (any role of the database may NOTIFY): the subject it names is looked up in
    the table on that connection at once, and until then each question about it is a read.
    Otherwise a subject is buried if and only if it is in the set, with no I/O, as long as
    the connection has answered a round trip (one per notification, or a heartbeat, see
    ``Timing``) asked within the lease: notifications travel in order with its answers, so
    one answer vouches that every burial committed before its question was heard. A
    connection that died silently, or answers late, therefore stops vouching within the
    lease; one silent for longer is replaced. More than ``ANNOUNCED_MAX`` notifications
    waiting (a flood) make it load the table again instead, reading meanwhile.

    The set is not trusted, and every subject not in it is one primary-key read (as before
    there was a set), while the listener is not connected or not loaded yet, when the
    database sits behind a transaction pooler (no LISTEN there: ``Database.can_listen``),
    and for good once more than ``limit`` subjects are buried (the set stops growing;
    tombstones are never removed, so the table does not shrink back under the bound).

    Between a purge's commit and its notification's arrival (milliseconds) a token of the
    subject still passes; its rows are already gone with that commit, and a write is refused
    by the trigger, which stays the last line of defence.

    When the database cannot be reached a read is passed over, with a warning: the
    request's own statements need that database too, so it answers its ordinary outage
    error (a 503, an MCP internal error) rather than a refusal of the token, and a row it
    could still write is refused by the trigger.
    """

    def __init__(
        self, db: Database, table: Table, *, limit: int = 100_000, timing: Timing | None = None
    ) -> None:
        self._db = db
        self._channel = notify_channel(table)
        self._read_sql = f"SELECT 1 FROM {_qualified(table)} WHERE subject = $1"  # noqa: S608
        self._load_sql = f"SELECT subject FROM {_qualified(table)} LIMIT $1"  # noqa: S608
        self._check_sql = f"SELECT subject FROM {_qualified(table)} WHERE subject = ANY($1::text[])"  # noqa: S608
        self._limit = limit
        self._timing = timing or Timing()
        self._buried: set[str] = set()
        # Subjects a notification named, not yet found in the table: a NOTIFY carries no
        # authority (any role may send one), so each is looked up before it is believed.
        self._announced: set[str] = set()
        # The set holds every buried subject until this moment (time.monotonic()).
        self._vouched_until = 0.0
        self._over_limit = False

    @property
    def listening(self) -> bool:
        """Whether the set answers alone (loaded, and vouched for by a recent heartbeat)."""
        return time.monotonic() < self._vouched_until

    async def is_buried(self, subject: str) -> bool:
        if subject in self._buried:
            return True
        if time.monotonic() < self._vouched_until and subject not in self._announced:
            return False
        try:
            row = await self._db.fetch_row(self._read_sql, subject)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            logger.warning("deleted subjects not checked: the database is unreachable")
            return False
        if row is None:
            return False
        self._remember(subject)
        return True

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[Tombstones]:
        """Keep the set current while the block lasts (nothing to keep when the database
        cannot LISTEN: every question is then a read)."""
        if not self._db.can_listen:
            yield self
            return
        watcher = asyncio.create_task(self._watch(), name=f"tombstones {self._channel}")
        try:
            yield self
        finally:
            self._vouched_until = 0.0
            await stop_tasks([watcher])

    async def _watch(self) -> None:
        """Listen, load, heartbeat; after any loss, the same again (backing off) until the
        block ends or the bound is passed."""
        timing = self._timing
        failures = 0
        while not self._over_limit:
            try:
                async with self._db.dedicated_connection() as connection:
                    await self._follow(connection)
                    failures = 0
            except Exception as exc:
                failures += 1
                level = logging.WARNING if is_database_outage(exc) else logging.ERROR
                logger.log(level, "listening for deleted subjects failed: %r", exc)
            finally:
                self._vouched_until = 0.0
            if not self._over_limit:
                await asyncio.sleep(min(timing.retry * 2 ** max(failures - 1, 0), timing.max_retry))
        logger.warning(
            "more than %d deleted subjects on %s: each request reads the table",
            self._limit,
            self._channel,
        )

    async def _follow(self, connection: asyncpg.Connection) -> None:
        """Until ``connection`` is lost or the bound passed: it is listening, loaded and
        vouched for by its round trips, one at least every heartbeat."""
        lost = False
        wake = asyncio.Event()  # a notification, or the connection lost
        reload = True  # the first round loads the table

        def on_lost(_: object) -> None:
            nonlocal lost
            self._vouched_until = 0.0
            lost = True
            wake.set()

        def on_notify(_connection: object, _pid: int, _channel: str, subject: str) -> None:
            nonlocal reload
            if len(self._announced) < ANNOUNCED_MAX:
                self._announced.add(subject)
            else:
                # A flood (of burials, or of anyone's NOTIFYs): read the table again instead.
                self._vouched_until = 0.0
                self._announced.clear()
                reload = True
            wake.set()

        self._announced.clear()
        connection.add_termination_listener(on_lost)
        await connection.add_listener(self._channel, on_notify)
        while not self._over_limit and not lost:
            asked = time.monotonic()
            wake.clear()
            # A slow answer only lets the lease lapse (questions read the table meanwhile);
            # none for ``give_up`` and the connection is dropped for a new one.
            checked = set(self._announced)
            async with asyncio.timeout(self._timing.give_up):
                if reload:
                    reload = False
                    rows = await connection.fetch(self._load_sql, self._limit + 1)
                elif checked:
                    rows = await connection.fetch(self._check_sql, list(checked))
                else:
                    await connection.execute("SELECT 1")  # the heartbeat
                    rows = []
            for row in rows:
                self._remember(row[0])
            # Looked up (or covered by the load): the buried among them are in the set now.
            self._announced -= checked
            # Every notification sent before this answer has been handled by now (asyncpg
            # calls listeners in arrival order, before the awaiting task resumes): a burial
            # committed before the question is in the set or still announced.
            if not self._over_limit and not reload:
                self._vouched_until = asked + self._timing.lease
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timing.heartbeat):
                    await wake.wait()

    def _remember(self, subject: str) -> None:
        if subject in self._buried:
            return
        if len(self._buried) >= self._limit:
            self._over_limit = True
            self._vouched_until = 0.0
            return
        self._buried.add(subject)


class TombstoneVerifier:
    """A token verifier that also refuses the tokens of buried subjects (``AccountDeleted``).

    It stands where the service's ``TokenVerifier`` stood (``app.state.verifier``), so the
    REST routes and the MCP endpoint both go through it."""

    def __init__(self, inner: TokenVerifier, tombstones: Tombstones) -> None:
        self.inner = inner
        self.tombstones = tombstones

    async def verify(self, token: str) -> Principal:
        principal = await self.inner.verify(token)
        if await self.tombstones.is_buried(principal.sub):
            raise AccountDeleted()
        return principal

    async def ready(self) -> bool:
        return await self.inner.ready()

    def jwks_sources(self) -> Any:
        return self.inner.jwks_sources()
