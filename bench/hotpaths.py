"""The platform's hot paths through the gateway, this checkout against an earlier one.

Starts one embedded PostgreSQL in a temporary directory and migrates every service; registers
two accounts through the gateway, seeds ``--user-tasks`` tasks for the first among
``--other-tasks`` of ``--other-users`` other users (``bench.todo.seed_sql``). Then, for each
of ``--rounds`` rounds and each checkout in turn (``--before TREE`` first, when given, then
this one), runs the real ``auth_service``, ``todo_service`` and ``gateway`` processes of that
checkout (``tests/e2e/stack.py``, one uvicorn worker each, the gateway's rate limits far
above what the run reaches, logs at WARNING) and drives the gateway with
``wrk -t1 -c<connections> -d<duration>s``:

    first page   GET   /api/tasks?limit=50
    deep page    GET   /api/tasks?limit=50&cursor=...   (--depth pages of 50 in)
    create       POST  /api/tasks   a new Idempotency-Key on every request (second account)
    me           GET   /api/auth/me

Only one checkout's processes run at a time, and the checkouts alternate, so a busy
neighbour on a shared machine weighs on both alike. Prints every run with the load average
at its start, then the medians per checkout and the targets.

    .venv/bin/python -m bench.hotpaths --before ../h13-before        # 3 rounds, 10 s each
    .venv/bin/python -m bench.hotpaths --rounds 1 --duration 3       # this checkout alone
    .venv/bin/python -m bench.hotpaths --before ../h13-before --scenario "first page"

Not part of the test suite; figures go to bench/RESULTS.md ("## Hot paths").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from bench.gateway import children_cpu, run_wrk
from bench.support import cpu_seconds, migrated_postgres, new_account, postgres_cpu_seconds
from bench.todo import next_link, seed_sql
from tests.e2e.stack import REPO, Stack

PASSWORD = "hot paths benchmark 1234"
FIRST_PAGE = "/api/tasks?limit=50"
SCENARIOS = ("first page", "deep page", "create", "me")
_CREATE = """
counter = 0
wrk.method = "POST"
wrk.body = '{{"title": "bench create", "priority": "high", "tags": ["bench"]}}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "{prefix}-" .. counter
  return wrk.format()
end
"""


@dataclass(frozen=True)
class Run:
    checkout: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    load: float  # the one-minute load average when the run started
    # CPU milliseconds per request: the gateway, the service behind it, PostgreSQL, wrk.
    gateway_cpu: float
    service_cpu: float
    postgres_cpu: float
    wrk_cpu: float

    def capacity(self, cores: int) -> float:
        """req/s that these CPU costs allow on an idle machine: each one-worker server bounded
        by one core, everything together by ``cores``. A model, not a measurement."""
        spent = self.gateway_cpu + self.service_cpu + self.postgres_cpu + self.wrk_cpu
        return min(1000 / self.gateway_cpu, 1000 / self.service_cpu, cores * 1000 / spent)


async def _account(gateway: str, email: str) -> tuple[str, str]:
    """Register (once) and log in: the account's id and an access token."""
    async with aiohttp.ClientSession() as http:
        login = await new_account(http, gateway, email, PASSWORD, again=True)
    return login["user"]["id"], login["access_token"]


async def _deep_page(gateway: str, token: str, depth: int) -> str:
    """The path of the page ``depth`` pages of 50 in, by following ``Link: rel="next"``."""
    path = FIRST_PAGE
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(depth):
            async with http.get(gateway + path) as response:
                response.raise_for_status()
                following = next_link(response.headers.get("Link"))
            if following is None:
                raise RuntimeError(f"fewer than {depth + 1} pages of 50 tasks")
            path = following
    return path


async def _seed(url: str, user: str, args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await connection.execute(
            seed_sql(args.user_tasks, args.other_tasks, args.other_users, user=user)
        )
        await connection.execute("VACUUM (ANALYZE) todo.tasks")
    finally:
        await connection.close()


def _stack(url: str, workdir: Path, tree: Path) -> Stack:
    quiet = {"PYTHONPATH": str(tree)}
    return Stack(
        url,
        workdir,
        env={
            "auth": {**quiet, "AUTH_LOG_LEVEL": "WARNING"},
            "todo": {**quiet, "TODO_LOG_LEVEL": "WARNING"},
            "gateway": {
                **quiet,
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_RATE_LIMIT_USER": "100000000/minute",
                "GATEWAY_RATE_LIMIT_CHAT_TURN": "100000000/minute",
                "GATEWAY_RATE_LIMIT_AUTH_IP": "100000000/minute",
            },
        },
    )


def _wrk_cpu() -> float:
    """CPU seconds of the finished child processes: across one wrk run, that run's."""
    return sum(children_cpu())


def _round(
    name: str,
    stack: Stack,
    args: argparse.Namespace,
    workdir: Path,
    pg_data: Path,
    round_number: int,
) -> list[Run]:
    stack.start("auth", "todo")
    stack.start("gateway")
    try:
        gateway = stack.url("gateway")
        _, token = asyncio.run(_account(gateway, "reader@bench.example"))
        _, creator = asyncio.run(_account(gateway, "creator@bench.example"))
        deep = asyncio.run(_deep_page(gateway, token, args.depth))
        prefix = f"{name}-{round_number}-{uuid.uuid4().hex[:8]}"
        plans = {
            "first page": (FIRST_PAGE, token, "", "todo"),
            "deep page": (deep, token, "", "todo"),
            "create": ("/api/tasks", creator, _CREATE.format(prefix=prefix), "todo"),
            "me": ("/api/auth/me", token, "", "auth"),
        }
        runs = []
        for scenario in args.scenarios:
            path, bearer, lua, service = plans[scenario]
            url = gateway + path
            run_wrk(url, bearer, args.connections, 1.0, workdir, lua)  # warm-up
            load = os.getloadavg()[0]
            pids = (stack.pid("gateway"), stack.pid(service))
            cpu_before = [*map(cpu_seconds, pids), postgres_cpu_seconds(pg_data), _wrk_cpu()]
            requests, seconds, p50, p99 = run_wrk(
                url, bearer, args.connections, args.duration, workdir, lua
            )
            cpu_after = [*map(cpu_seconds, pids), postgres_cpu_seconds(pg_data), _wrk_cpu()]
            gateway_cpu, service_cpu, postgres_cpu, wrk_cpu = (
                1000 * (after - before) / requests
                for before, after in zip(cpu_before, cpu_after, strict=True)
            )
            run = Run(
                name, scenario, requests / seconds, p50, p99, load,
                gateway_cpu, service_cpu, postgres_cpu, wrk_cpu,
            )  # fmt: skip
            print(
                f"round {round_number} {name:<7} {scenario:<11} {run.rps:7.0f} req/s  "
                f"p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  load {load:5.2f}  CPU ms/req: "
                f"gateway {gateway_cpu:.2f}, {service} {service_cpu:.2f}, "
                f"postgres {postgres_cpu:.2f}, wrk {wrk_cpu:.2f}",
                flush=True,
            )
            runs.append(run)
        return runs
    finally:
        stack.close()


def _summary(runs: list[Run], checkouts: list[str]) -> str:
    cores = os.cpu_count() or 1
    measured = [s for s in SCENARIOS if any(r.scenario == s for r in runs)]

    def median(checkout: str, scenario: str, figure: str) -> float:
        chosen = [r for r in runs if (r.checkout, r.scenario) == (checkout, scenario)]
        if figure == "capacity":
            return statistics.median(r.capacity(cores) for r in chosen)
        return statistics.median(getattr(r, figure) for r in chosen)

    lines = [
        "| scenario | "
        + " | ".join(
            f"{c} req/s | {c} p50 / p99 ms | {c} CPU ms/req: gateway, service, postgres, wrk "
            f"| {c} CPU-bound req/s"
            for c in checkouts
        )
        + " |",
        "|---" * (1 + 4 * len(checkouts)) + "|",
    ]
    for scenario in measured:
        cells = [
            f"{median(c, scenario, 'rps'):.0f} | {median(c, scenario, 'p50_ms'):.2f} / "
            f"{median(c, scenario, 'p99_ms'):.2f} | {median(c, scenario, 'gateway_cpu'):.2f}, "
            f"{median(c, scenario, 'service_cpu'):.2f}, {median(c, scenario, 'postgres_cpu'):.2f}, "
            f"{median(c, scenario, 'wrk_cpu'):.2f} | {median(c, scenario, 'capacity'):.0f}"
            for c in checkouts
        ]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    loads = [r.load for r in runs]
    lines.append(
        "\nCPU-bound req/s: what the measured CPU per request allows on an idle machine, each "
        f"one-worker server bounded by one core, all processes (wrk included) by {cores} cores."
    )
    lines.append(
        f"\nload average (1 min) at the start of a run: median {statistics.median(loads):.2f}, "
        f"min {min(loads):.2f}, max {max(loads):.2f}"
    )
    after = checkouts[-1]
    lines.append(f"\nTargets ({after}):")
    if len(checkouts) > 1 and "first page" in measured:
        ratio = median(after, "first page", "rps") / median(checkouts[0], "first page", "rps")
        lines.append(f"- first page: {ratio:.2f}x of {checkouts[0]} (target >= 0.95x)")
    for scenario, target in (("create", 800), ("me", 1300)):
        if scenario in measured:
            lines.append(
                f"- {scenario}: {median(after, scenario, 'rps'):.0f} req/s measured, "
                f"{median(after, scenario, 'capacity'):.0f} CPU-bound (target >= {target})"
            )
    if {"first page", "deep page"} <= set(measured):
        deep = median(after, "deep page", "p50_ms") / median(after, "first page", "p50_ms")
        lines.append(f"- deep page p50: {deep:.2f}x the first page's (target <= 1.1x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="an earlier checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--user-tasks", type=int, default=10_000)
    parser.add_argument("--other-tasks", type=int, default=100_000)
    parser.add_argument("--other-users", type=int, default=1_000)
    parser.add_argument("--depth", type=int, default=150, help="pages of 50 for the deep page")
    parser.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    args = parser.parse_args()
    args.scenarios = args.scenarios or list(SCENARIOS)
    if args.user_tasks < 50 * (args.depth + 1):
        parser.error("--user-tasks must hold --depth + 1 pages of 50")
    trees = {"before": args.before.resolve()} if args.before else {}
    trees["after"] = REPO
    with (
        migrated_postgres("bench-hotpaths-") as (workdir, url),
        tempfile.TemporaryDirectory(prefix="bench-hotpaths-wrk-") as scratch,
    ):
        setup = _stack(url, workdir, REPO)
        setup.start("auth")
        setup.start("gateway")
        try:
            reader, _ = asyncio.run(_account(setup.url("gateway"), "reader@bench.example"))
            asyncio.run(_account(setup.url("gateway"), "creator@bench.example"))
        finally:
            setup.close()
        asyncio.run(_seed(url, reader, args))
        runs: list[Run] = []
        for round_number in range(1, args.rounds + 1):
            for name, tree in trees.items():
                stack = _stack(url, workdir, tree)
                runs += _round(name, stack, args, Path(scratch), workdir / "pgdata", round_number)
        print()
        print(
            f"wrk -t1 -c{args.connections} -d{args.duration:.0f}s through the gateway, "
            f"medians of {args.rounds} alternating rounds, one uvicorn worker per process, "
            f"{os.cpu_count()} CPUs; {args.user_tasks} of "
            f"{args.user_tasks + args.other_tasks} tasks are the reader's"
        )
        print(_summary(runs, list(trees)))


if __name__ == "__main__":
    main()
