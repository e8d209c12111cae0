"""The web client's tasks page through the gateway: latency for one session, pages/s for many.

Starts its own embedded PostgreSQL in a temporary directory, migrates every service, and runs
the real processes with the end-to-end harness (``tests/e2e/stack.py``): ``auth_service``,
``todo_service``, ``web_service`` and ``gateway``, one uvicorn worker each, on free 127.0.0.1
ports (the chat service is not on this page's path). Registers ``--sessions`` users with
``--tasks`` tasks each and signs each in through the gateway's web pages (setup, not
measured). Then:

1. one session: ``--requests`` sequential ``GET /tasks`` (after ``--warmup``): p50, p95, p99;
2. ``--sessions`` sessions at once, each a closed loop of ``GET /tasks`` for ``--duration``
   seconds: pages/s and latency.

Every answer must be a 200 page listing the session's tasks. Reports each process's CPU
seconds per page (gateway, todo, web, auth, PostgreSQL) and the machine's load average.

    .venv/bin/python -m bench.web                               # 50 tasks, 16 sessions, 20 s
    .venv/bin/python -m bench.web --duration 5 --requests 200   # a short run

Not part of the test suite; figures go to bench/RESULTS.md ("## Web").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.support import (
    cpu_seconds,
    migrated_postgres,
    new_account,
    percentile,
    postgres_cpu_seconds,
)
from tests.e2e.stack import Stack

PASSWORD = "web bench password 1234"
SERVICES = ("gateway", "web", "todo", "auth")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Session:
    """One browser: its cookies by hand (aiohttp's jar ignores cookies of IP hosts)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        # As a browser navigating sends them.
        headers = {"Sec-Fetch-Site": "same-origin", "Accept": "text/html,application/xhtml+xml"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        for name, morsel in response.cookies.items():
            self.cookies[name] = morsel.value

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(
            self.base + path, headers=self._headers(), allow_redirects=False
        ) as response:
            body = await response.text()
            self._keep(response)
            return response.status, body

    async def post(self, path: str, data: dict[str, str]) -> int:
        async with self.http.post(
            self.base + path, data=data, headers=self._headers(), allow_redirects=False
        ) as response:
            await response.read()
            self._keep(response)
            return response.status


async def prepare(http: aiohttp.ClientSession, base: str, email: str, tasks: int) -> Session:
    token = (await new_account(http, base, email, PASSWORD))["access_token"]
    for n in range(tasks):
        async with http.post(
            f"{base}/api/tasks",
            json={"title": f"Task {n} of {email}", "tags": ["bench"], "priority": "medium"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201, await response.text()
    session = Session(http, base)
    status, page = await session.get("/signin")
    assert status == 200, page
    match = CSRF.search(page)
    assert match is not None
    status = await session.post(
        "/signin", {"csrf_token": match.group(1), "email": email, "password": PASSWORD}
    )
    assert status == 303, status
    return session


async def page(session: Session, tasks: int) -> float:
    started = time.perf_counter()
    status, body = await session.get("/tasks")
    elapsed = time.perf_counter() - started
    if status != 200 or body.count('data-testid="task-row"') != tasks:
        raise RuntimeError(f"bad page: {status} {body[:300]}")
    return elapsed


def cpu(stack: Stack, pgdata: Path) -> dict[str, float]:
    figures = {name: cpu_seconds(stack.pid(name)) for name in SERVICES}
    figures["postgres"] = postgres_cpu_seconds(pgdata)
    return figures


def report(label: str, latencies: list[float], seconds: float, used: dict[str, float]) -> None:
    pages = len(latencies)
    print(f"\n{label}: {pages} pages in {seconds:.1f} s = {pages / seconds:.0f} pages/s")
    print(
        "  latency ms: p50 {:.1f}  p95 {:.1f}  p99 {:.1f}".format(
            *(percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
        )
    )
    print(
        "  CPU ms a page: " + "  ".join(f"{name} {1000 * used[name] / pages:.2f}" for name in used)
    )


async def run(args: argparse.Namespace, workdir: Path, url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="web-bench-logs-") as logs:
        # The sign-ins of the setup all come from this one address.
        stack = Stack(url, Path(logs), env={"web": {"WEB_AUTH_POST_LIMIT": "100000"}})
        try:
            stack.start("auth", "todo", "web")
            stack.start("gateway")
            base = stack.url("gateway")
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                sessions = [
                    await prepare(http, base, f"user{n}@example.com", args.tasks)
                    for n in range(args.sessions)
                ]
                one = sessions[0]
                for _ in range(args.warmup):
                    await page(one, args.tasks)
                before, started = cpu(stack, workdir / "pgdata"), time.perf_counter()
                latencies = [await page(one, args.tasks) for _ in range(args.requests)]
                seconds = time.perf_counter() - started
                after = cpu(stack, workdir / "pgdata")
                report(
                    "one session",
                    latencies,
                    seconds,
                    {k: after[k] - before[k] for k in after},
                )

                concurrent: list[float] = []
                deadline = time.perf_counter() + args.duration

                async def loop(session: Session) -> None:
                    while time.perf_counter() < deadline:
                        concurrent.append(await page(session, args.tasks))

                before, started = cpu(stack, workdir / "pgdata"), time.perf_counter()
                await asyncio.gather(*(loop(s) for s in sessions))
                seconds = time.perf_counter() - started
                after = cpu(stack, workdir / "pgdata")
                report(
                    f"{args.sessions} sessions",
                    concurrent,
                    seconds,
                    {k: after[k] - before[k] for k in after},
                )
            print(f"\nload average: {os.getloadavg()}")
        finally:
            stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    # Migrations run their own event loop: before ours.
    with migrated_postgres("web-bench-") as (workdir, url):
        asyncio.run(run(args, workdir, url))


if __name__ == "__main__":
    main()
