"""The deleted-subject check's in-process set (shared/tombstones.py): kept current by
LISTEN/NOTIFY from another connection's burial, and read from the table instead whenever the
set cannot be trusted (listener down, silent, reconnecting, past its bound, or behind a
transaction pooler).

A subject inserted into the table without the burial's NOTIFY is the probe: the set does not
hear of it, so it is found only by a read of the table."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Database
from shared.tombstones import (
    ANNOUNCED_MAX,
    AccountDeleted,
    Timing,
    Tombstones,
    TombstoneVerifier,
    bury,
    notify_channel,
)
from tests.support.events import eventually
from tests.support.tokens import TestIssuer
from todo_service.models import DELETED_SUBJECTS

# Short heartbeats and leases, so a lost listener shows within a test's patience; the lease
# twenty heartbeats long, so a loaded machine's pauses do not let it lapse by chance.
QUICK = Timing(heartbeat=0.1, lease=2.0)
LISTENER_NAME = "tombstones-under-test"


@pytest.fixture
async def listener_db(migrated_url: str) -> AsyncIterator[Database]:
    """A service's own Database (its own pool), named so its backends can be found."""
    db = Database.open(migrated_url, pool_size=2, application_name=LISTENER_NAME)
    yield db
    await db.dispose()


@asynccontextmanager
async def watched(
    db: Database, *, limit: int = 100_000, retry: float = QUICK.retry
) -> AsyncIterator[Tombstones]:
    timing = replace(QUICK, retry=retry)
    async with Tombstones(db, DELETED_SUBJECTS, limit=limit, timing=timing).watching() as tombs:
        yield tombs


async def until_listening(tombstones: Tombstones, value: bool = True) -> None:
    async def reached() -> bool:
        return tombstones.listening is value

    await eventually(reached, seconds=10)


async def bury_committed(db: Database, subject: str) -> None:
    """Another connection's purge: the burial and its NOTIFY, committed."""
    async with db.unit_of_work() as session:
        await bury(session, DELETED_SUBJECTS, subject)


async def insert_without_notify(engine: AsyncEngine, subject: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO todo.deleted_subjects (subject) VALUES (:s)"), {"s": subject}
        )


async def notify(engine: AsyncEngine, subjects: list[str]) -> None:
    """NOTIFYs on the burials' channel with nothing buried, in one committed transaction."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "SELECT pg_notify(:channel, subject) "
                "FROM unnest(CAST(:subjects AS text[])) AS s (subject)"
            ),
            {"channel": notify_channel(DELETED_SUBJECTS), "subjects": subjects},
        )


async def backend_pids(engine: AsyncEngine) -> list[int]:
    """The backends of ``listener_db``: only the listener's while no read has used its
    pool."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": LISTENER_NAME},
        )
        return [pid for (pid,) in rows]


def fresh() -> str:
    return str(uuid.uuid4())


async def test_a_token_of_a_subject_buried_by_another_connection_is_refused_after_commit(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    issuer = TestIssuer()
    subject = fresh()
    token = issuer.mint(subject)
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        verifier = TombstoneVerifier(issuer.verifier(), tombstones)
        assert (await verifier.verify(token)).sub == subject

        await bury_committed(committed_database, subject)
        committed = time.monotonic()

        async def refused() -> bool:
            try:
                await verifier.verify(token)
            except AccountDeleted:
                return True
            return False

        await eventually(refused, seconds=2)
        assert time.monotonic() - committed < 2
        assert tombstones.listening  # answered by the set, not by a read


async def test_while_listening_the_set_answers_without_reading_the_table(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    unannounced = fresh()
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        await insert_without_notify(engine, unannounced)
        assert not await tombstones.is_buried(unannounced)


async def test_a_notification_without_a_burial_refuses_no_one(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    """Any role of the database may NOTIFY on the channel; only the table says who is buried."""
    victim = fresh()
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        await notify(engine, [victim])
        deadline = time.monotonic() + 1.0  # ten heartbeats
        while time.monotonic() < deadline:
            assert not await tombstones.is_buried(victim)
            await asyncio.sleep(0.02)
        assert tombstones.listening


async def test_a_flood_of_notifications_is_checked_against_the_table(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    fakes = [fresh() for _ in range(ANNOUNCED_MAX + 500)]
    real = fresh()
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        await notify(engine, fakes)
        await bury_committed(committed_database, real)

        async def heard() -> bool:
            return await tombstones.is_buried(real)

        await eventually(heard, seconds=5)
        await until_listening(tombstones)
        for fake in (fakes[0], fakes[ANNOUNCED_MAX], fakes[-1]):
            assert not await tombstones.is_buried(fake)


async def test_a_subject_buried_before_the_start_is_loaded(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    earlier = fresh()
    await insert_without_notify(engine, earlier)
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        assert await tombstones.is_buried(earlier)
        assert not await tombstones.is_buried(fresh())


async def test_while_the_listener_is_down_each_question_reads_the_table(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    # It waits a minute before reconnecting: down for the whole test.
    async with watched(listener_db, retry=60) as tombstones:
        await lose_listener(engine, tombstones)
        missed = fresh()
        await insert_without_notify(engine, missed)
        assert await tombstones.is_buried(missed)
        assert not await tombstones.is_buried(fresh())


async def test_the_listener_reconnects_and_reloads_what_it_missed(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    async with watched(listener_db, retry=1.0) as tombstones:
        listener = await lose_listener(engine, tombstones)
        missed = fresh()
        await insert_without_notify(engine, missed)  # while no one listens

        await until_listening(tombstones)
        assert await backend_pids(engine) != [listener]
        assert await tombstones.is_buried(missed)  # loaded again, not read
        after = fresh()
        await bury_committed(committed_database, after)

        async def heard() -> bool:
            return await tombstones.is_buried(after)

        await eventually(heard, seconds=2)
        assert tombstones.listening


async def test_a_listener_that_stops_answering_stops_vouching_within_the_lease(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    async with watched(listener_db) as tombstones:
        await until_listening(tombstones)
        (listener,) = await backend_pids(engine)
        missed = fresh()
        with stopped(listener):  # the connection stays open but silent, as behind a cut
            started = time.monotonic()
            await until_listening(tombstones, False)
            # Well before the listener gives up on the connection (30 s by default).
            assert time.monotonic() - started < 3 * QUICK.lease
            await insert_without_notify(engine, missed)
            assert await tombstones.is_buried(missed)
        # Answering again, the same connection vouches again (the read added a pooled one).
        await until_listening(tombstones)
        assert listener in await backend_pids(engine)


async def test_past_the_bound_every_question_reads_the_table(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    await insert_without_notify(engine, fresh())
    async with watched(listener_db, limit=2) as tombstones:
        await until_listening(tombstones)
        for _ in range(2):
            await bury_committed(committed_database, fresh())
        await until_listening(tombstones, False)
        late = fresh()
        await insert_without_notify(engine, late)
        assert await tombstones.is_buried(late)


async def test_a_table_loaded_past_the_bound_is_never_trusted(
    listener_db: Database, committed_database: Database, engine: AsyncEngine
) -> None:
    for _ in range(3):
        await insert_without_notify(engine, fresh())
    async with watched(listener_db, limit=2) as tombstones:
        late = fresh()
        await insert_without_notify(engine, late)

        async def read_found() -> bool:
            return await tombstones.is_buried(late)

        await eventually(read_found, seconds=2)
        assert not tombstones.listening


async def test_behind_a_transaction_pooler_each_question_reads_the_table(
    engine: AsyncEngine, committed_database: Database
) -> None:
    pooled = Database(engine, pooled=True)
    assert not pooled.can_listen
    async with watched(pooled) as tombstones:
        subject = fresh()
        assert not await tombstones.is_buried(subject)
        await insert_without_notify(engine, subject)
        assert await tombstones.is_buried(subject)
        assert not tombstones.listening


async def lose_listener(engine: AsyncEngine, tombstones: Tombstones) -> int:
    """The listening connection terminated by the server, once it was listening; its pid."""
    await until_listening(tombstones)
    (listener,) = await backend_pids(engine)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": listener})
    await until_listening(tombstones, False)
    return listener


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The backend process frozen (SIGSTOP) for the block: a local server only."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except (PermissionError, ProcessLookupError):
        pytest.skip("the test server's backends are not this user's processes")
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
