"""Reminder lateness: 10,000 pending reminders falling due over a short window, fired by the
todo worker as production runs it (``python -m todo_service.worker``, default settings).

Seeds the tasks through the service's own create path (``todo_service.service.add_task``),
each with one reminder at a random instant of the window, starts the worker replicas (two by
default: they share the work with ``SKIP LOCKED``), and watches the notifications table from
outside: a reminder's lateness is when its notification was first seen committed minus its
instant (the watcher polls every 100 ms, so the figures include up to 0.1 s of its own).
Checks that every reminder fired exactly once and that every ``reminder.due`` event reached
the tasks stream.

    .venv/bin/python -m bench.reminders [--reminders 10000] [--window 30] [--replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.support import (
    Service,
    clean_env,
    migrated_postgres,
    percentile,
    start_service,
    stop,
)
from scripts.processes import free_port
from shared.db import Database
from shared.events import TASKS_STREAM, Event, redis_client
from todo_service import service
from todo_service.schemas import TaskCreate


async def start_redis(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis_client(url)
    try:
        for _ in range(100):
            try:
                await client.ping()
                return process, url
            except (OSError, RedisError):
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise RuntimeError("redis-server did not start")


async def start_worker(index: int, url: str, redis_url: str, workdir: Path) -> Service:
    env = clean_env(
        workdir,
        HOSTNAME=f"bench-worker-{index}",
        TODO_ENVIRONMENT="production",
        TODO_DATABASE_URL=url,
        EVENTS_REDIS_URL=redis_url,
        TODO_LOG_LEVEL="WARNING",
    )
    return await start_service(f"worker-{index}", "todo_service.worker", env, workdir)


async def seed(db: Database, count: int, start: datetime, window: float, users: int) -> None:
    """``count`` tasks, each with one reminder at a random instant of the window."""
    rng = random.Random(16)
    instants = [start + timedelta(seconds=rng.uniform(0, window)) for _ in range(count)]
    queue: asyncio.Queue[tuple[int, datetime]] = asyncio.Queue()
    for n, instant in enumerate(instants):
        queue.put_nowait((n, instant))

    async def writer() -> None:
        while not queue.empty():
            n, instant = queue.get_nowait()
            data = TaskCreate.model_validate(
                {"title": f"reminder {n}", "reminders": [{"at": instant.isoformat()}]}
            )
            await service.add_task(db, f"bench-user-{n % users}", data=data)

    await asyncio.gather(*(writer() for _ in range(8)))


async def watch(db: Database, count: int, deadline: float) -> dict[int, tuple[datetime, float]]:
    """Each notification's reminder instant and when it was first seen (epoch seconds)."""
    seen: dict[int, tuple[datetime, float]] = {}
    last = 0
    while len(seen) < count and time.time() < deadline:
        row = await db.fetch_row(
            "SELECT coalesce(array_agg(id ORDER BY id), '{}'), "
            "coalesce(array_agg(remind_at ORDER BY id), '{}') "
            "FROM todo.notifications WHERE id > $1",
            last,
        )
        assert row is not None
        now = time.time()
        for notification_id, remind_at in zip(row[0], row[1], strict=True):
            seen[notification_id] = (remind_at, now)
            last = max(last, notification_id)
        await asyncio.sleep(0.1)
    return seen


async def count_reminder_events(redis: Redis) -> int:
    """The ``reminder.due`` events on the tasks stream (seeding the tasks also puts a
    ``task.created`` there for each)."""
    entries = await redis.xrange(TASKS_STREAM)
    return sum(Event.from_json(fields[b"event"]).type == "reminder.due" for _, fields in entries)


async def run(args: argparse.Namespace, url: str, workdir: Path) -> bool:
    redis_process, redis_url = await start_redis(workdir)
    db = Database.open(url, pool_size=10)
    workers: list[Service] = []
    try:
        # The workers run first, as in production: the reminders are added while they scan.
        workers = list(
            await asyncio.gather(
                *(start_worker(i, url, redis_url, workdir) for i in range(args.replicas))
            )
        )
        begun = time.monotonic()
        start = datetime.now(UTC) + timedelta(seconds=args.lead)
        await seed(db, args.reminders, start, args.window, args.users)
        seeded = time.monotonic() - begun
        print(f"seeded {args.reminders:,} tasks with a reminder in {seeded:.1f} s")
        if datetime.now(UTC) >= start:
            print("warning: the window began before the seeding ended (raise --lead)")
        deadline = (start + timedelta(seconds=args.window + 30)).timestamp()
        seen = await watch(db, args.reminders, deadline)
        lateness = sorted(max(0.0, at - remind.timestamp()) for remind, at in seen.values())
        row = await db.fetch_row("SELECT count(*), count(DISTINCT task_id) FROM todo.notifications")
        assert row is not None
        fired, distinct_tasks = row
        redis = redis_client(redis_url)
        published = 0
        for _ in range(50):  # the dispatcher publishes just after the commits
            published = await count_reminder_events(redis)
            if published >= fired:
                break
            await asyncio.sleep(0.2)
        await redis.aclose()
    finally:
        for worker in workers:
            await stop(worker.process, signal.SIGTERM)
        await db.dispose()
        await stop(redis_process)

    p50 = percentile(lateness, 0.50) if lateness else float("nan")
    p99 = percentile(lateness, 0.99) if lateness else float("nan")
    worst = lateness[-1] if lateness else float("nan")
    print(
        f"{args.reminders:,} reminders over {args.window:.0f} s, {args.replicas} worker "
        f"replica(s), poll interval 1 s (the default)"
    )
    print(
        f"fired {fired:,} notifications for {distinct_tasks:,} tasks; "
        f"{published:,} reminder.due events on the stream"
    )
    print(f"lateness p50 {p50:.3f} s, p99 {p99:.3f} s, max {worst:.3f} s (target p99 <= 5 s)")
    ok = fired == args.reminders == distinct_tasks == published and p99 <= 5.0
    print("met" if ok else "NOT met")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds they fall due over")
    parser.add_argument("--lead", type=float, default=25.0, help="seconds before the window")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    # Migrations run their own event loop: before this one starts.
    with migrated_postgres("todo-reminders-bench-", services=["todo_service"]) as (workdir, url):
        ok = asyncio.run(run(args, url, workdir))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
