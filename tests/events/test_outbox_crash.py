"""The auth outbox never loses an event: the worker is killed with SIGKILL at random points
while accounts are registered and deleted (and some deletions rolled back), then started
again; in the end every committed event is on the stream at least once, none of a rolled
back deletion is, and each user's events are in order.

Bounded: at least ``CRASH_USERS`` accounts (default 40) and ``CRASH_KILLS`` kills (default 5)
within 150 s of load, each worker killed at a random point within
0.6 s of its loop starting, all on loopback; ``CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from auth_service import service
from auth_service.keys import generate_pem, load_key_set
from auth_service.passwords import PasswordHasher
from auth_service.service import AuthContext
from auth_service.settings import AuthSettings
from shared.clock import utcnow
from shared.db import Database
from tests.support.workers import (
    WorkerProcess,
    assert_ids_increase_per_key,
    first_deliveries,
    read_stream,
)

pytestmark = pytest.mark.timeout(300)

USERS = int(os.environ.get("CRASH_USERS", "40"))
# The load goes on (a few accounts a second, at most 150 s) until the worker was killed this
# often: a worker process takes seconds to start on a busy machine.
KILLS = int(os.environ.get("CRASH_KILLS", "5"))
LOAD_SECONDS = 150.0
SEED = int(os.environ.get("CRASH_SEED", str(random.randrange(1_000_000))))
PASSWORD = "correct horse battery"


def auth_worker(database_url: str, redis_url: str, log: Path) -> WorkerProcess:
    """``python -m auth_service.worker``, publishing in small batches with short pauses."""
    return WorkerProcess(
        "auth_service.worker",
        {
            "AUTH_DATABASE_URL": database_url,
            "EVENTS_REDIS_URL": redis_url,
            "AUTH_EVENTS_BATCH": "3",
            "AUTH_EVENTS_IDLE_SECONDS": "0.05",
            "AUTH_DB_POOL_SIZE": "2",
        },
        log,
    )


@pytest.fixture
async def context(committed_database: Database) -> AsyncIterator[AuthContext]:
    settings = AuthSettings(
        _env_file=None, environment="test", signing_keys=SecretStr(generate_pem())
    )
    hasher = PasswordHasher(settings)
    try:
        yield AuthContext(
            settings=settings,
            keys=load_key_set(settings),
            hasher=hasher,
            clock=utcnow,
            sessionmaker=committed_database.sessionmaker,
        )
    finally:
        hasher.close()


class RolledBack(Exception):
    pass


async def life_of_a_user(db: Database, ctx: AuthContext, rng: random.Random) -> tuple[str, bool]:
    """Register, then delete (committed) or attempt a deletion that rolls back."""
    email = f"crash-{uuid.uuid4().hex[:12]}@example.com"
    async with db.unit_of_work() as session:
        user = await service.register(session, ctx, email=email, password=PASSWORD, name=None)
    user_id = str(user.id)
    await asyncio.sleep(rng.uniform(0, 0.2))
    committed = rng.random() < 0.7
    try:
        async with db.unit_of_work() as session:
            await service.delete_account(session, ctx, user_id, password=PASSWORD)
            if not committed:
                raise RolledBack()
    except RolledBack:
        pass
    return user_id, committed


async def test_no_committed_event_is_lost_when_the_worker_is_killed_at_random(
    committed_database: Database,
    context: AuthContext,
    migrated_url: str,
    redis_url: str,
    tmp_path: Path,
    record_property: object,
) -> None:
    rng = random.Random(SEED)
    print(f"CRASH_SEED={SEED}")
    worker = auth_worker(migrated_url, redis_url, tmp_path / "worker.log")
    load_done = asyncio.Event()

    async def killer() -> None:
        while not load_done.is_set():
            worker.start()
            # Killed while it works: at a random point after its loop started.
            await worker.serving()
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            worker.kill()

    async def load() -> list[tuple[str, bool]]:
        started = time.monotonic()
        lives: list[asyncio.Task[tuple[str, bool]]] = []
        gate = asyncio.Semaphore(4)

        async def one() -> tuple[str, bool]:
            async with gate:
                return await life_of_a_user(committed_database, context, rng)

        try:
            while len(lives) < USERS or (
                worker.kills < KILLS and time.monotonic() - started < LOAD_SECONDS
            ):
                # No backlog of accounts waiting: the load ends soon after it stops.
                running = [life for life in lives if not life.done()]
                if len(running) >= 4:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                lives.append(asyncio.create_task(one()))
                await asyncio.sleep(rng.uniform(0.05, 0.4))
            return await asyncio.gather(*lives)
        finally:
            load_done.set()

    killing = asyncio.create_task(killer())
    try:
        users = await load()
        await killing
        # Started once more, left to finish: every committed row must reach the stream.
        worker.start()
        deadline = time.monotonic() + 60
        while await committed_database.fetch_row(
            "SELECT 1 FROM auth.outbox WHERE sent_at IS NULL LIMIT 1"
        ):
            assert time.monotonic() < deadline, worker.log_tail()
            await asyncio.sleep(0.1)
    finally:
        killing.cancel()
        worker.stop()

    stream = await read_stream(redis_url, "events.users")

    # At least once: every committed event; the duplicates are crashes between publishing
    # and marking, dropped by consumers by id.
    firsts = first_deliveries(stream)
    by_user: dict[str, list[str]] = {}
    for event in firsts:
        by_user.setdefault(event.key, []).append(event.type)
    for user_id, committed in users:
        expected = ["user.registered", "user.deleted"] if committed else ["user.registered"]
        assert by_user.get(user_id) == expected, (user_id, committed, by_user.get(user_id))
    # Per user, events appear in the order of their ids (the order they committed in).
    assert_ids_increase_per_key(firsts)
    assert worker.kills > 0
    figures = f"kills={worker.kills} entries={len(stream)} duplicates={len(stream) - len(firsts)}"
    print(figures)
    record_property("outbox_crash", figures)
