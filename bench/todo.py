"""Load benchmark of the todo service: list pages (first and deep), search, create, update.

Starts its own embedded PostgreSQL in a temporary directory, seeds tasks for one measured user
and many others, runs ``python -m todo_service`` as a real uvicorn process (one worker) on a
free 127.0.0.1 port, and drives it with aiohttp at a fixed number of concurrent clients for a
bounded time per scenario. Prints req/s and p50/p99 latency per scenario, and the query plans
(EXPLAIN ANALYZE, BUFFERS) of the list and search queries exactly as the service builds them.

    .venv/bin/python bench/todo.py                      # full run (about 1-2 minutes)
    .venv/bin/python bench/todo.py --duration 3 --user-tasks 2000 --other-tasks 20000

Not part of the test suite; figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import jwt

from bench.support import (
    Request,
    Tally,
    closed_loop,
    cpu_seconds,
    migrated_postgres,
    postgres_cpu_seconds,
    stop,
    wait_ready,
)
from scripts.processes import free_port
from shared.clock import utcnow
from todo_service.listing import page_statement
from todo_service.schemas import TaskQuery

USER = "bench-user"
ISSUER = "bench-issuer"
AUDIENCE = "bench-audience"
SEARCH_TERM = "invoice"

# Titles are "<verb> <noun>", so a noun matches about 1 in 20 tasks.
VERBS = ["buy", "call", "email", "fix", "plan", "review", "write", "book", "pay", "clean"]
NOUNS = [
    "groceries", "invoice", "dentist", "report", "car", "garden", "tickets", "taxes",
    "presentation", "kitchen", "birthday gift", "insurance", "laptop", "flight", "rent",
    "newsletter", "budget", "meeting notes", "bike", "library books",
]  # fmt: skip
TAGS = ["work", "home", "errands", "health", "finance", "family", "urgent", "someday"]


def seed_sql(user_tasks: int, other_tasks: int, other_users: int, user: str = USER) -> str:
    """One INSERT ... SELECT: the measured user's rows interleaved with everyone else's, in
    creation order, as a real table would hold them."""
    total = user_tasks + other_tasks
    stride = total / user_tasks
    verbs = ",".join(f"'{v}'" for v in VERBS)
    nouns = ",".join(f"'{n}'" for n in NOUNS)
    tags = ",".join(f"'{t}'" for t in TAGS)
    # Every interpolated value is a constant of this script or an int.
    return f"""
    INSERT INTO todo.tasks (user_id, title, description, completed, completed_at, priority,
                            tags, due_at, recurrence, created_at, updated_at, version)
    SELECT
        CASE WHEN floor(g / {stride}) <> floor((g - 1) / {stride}) THEN '{user}'
             ELSE 'other-' || (g % {other_users}) END,
        (ARRAY[{verbs}])[1 + (g * 7) % {len(VERBS)}] || ' '
            || (ARRAY[{nouns}])[1 + (g * 13 + g / 97) % {len(NOUNS)}],
        CASE WHEN g % 3 = 0 THEN 'Remember the details for item ' || g END,
        g % 4 = 0,
        CASE WHEN g % 4 = 0 THEN created END,
        (ARRAY['low','medium','high'])[1 + g % 3]::todo.task_priority,
        CASE WHEN g % {len(TAGS)} = (g / 3) % {len(TAGS)}
             THEN ARRAY[(ARRAY[{tags}])[1 + g % {len(TAGS)}]]
             ELSE ARRAY[(ARRAY[{tags}])[1 + g % {len(TAGS)}],
                        (ARRAY[{tags}])[1 + (g / 3) % {len(TAGS)}]] END,
        CASE WHEN g % 5 <> 0 THEN created + (g % 60) * interval '1 day' END,
        'none',
        created, created, 1
    FROM generate_series(1, {total}) AS g,
         LATERAL (SELECT now() - ({total} - g) * interval '3 minutes' AS created) AS c;
    """  # noqa: S608


class CpuMeter:
    """CPU seconds used so far by the service process, PostgreSQL (postmaster and every
    backend, also those that exited) and this load client: where a request's cost goes."""

    def __init__(self, service_pid: int, pg_data: Path) -> None:
        self.service_pid = service_pid
        self.pg_data = pg_data

    def sample(self) -> dict[str, float]:
        return {
            "service": cpu_seconds(self.service_pid),
            "postgres": postgres_cpu_seconds(self.pg_data),
            "client": time.process_time(),
        }


@dataclass
class Result(Tally):
    cpu: dict[str, float] = field(default_factory=dict)

    HEADER = (
        "| scenario               | requests | errors |    req/s |  p50 ms |  p99 ms "
        "| CPU ms/req: service | postgres | client |\n"
        "|------------------------|----------|--------|----------|---------|---------"
        "|---------------------|----------|--------|"
    )

    def row(self) -> str:
        count = len(self.latencies)
        handled = max(1, count + self.errors)
        per = {name: used / handled * 1000 for name, used in self.cpu.items()}
        return (
            f"| {self.name:<22} | {count:>8} | {self.errors:>6} | {self.rate:>8.0f} "
            f"| {self.p50_ms:>7.2f} | {self.p99_ms:>7.2f} | {per.get('service', 0):>19.2f} "
            f"| {per.get('postgres', 0):>8.2f} | {per.get('client', 0):>6.2f} |"
        )


async def load(
    name: str,
    make_request: Request,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    meter: CpuMeter,
) -> Result:
    """``concurrency`` clients in closed loops; the first ``warmup`` seconds are not counted."""
    result = Result(name)
    before: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        measure_from = started + warmup
        deadline = measure_from + duration

        async def start_meter() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            before.update(meter.sample())

        await asyncio.gather(
            start_meter(),
            closed_loop(
                http,
                result,
                make_request,
                clients=concurrency,
                measure_from=measure_from,
                deadline=deadline,
            ),
        )
        after = meter.sample()
        result.elapsed = time.perf_counter() - measure_from
        result.cpu = {name: after[name] - before[name] for name in after}
    return result


def next_link(link_header: str | None) -> str | None:
    if not link_header:
        return None
    match = re.match(r'<([^>]+)>;\s*rel="next"', link_header)
    return match.group(1) if match else None


async def explain(url: str, title: str, query: TaskQuery) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement ``list_tasks`` runs for ``query``."""
    statement = page_statement(USER, query, utcnow())
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        plan = await connection.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", *statement.args
        )
    finally:
        await connection.close()
    return "\n".join([f"### {title}", "", "```", *(row[0] for row in plan), "```", ""])


async def read_plans(url: str, deep: str, depth: int) -> list[str]:
    deep_cursor = dict(p.split("=", 1) for p in deep.split("?", 1)[1].split("&"))["cursor"]
    return [
        await explain(url, "First page: GET /api/tasks?limit=50", TaskQuery(limit=50)),
        await explain(
            url, f"Page {depth} deep (keyset cursor)", TaskQuery(limit=50, cursor=deep_cursor)
        ),
        await explain(
            url,
            f"Search: GET /api/tasks?limit=50&q={SEARCH_TERM}",
            TaskQuery(limit=50, q=SEARCH_TERM),
        ),
    ]


async def seed(url: str, args: argparse.Namespace) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(seed_sql(args.user_tasks, args.other_tasks, args.other_users))
        await connection.execute("VACUUM (ANALYZE) todo.tasks")
        counts = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE user_id = $1) AS mine, count(*) AS total "
            "FROM todo.tasks",
            USER,
        )
    finally:
        await connection.close()
    assert counts is not None
    print(
        f"seeded {counts['mine']} tasks for {USER} and {counts['total'] - counts['mine']}"
        f" for {args.other_users} other users in {time.perf_counter() - started:.1f}s"
    )


async def run(args: argparse.Namespace, url: str, pg_data: Path) -> None:
    await seed(url, args)
    secret = secrets.token_urlsafe(48)
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "ENVIRONMENT": "production",
        "TODO_DATABASE_URL": url,
        "TODO_LOG_LEVEL": "WARNING",
        "TODO_EXTRA_TRUSTED_ISSUERS": (
            f'[{{"issuer":"{ISSUER}","audience":"{AUDIENCE}","hs256_secret":"{secret}"}}]'
        ),
    }
    env.pop("TODO_METRICS_PORT", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "todo_service", env=env, start_new_session=True
    )
    try:
        now = int(time.time())
        token = jwt.encode(
            {"sub": USER, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600},
            secret,
            algorithm="HS256",
        )
        base = f"http://127.0.0.1:{port}"
        await wait_ready("the todo service", base, process)
        meter = CpuMeter(process.pid, pg_data)
        await report(args, base, {"Authorization": f"Bearer {token}"}, url, meter)
    finally:
        await stop(process)


async def report(
    args: argparse.Namespace, base: str, headers: dict[str, str], url: str, meter: CpuMeter
) -> None:
    first_page = "/api/tasks?limit=50"
    search = f"/api/tasks?limit=50&q={SEARCH_TERM}"

    async with aiohttp.ClientSession(headers=headers) as http:
        # Follow the cursors to the deep page; the tasks on the way are the ones updated later
        # (spread over thousands of rows, so the updates measure writes, not lock queues).
        deep = first_page
        ids: list[int] = []
        for _ in range(args.depth):
            async with http.get(base + deep) as response:
                response.raise_for_status()
                ids += [task["id"] for task in await response.json()]
                following = next_link(response.headers.get("Link"))
            if following is None:
                raise RuntimeError(f"fewer than {args.depth + 1} pages of 50 tasks")
            deep = following

    def get(path: str) -> Request:
        async def request(http: aiohttp.ClientSession, _: int) -> bool:
            async with http.get(base + path, headers=headers) as response:
                await response.read()
                return response.status == 200

        return request

    async def create(http: aiohttp.ClientSession, sequence: int) -> bool:
        body = {"title": f"bench task {sequence}", "priority": "high", "tags": ["bench"]}
        async with http.post(f"{base}/api/tasks", json=body, headers=headers) as response:
            await response.read()
            return response.status == 201

    async def update(http: aiohttp.ClientSession, sequence: int) -> bool:
        task_id = ids[sequence % len(ids)]
        body = {"title": f"renamed {sequence}"}
        async with http.patch(f"{base}/api/tasks/{task_id}", json=body, headers=headers) as r:
            await r.read()
            return r.status == 200

    async def healthz(http: aiohttp.ClientSession, _: int) -> bool:
        async with http.get(f"{base}/healthz") as response:
            await response.read()
            return response.status == 200

    scenarios: list[tuple[str, Request]] = [
        # The floor on this machine: uvicorn, the middleware and FastAPI, no token, no database.
        ("floor: GET /healthz", healthz),
        ("first page (limit=50)", get(first_page)),
        (f"page {args.depth} deep", get(deep)),
        (f"search q={SEARCH_TERM}", get(search)),
        ("create", create),
        ("update (PATCH)", update),
    ]
    if args.only:
        wanted = [name for name, _ in scenarios if any(w in name for w in args.only)]
        scenarios = [(name, request) for name, request in scenarios if name in wanted]
    results = []
    plans: list[str] = []
    for name, request in scenarios:
        if name == "create" and not args.only:
            # The plans of the reads, on the data the reads were measured on.
            plans = await read_plans(url, deep, args.depth)
        result = await load(
            name,
            request,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            meter=meter,
        )
        print(result.row(), flush=True)
        results.append(result)

    print()
    print(
        f"{args.concurrency} concurrent clients, {args.duration:.0f} s per scenario after "
        f"{args.warmup:.0f} s warm-up, one uvicorn worker, {os.cpu_count()} CPUs"
    )
    print(Result.HEADER)
    for result in results:
        print(result.row())
    if args.only:
        return
    first, deep_result = results[1], results[2]
    ratio = deep_result.p50_ms / first.p50_ms if first.p50_ms else float("nan")
    print(f"\ndeep/first p50 ratio: {ratio:.2f} (target <= 1.3)")
    first_rate = len(first.latencies) / first.elapsed if first.elapsed else 0
    print(f"first page: {first_rate:.0f} req/s (target >= 1000)")

    print()
    print("\n".join(plans))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per scenario"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured first")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--user-tasks", type=int, default=10_000)
    parser.add_argument("--other-tasks", type=int, default=100_000)
    parser.add_argument("--other-users", type=int, default=1_000)
    parser.add_argument(
        "--depth", type=int, default=150, help="pages of 50 to follow for the deep page"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only the scenarios whose name contains NAME (repeatable), no plans",
    )
    args = parser.parse_args()
    if args.user_tasks < 50 * (args.depth + 1):
        parser.error("--user-tasks must hold --depth + 1 pages of 50")
    with migrated_postgres("todo-bench-", ["todo_service"]) as (workdir, url):
        asyncio.run(run(args, url, workdir / "pgdata"))


if __name__ == "__main__":
    main()
