"""A service's worker process: the loops that move its events (an outbox dispatcher, stream
consumers), with the probes of every service (``/healthz``, ``/readyz``) on its port.

``python -m <service>.worker`` runs one; any number of replicas may run (see
docs/events.md for why that is safe).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import Table

from shared.app import create_service_app, database, database_ready
from shared.clock import Clock
from shared.db import Database
from shared.events import Heartbeat, RedisStreamPublisher, redis_client, run_forever
from shared.outbox import OutboxDispatcher
from shared.settings import ServiceSettings
from shared.tasks import stop_tasks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loop:
    """One round of work (its count of items handled); run again at once while it finds
    work, after ``idle_seconds`` otherwise (None: the settings' ``events_idle_seconds``)."""

    name: str
    step: Callable[[], Awaitable[int]]
    idle_seconds: float | None = None


# How often a retention loop looks for rows to delete (between those looks it does nothing),
# and the pause between two batches while it catches up: a backlog (the first deploy, a
# worker down for days) is deleted at a bounded rate, not in one burst of writes and WAL.
RETENTION_EVERY_SECONDS = 300.0
RETENTION_PAUSE_SECONDS = 1.0
# Rows a retention loop deletes per statement.
RETENTION_BATCH = 1000


def expired_rows_loop(name: str, db: Database, table: str, clock: Clock) -> Loop:
    """The retention loop deleting ``table``'s expired rows (``forget_expired``)."""

    async def step() -> int:
        return await forget_expired(db, table, now=clock(), batch=RETENTION_BATCH)

    return periodic_loop(name, step)


async def forget_expired(db: Database, table: str, *, now: datetime, batch: int) -> int:
    """Delete at most ``batch`` rows of ``table`` (a qualified name, a constant) whose
    ``expires_at`` is ``now`` or earlier, oldest first, passing over rows a transaction holds
    (a claim taking an expired key over); how many were deleted. A retention loop's step:
    kept out of the statements that claim keys, where a range over the expiry would make
    PostgreSQL plan them afresh on every execution (docs/data.md)."""
    row = await db.fetch_row(
        f"WITH gone AS (DELETE FROM {table} WHERE id IN ("  # noqa: S608 - a constant name
        f"SELECT id FROM {table} WHERE expires_at <= $1 "
        "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) "
        "SELECT count(*) FROM gone",
        now,
        batch,
        write=True,
    )
    return int(row[0]) if row is not None else 0


def periodic_loop(
    name: str,
    step: Callable[[], Awaitable[int]],
    *,
    every_seconds: float = RETENTION_EVERY_SECONDS,
    pause_seconds: float = RETENTION_PAUSE_SECONDS,
) -> Loop:
    """A loop that runs ``step`` (a bounded batch) at most once per ``every_seconds``, and
    again ``pause_seconds`` later while it finds work; between runs its rounds do nothing,
    so it still beats for the readiness probe. A failed step is logged and tried again at
    the next period: the work is maintenance, and its failure must not mark the worker (and
    the loops that do serve requests) unready."""
    due = 0.0

    async def run() -> int:
        nonlocal due
        if time.monotonic() < due:
            return 0
        try:
            done = await step()
        except Exception:
            logger.exception("%s: round failed; trying again in %.0f s", name, every_seconds)
            done = 0
        due = time.monotonic() + (pause_seconds if done else every_seconds)
        return done

    return Loop(name, run)


def outbox_loop(database: Database, table: Table, redis: Redis, settings: ServiceSettings) -> Loop:
    """The loop that publishes the outbox ``table`` to Redis Streams (shared/outbox.py: one
    replica at a time, in id order), bounded by the service's event settings."""
    dispatcher = OutboxDispatcher(
        database,
        table,
        RedisStreamPublisher(redis, maxlen=settings.events_stream_maxlen),
        batch=settings.events_batch,
        retention_seconds=settings.events_outbox_retention_seconds,
    )
    return Loop("outbox", dispatcher.dispatch_once)


LoopFactory = Callable[[Database, Redis], list[Loop]]


@dataclass
class WorkerState:
    redis: Redis
    heartbeats: dict[str, Heartbeat] = field(default_factory=dict)


def consumer_name() -> str:
    """This replica's name in a consumer group: its host name (a pod's or container's), so a
    restarted replica resumes its own unacknowledged entries at once."""
    return socket.gethostname()


def create_worker_app(
    *,
    name: str,
    settings: ServiceSettings,
    loops: LoopFactory,
    db: Database | None = None,
) -> FastAPI:
    """The worker of service ``name``: its loops run for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.events_redis_url:
            raise RuntimeError(
                "no events broker configured: set EVENTS_REDIS_URL (or the service's own "
                "variable); `make run` starts a local Redis for it"
            )
        redis = redis_client(settings.events_redis_url)
        try:
            async with database(app, settings, name=f"{name}-worker", db=db) as opened:
                state = WorkerState(redis)
                app.state.worker = state
                tasks = []
                for loop in loops(opened, redis):
                    heartbeat = state.heartbeats[loop.name] = Heartbeat()
                    runner = run_forever(
                        f"{name}.{loop.name}",
                        loop.step,
                        heartbeat,
                        idle_seconds=(
                            settings.events_idle_seconds
                            if loop.idle_seconds is None
                            else loop.idle_seconds
                        ),
                    )
                    tasks.append(asyncio.create_task(runner, name=loop.name))
                try:
                    yield
                finally:
                    await stop_tasks(tasks)
        finally:
            await redis.aclose()

    async def broker_ready(app: FastAPI) -> bool:
        state: WorkerState = app.state.worker
        try:
            async with asyncio.timeout(2.0):
                await state.redis.ping()
            return True
        except Exception:
            return False

    async def loops_ready(app: FastAPI) -> bool:
        state: WorkerState = app.state.worker
        stale = settings.events_stale_seconds
        return all(beat.age() < stale for beat in state.heartbeats.values())

    return create_service_app(
        name=f"{name}-worker",
        title=f"{name} worker",
        settings=settings,
        lifespan=lifespan,
        readiness={"database": database_ready, "broker": broker_ready, "loops": loops_ready},
        openapi_url=None,
    )
