"""What the task events cost the create path: the REST create's statement
(``todo_service.statements.CREATE_TASK``, each its own transaction) from ``--connections``
connections for one user (the hot-path benchmark's create: every request waits for the
user's outbox lock) or for as many users, with the task-event triggers of migration 0004
enabled and disabled (the create as it was before them), alternating, ``--rounds`` times.

Starts an embedded PostgreSQL of its own in a temporary directory, migrates the todo schema,
and prints creates/s, p50 / p99 ms and PostgreSQL CPU ms per create for each run, then the
medians.

    .venv/bin/python -m bench.task_events                    # 3 rounds of 4 s per run

Not part of the test suite; figures go to bench/RESULTS.md ("## Task events").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.support import migrated_postgres, postgres_cpu_seconds
from todo_service.statements import CREATE_TASK

TRIGGERS = ("tasks_event_write", "tasks_event_update")


async def _set_events(url: str, enabled: bool) -> None:
    connection = await asyncpg.connect(url)
    try:
        for trigger in TRIGGERS:
            verb = "ENABLE" if enabled else "DISABLE"
            await connection.execute(f"ALTER TABLE todo.tasks {verb} TRIGGER {trigger}")
    finally:
        await connection.close()


async def _run(
    url: str, pg_data: Path, *, one_user: bool, connections: int, seconds: float
) -> tuple[float, float, float, float]:
    """creates/s, p50 ms, p99 ms, PostgreSQL CPU ms per create."""
    pool = await asyncpg.create_pool(url, min_size=connections, max_size=connections)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(index: int) -> None:
        user = "bench-creator" if one_user else f"bench-creator-{index}"
        async with pool.acquire() as connection:
            statement = await connection.prepare(CREATE_TASK)
            while time.monotonic() < stop:
                started = time.perf_counter()
                await statement.fetchrow(
                    user, "bench create", None, "high", ["bench"], None, "none", datetime.now(UTC),
                    "[]", None, None,
                )  # fmt: skip
                latencies.append(time.perf_counter() - started)

    try:
        cpu_before, started = postgres_cpu_seconds(pg_data), time.monotonic()
        await asyncio.gather(*(client(index) for index in range(connections)))
        elapsed, cpu = time.monotonic() - started, postgres_cpu_seconds(pg_data) - cpu_before
    finally:
        await pool.close()
    latencies.sort()
    count = len(latencies)
    return (
        count / elapsed,
        1000 * latencies[count // 2],
        1000 * latencies[int(count * 0.99)],
        1000 * cpu / count,
    )


async def _main(url: str, pg_data: Path, args: argparse.Namespace) -> None:
    runs: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for round_number in range(1, args.rounds + 1):
        for one_user in (True, False):
            for enabled in (False, True):
                await _set_events(url, enabled)
                figures = await _run(
                    url,
                    pg_data,
                    one_user=one_user,
                    connections=args.connections,
                    seconds=args.duration,
                )
                key = (
                    "one user" if one_user else f"{args.connections} users",
                    "events" if enabled else "no events",
                )
                runs.setdefault(key, []).append(figures)
                rate, p50, p99, cpu = figures
                print(
                    f"round {round_number} {key[0]:<9} {key[1]:<9} {rate:6.0f} creates/s  "
                    f"p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  PostgreSQL CPU {cpu:.3f} ms/create",
                    flush=True,
                )
    print("\n| load | triggers | creates/s | p50 / p99 ms | PostgreSQL CPU ms/create |")
    print("|---|---|---|---|---|")
    for (load, triggers), figures in runs.items():
        rate, p50, p99, cpu = (statistics.median(f[i] for f in figures) for i in range(4))
        print(f"| {load} | {triggers} | {rate:.0f} | {p50:.2f} / {p99:.2f} | {cpu:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with migrated_postgres("bench-task-events-", ["todo_service"]) as (workdir, url):
        raw = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        asyncio.run(_main(raw, workdir / "pgdata", args))


if __name__ == "__main__":
    main()
