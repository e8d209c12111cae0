"""Mixed load through the gateway: the whole platform as a population of users drives it.

Starts its own embedded PostgreSQL in a temporary directory, migrates every service, and runs
the real processes with the end-to-end harness (``tests/e2e/stack.py``): ``auth_service``,
``todo_service`` (with its MCP server), ``chat_service`` (``CHAT_AGENT=rules``, an MCP client
of todo) and ``gateway``, one uvicorn worker each, on free 127.0.0.1 ports. Registers
``--users`` accounts (setup, not measured); then the users arrive one by one over the
``--warmup`` seconds (not measured), each logs in and repeats this cycle until ``--duration``
measured seconds have passed (a closed loop: no pause unless ``--think-ms``; each user at most
``--max-cycles`` cycles; only requests sent inside the measured window are counted):

    create    POST  /api/tasks                  {"title", "priority", "tags"}
    list      GET   /api/tasks?status=pending&limit=20
    update    PATCH /api/tasks/{id}             {"title", "priority"}
    complete  PATCH /api/tasks/{id}/complete
    chat      POST  /api/chat  every --chat-every cycles, in one conversation per user,
                               alternately "add ..." (add_task) and "what's pending?" (list_tasks)
    login     POST  /api/auth/login  every --login-every cycles (the new token is used after)

The gateway's rate limits are on, set for the run with ``GATEWAY_RATE_LIMIT_USER`` and
``GATEWAY_RATE_LIMIT_AUTH_IP`` (``--rate-limit-user``, ``--rate-limit-auth-ip``), above what
the run can reach: the limiter's cost is in the figures and no request is refused by it.

Reports, per operation: requests, non-2xx answers (by status), req/s, p50/p95/p99 latency;
acknowledged creates (the REST 201s and the chat's add_task results) against the rows in
``todo.tasks`` for the run's users, queried directly at the end; each service's peak memory
(``VmHWM`` from ``/proc/<pid>/status``) and CPU seconds; the load generator's own CPU and the
machine's load average. Exits 1 when any request failed or the rows do not match.

    .venv/bin/python -m bench.load                              # 60 s, 64 users (the issue's)
    .venv/bin/python -m bench.load --duration 15 --users 16     # a short run

Not part of the test suite; figures go to bench/RESULTS.md ("## Load").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bench.support import cpu_seconds, migrated_postgres, percentile, postgres_cpu_seconds
from shared.db import create_engine
from tests.e2e.stack import Stack

OPERATIONS = ("login", "list", "create", "update", "complete", "chat")
SERVICES = ("gateway", "auth", "todo", "chat")
PASSWORD = "load test password 1234"
CHAT_ADDS = ("buy milk", "call the dentist", "water the plants", "book the flights")
PRIORITIES = ("low", "medium", "high")


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Operation:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # a few failed answers, to read

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


@dataclass
class Results:
    recording: bool = False
    operations: dict[str, Operation] = field(
        default_factory=lambda: {name: Operation() for name in OPERATIONS}
    )
    # Every acknowledged create, warm-up included: what the database must hold.
    created: set[int] = field(default_factory=set)
    chat_created: set[int] = field(default_factory=set)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds in the measured window

    def record(self, name: str, status: int, elapsed: float, body: str | None) -> None:
        operation = self.operations[name]
        operation.statuses[status] += 1
        operation.latencies.append(elapsed)
        if not 200 <= status < 300 and len(operation.samples) < 3:
            operation.samples.append(f"{status}: {(body or '')[:300]}")


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident set size (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


# --- the virtual users ------------------------------------------------------------------------


@dataclass
class User:
    email: str
    id: str = ""
    token: str = ""
    conversation: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Client:
    """Timed requests through the gateway; every answer is recorded, none raises."""

    def __init__(self, http: aiohttp.ClientSession, gateway: str, results: Results) -> None:
        self.http = http
        self.gateway = gateway
        self.results = results

    async def call(
        self, name: str, method: str, path: str, user: User | None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = user.headers if user is not None and user.token else {}
        # Only requests sent inside the measured window count.
        record = self.results.record if self.results.recording else _ignore
        started = time.perf_counter()
        try:
            async with self.http.request(
                method, self.gateway + path, headers=headers, **kwargs
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # No HTTP answer (a timeout, a reset): counted as status 0.
            record(name, 0, time.perf_counter() - started, repr(exc))
            return 0, None
        elapsed = time.perf_counter() - started
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        ok = 200 <= status < 300
        record(name, status, elapsed, None if ok else raw.decode(errors="replace"))
        return status, body

    async def login(self, user: User) -> bool:
        status, body = await self.call(
            "login",
            "POST",
            "/api/auth/login",
            None,
            json={"email": user.email, "password": PASSWORD},
        )
        if status != 200:
            return False
        user.token = body["access_token"]
        user.id = body["user"]["id"]
        return True


def _ignore(name: str, status: int, elapsed: float, body: str | None) -> None:
    return None


async def register(client: Client, count: int) -> list[User]:
    """Setup, not measured: ``count`` accounts, a few at a time (hashing is the cost)."""
    users = [User(email=f"load-{uuid.uuid4().hex[:12]}@example.com") for _ in range(count)]
    queue: asyncio.Queue[User] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)

    async def worker() -> None:
        while not queue.empty():
            user = queue.get_nowait()
            async with client.http.post(
                client.gateway + "/api/auth/register",
                json={"email": user.email, "password": PASSWORD},
            ) as response:
                if response.status != 201:
                    raise RuntimeError(f"register: {response.status} {await response.text()}")

    await asyncio.gather(*(worker() for _ in range(8)))
    return users


async def cycle(client: Client, user: User, n: int, args: argparse.Namespace) -> None:
    """One pass of the mix for one user."""
    if n > 0 and n % args.login_every == 0:
        await client.login(user)
    await client.call(
        "list", "GET", "/api/tasks", user, params={"status": "pending", "limit": "20"}
    )
    status, body = await client.call(
        "create",
        "POST",
        "/api/tasks",
        user,
        json={
            "title": f"load task {n}",
            "priority": PRIORITIES[n % len(PRIORITIES)],
            "tags": ["load"],
        },
    )
    if status == 201:
        client.results.created.add(body["id"])
        task = body["id"]
        await client.call(
            "update",
            "PATCH",
            f"/api/tasks/{task}",
            user,
            json={"title": f"load task {n} (edited)", "priority": "high"},
        )
        await client.call("complete", "PATCH", f"/api/tasks/{task}/complete", user)
    if n % args.chat_every == 0:
        turn = n // args.chat_every
        message = (
            f"add {CHAT_ADDS[turn // 2 % len(CHAT_ADDS)]}" if turn % 2 == 0 else "what's pending?"
        )
        payload: dict[str, Any] = {"message": message}
        if user.conversation is not None:
            payload["conversation_id"] = user.conversation
        status, body = await client.call("chat", "POST", "/api/chat", user, json=payload)
        if status == 200:
            user.conversation = body["conversation_id"]
            for call in body["tool_calls"]:
                result = call.get("result")
                if call["name"] == "add_task" and isinstance(result, dict):
                    client.results.chat_created.add(result["task_id"])


async def user_loop(
    client: Client, user: User, start_in: float, deadline: float, args: argparse.Namespace
) -> None:
    await asyncio.sleep(start_in)  # the ramp: users arrive spread over the warm-up
    if not await client.login(user):
        return
    think = args.think_ms / 1000
    for n in range(args.max_cycles):
        if time.perf_counter() >= deadline:
            return
        await cycle(client, user, n, args)
        if think:
            await asyncio.sleep(think)


# --- the run ----------------------------------------------------------------------------------


async def drive(
    stack: Stack, data_dir: Path, args: argparse.Namespace
) -> tuple[Results, list[User], float]:
    results = Results()
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=args.users + 8)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, stack.url("gateway"), results)
        users = await register(client, args.users)
        started = time.perf_counter()
        measured_from = started + args.warmup
        deadline = measured_from + args.duration

        async def start_recording() -> None:
            await asyncio.sleep(args.warmup)
            results.recording = True

        recorder = asyncio.create_task(start_recording())
        cpu_before: dict[str, float] = {}

        async def snapshot_cpu() -> None:
            await asyncio.sleep(args.warmup)
            cpu_before.update({name: cpu_seconds(stack.pid(name)) for name in SERVICES})
            cpu_before["postgres"] = postgres_cpu_seconds(data_dir)
            cpu_before["client"] = time.process_time()

        snapshot = asyncio.create_task(snapshot_cpu())
        ramp = args.warmup / len(users)
        await asyncio.gather(
            *(user_loop(client, user, i * ramp, deadline, args) for i, user in enumerate(users))
        )
        elapsed = time.perf_counter() - measured_from
        await asyncio.gather(recorder, snapshot)
        cpu = {name: cpu_seconds(stack.pid(name)) - cpu_before[name] for name in SERVICES}
        cpu["postgres"] = postgres_cpu_seconds(data_dir) - cpu_before["postgres"]
        cpu["client"] = time.process_time() - cpu_before["client"]
        results.cpu = cpu
    return results, users, elapsed


async def stored_task_ids(url: str, users: list[User]) -> set[int]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT id FROM todo.tasks WHERE user_id = ANY(:users)"),
                {"users": [user.id for user in users if user.id]},
            )
            return {row.id for row in rows}
    finally:
        await engine.dispose()


def report(
    results: Results,
    elapsed: float,
    stored: set[int],
    memory: dict[str, int],
    args: argparse.Namespace,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> bool:
    print(
        f"\n{args.users} users, {args.duration:g} s measured after {args.warmup:g} s of "
        f"warm-up ({elapsed:.1f} s elapsed); chat every {args.chat_every} cycles, login every "
        f"{args.login_every}; rate limits user={args.rate_limit_user!r} "
        f"auth_ip={args.rate_limit_auth_ip!r}"
    )
    print("\n| operation | requests | non-2xx | req/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    total = 0
    errors = 0
    for name in OPERATIONS:
        operation = results.operations[name]
        latencies = sorted(operation.latencies)
        count = len(latencies)
        total += count
        errors += operation.errors
        failed = {s: n for s, n in sorted(operation.statuses.items()) if not 200 <= s < 300}
        print(
            f"| {name} | {count} | {operation.errors}{f' {failed}' if failed else ''} | "
            f"{count / elapsed:.1f} | {percentile(latencies, 0.50) * 1000:.1f} | "
            f"{percentile(latencies, 0.95) * 1000:.1f} | {percentile(latencies, 0.99) * 1000:.1f} |"
        )
    print(f"| **all** | {total} | {errors} | {total / elapsed:.1f} | | | |")
    for name in OPERATIONS:
        for sample in results.operations[name].samples:
            print(f"  {name} failed: {sample}")

    acknowledged = results.created | results.chat_created
    missing = acknowledged - stored
    unacknowledged = stored - acknowledged
    rows_match = not missing and not unacknowledged
    print(
        f"\nAcknowledged creates: {len(acknowledged)} ({len(results.created)} REST, "
        f"{len(results.chat_created)} by chat); rows in todo.tasks for the run's users: "
        f"{len(stored)}; missing {len(missing)}, not acknowledged {len(unacknowledged)}: "
        f"{'MATCH' if rows_match else 'MISMATCH'}"
    )

    cpu = results.cpu
    print("\n| process | peak memory (VmHWM) MiB | CPU s in the measured window | CPU % |")
    print("|---|---|---|---|")
    for name in SERVICES:
        print(
            f"| {name} | {memory[name] / 1024:.1f} | {cpu[name]:.1f} | "
            f"{100 * cpu[name] / elapsed:.0f} |"
        )
    for name, label in (("postgres", "PostgreSQL (all processes)"), ("client", "load generator")):
        print(f"| {label} | | {cpu[name]:.1f} | {100 * cpu[name] / elapsed:.0f} |")
    served = sum(cpu[name] for name in (*SERVICES, "postgres"))
    if total:
        print(
            f"\nCPU per request (services and PostgreSQL together): {1000 * served / total:.2f} ms"
        )
    before, after = load
    print(
        f"\nLoad average (1/5/15 min) before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; "
        f"after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}; {os.cpu_count()} CPUs"
    )
    ok = errors == 0 and rows_match and total > 0
    print("\nRESULT:", "PASS (zero errors, rows match)" if ok else "FAIL")
    return ok


def run(args: argparse.Namespace) -> bool:
    with migrated_postgres("todo-platform-load-") as (workdir, url):
        stack = Stack(
            url,
            workdir,
            env={
                "gateway": {
                    "GATEWAY_RATE_LIMIT_USER": args.rate_limit_user,
                    "GATEWAY_RATE_LIMIT_AUTH_IP": args.rate_limit_auth_ip,
                }
            },
        )
        try:
            stack.start("auth", "todo", "chat")
            stack.start("gateway")
            load_before = os.getloadavg()
            results, users, elapsed = asyncio.run(drive(stack, workdir / "pgdata", args))
            load_after = os.getloadavg()
            memory = {name: peak_memory_kib(stack.pid(name)) for name in SERVICES}
            stored = asyncio.run(stored_task_ids(url, users))
        finally:
            stack.close()
        return report(results, elapsed, stored, memory, args, (load_before, load_after))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--users", type=int, default=64, help="concurrent virtual users")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds before measuring; users arrive over it"
    )
    parser.add_argument("--chat-every", type=int, default=2, help="a chat turn every N cycles")
    parser.add_argument("--login-every", type=int, default=10, help="log in again every N")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between cycles")
    parser.add_argument("--max-cycles", type=int, default=100_000, help="per user, a bound")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--rate-limit-user", default="100000/minute")
    parser.add_argument("--rate-limit-auth-ip", default="100000/minute")
    args = parser.parse_args()
    if min(args.users, args.chat_every, args.login_every, args.max_cycles) < 1:
        parser.error("--users, --chat-every, --login-every and --max-cycles must be positive")
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
