"""Benchmark of a chat turn through the gateway with the rule-based agent.

Starts its own embedded PostgreSQL in a temporary directory, migrates every service, then runs
the real processes on free 127.0.0.1 ports (one uvicorn worker each): ``auth_service``,
``todo_service`` (with its MCP server), ``chat_service`` (``CHAT_AGENT=rules``, an MCP client
of todo) and ``gateway`` in front. Registers ``--users`` accounts through the gateway, logs
them in, and has each user run the cycle add -> list -> complete in one conversation, all
users at once (closed loop), for ``--duration`` seconds after a short warm-up:

    "Add a task to buy milk 17"   -> add_task
    "What's pending?"             -> list_tasks
    "Mark task 42 as complete"    -> complete_task (the id the add returned)

Prints p50/p99 latency per kind of turn and overall, turns per second, and the CPU seconds
each process used per turn. Target: p50 under 40 ms at 8 concurrent users.

The users behave like people: after each answer a user pauses before the next message, for a
time drawn uniformly from 0.5x to 1.5x of ``--think-ms`` (500 ms by default, far quicker than
anyone reads and types; a fixed seed per user), so they drift apart instead of arriving in
lock-step as identical pauses would make them. ``--think-ms 0`` is a closed loop: every user
sends again the moment an answer arrives, eight requests always in flight, which measures the
stack's capacity rather than eight users' experience. ``--chat-workers`` runs more chat
processes; ``--db-ping-after-idle`` sets how long a pooled connection of todo and chat may sit
idle before it is checked again.

    .venv/bin/python bench/chat.py                         # 8 users, 15 s
    .venv/bin/python bench/chat.py --think-ms 0            # closed loop: capacity
    .venv/bin/python bench/chat.py --users 1 --think-ms 0  # one user's turn, nothing queued
    .venv/bin/python bench/chat.py --parser-only           # the parser's worst case, no stack

Before the stack starts, it parses the pathological corpus of ``tests/chat/test_parser_time.py``
(messages of the largest size made of long runs of punctuation, spaces, digits, quotes, polite
words and emoji) and prints the worst parse time: CPU time of the parsing thread, the mean of
ten parses per message.
Target: under 5 ms.

Not part of the test suite; figures go to bench/RESULTS.md ("## Chat").
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from auth_service.keys import generate_pem
from bench.support import (
    Service,
    clean_env,
    cpu_seconds,
    migrated_postgres,
    new_account,
    percentile,
    start_service,
    stop,
)
from chat_service.schemas import MESSAGE_MAX
from scripts.processes import free_port
from tests.support.parser_corpus import parse_seconds, pathological_corpus

SERVICE_MODULES = {
    "auth": "auth_service",
    "todo": "todo_service",
    "chat": "chat_service",
    "gateway": "gateway",
}

PASSWORD = "bench password 1234"
KINDS = ("add", "list", "complete")
MAX_CYCLES = 1_000_000  # a bound on any user's loop besides the deadline


@dataclass
class Stack:
    processes: dict[str, Service] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.processes["gateway"].base


async def start(name: str, env: dict[str, str], port: int, workdir: Path) -> Service:
    return await start_service(name, SERVICE_MODULES[name], env, workdir, port=port)


async def stop_stack(stack: Stack) -> None:
    for service in reversed(list(stack.processes.values())):
        await stop(service.process)


async def start_stack(url: str, workdir: Path, args: argparse.Namespace) -> Stack:
    ports = {name: free_port() for name in ("auth", "todo", "chat", "gateway")}
    base = clean_env(
        workdir,
        WEB_CONCURRENCY="1",
        ENVIRONMENT="production",
        LOG_JSON="true",
        DATABASE_URL=url,
        AUTH_JWKS_URL=f"http://127.0.0.1:{ports['auth']}/api/auth/jwks",
    )
    if args.db_ping_after_idle is not None:
        for prefix in ("TODO", "CHAT"):
            base[f"{prefix}_DB_PING_AFTER_IDLE_SECONDS"] = str(args.db_ping_after_idle)
    stack = Stack()
    try:
        stack.processes["auth"] = await start(
            "auth",
            {
                **base,
                "AUTH_SIGNING_KEYS": generate_pem(),
                "AUTH_LOG_LEVEL": "WARNING",
                "AUTH_LOCKOUT_THRESHOLD": "1000000",
            },
            ports["auth"],
            workdir,
        )
        stack.processes["todo"] = await start(
            "todo", {**base, "TODO_LOG_LEVEL": "WARNING"}, ports["todo"], workdir
        )
        stack.processes["chat"] = await start(
            "chat",
            {
                **base,
                "CHAT_LOG_LEVEL": "WARNING",
                "CHAT_AGENT": "rules",
                "CHAT_TODO_MCP_URL": f"http://127.0.0.1:{ports['todo']}/api/mcp",
                "WEB_CONCURRENCY": str(args.chat_workers),
            },
            ports["chat"],
            workdir,
        )
        stack.processes["gateway"] = await start(
            "gateway",
            {
                **base,
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_AUTH_URL": stack.processes["auth"].base,
                "GATEWAY_TODO_URL": stack.processes["todo"].base,
                "GATEWAY_CHAT_URL": stack.processes["chat"].base,
                "GATEWAY_RATE_LIMIT_USER": "",
                "GATEWAY_RATE_LIMIT_CHAT_TURN": "",
                "GATEWAY_RATE_LIMIT_AUTH_IP": "",
            },
            ports["gateway"],
            workdir,
        )
    except BaseException:
        await stop_stack(stack)
        raise
    return stack


async def login(http: aiohttp.ClientSession, gateway: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    token: str = (await new_account(http, gateway, email, PASSWORD))["access_token"]
    return token


@dataclass
class Timings:
    by_kind: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: int = 0


async def user_loop(
    http: aiohttp.ClientSession,
    gateway: str,
    token: str,
    *,
    measure_from: float,
    deadline: float,
    timings: Timings,
    think: float,
    rng: random.Random,
) -> None:
    """add -> list -> complete in one conversation until the deadline; turns that start
    before ``measure_from`` are the warm-up and are not recorded."""
    headers = {"Authorization": f"Bearer {token}"}
    conversation: int | None = None
    number = 0
    if think:
        await asyncio.sleep(think * rng.uniform(0.0, 1.0))  # users do not all start at once
    while time.perf_counter() < deadline and number < MAX_CYCLES:
        number += 1
        task_id = None
        for kind in KINDS:
            if kind == "add":
                message = f"Add a task to buy milk {number}"
            elif kind == "list":
                message = "What's pending?"
            else:
                message = f"Mark task {task_id} as complete"
            body: dict[str, object] = {"message": message}
            if conversation is not None:
                body["conversation_id"] = conversation
            started = time.perf_counter()
            async with http.post(f"{gateway}/api/chat", json=body, headers=headers) as response:
                answer = await response.json()
                ok = response.status == 200
            elapsed = time.perf_counter() - started
            measured = started >= measure_from
            if not ok:
                if measured:
                    timings.errors += 1
                break
            conversation = answer["conversation_id"]
            if measured:
                timings.by_kind[kind].append(elapsed)
            if kind == "add":
                task_id = answer["tool_calls"][0]["result"]["task_id"]
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))


async def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    stack = await start_stack(url, workdir, args)
    try:
        connector = aiohttp.TCPConnector(limit=args.users * 2)
        async with aiohttp.ClientSession(connector=connector) as http:
            tokens = [await login(http, stack.gateway) for _ in range(args.users)]
            timings = Timings()
            measure_from = time.perf_counter() + args.warmup
            deadline = measure_from + args.duration
            cpu_before: dict[str, float] = {}
            postmaster = int((workdir / "pgdata" / "postmaster.pid").read_text().split()[0])

            def cpu_now() -> dict[str, float]:
                used = {n: cpu_seconds(p.pid) for n, p in stack.processes.items()}
                # PostgreSQL's backends (the pools keep theirs open), and this load client.
                used["postgres"] = cpu_seconds(postmaster)
                used["client"] = time.process_time()
                return used

            async def start_meter() -> None:
                await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
                cpu_before.update(cpu_now())

            # One continuous loop per user: the measured window starts mid-stream, so the users
            # are as spread out at its start as anywhere else.
            await asyncio.gather(
                start_meter(),
                *(
                    user_loop(
                        http,
                        stack.gateway,
                        token,
                        measure_from=measure_from,
                        deadline=deadline,
                        timings=timings,
                        think=args.think_ms / 1000,
                        rng=random.Random(index),
                    )
                    for index, token in enumerate(tokens)
                ),
            )
            wall = time.perf_counter() - measure_from
            cpu = {n: used - cpu_before[n] for n, used in cpu_now().items()}
    finally:
        await stop_stack(stack)
    report(args, timings, wall, cpu)


def report_parser() -> None:
    """The rule-based parser's worst time over the pathological corpus (one process, no I/O)."""
    corpus = pathological_corpus()
    times = sorted((parse_seconds(text, runs=10), text) for text in corpus)
    worst, text = times[-1]
    median = statistics.median(seconds for seconds, _ in times)
    print(
        f"parser over {len(corpus)} pathological messages of up to {MESSAGE_MAX} characters: "
        f"worst {worst * 1000:.2f} ms ({text[:24]!r}...{text[-12:]!r}), "
        f"median {median * 1000:.2f} ms"
    )
    verdict = "met" if worst < 0.005 else "missed"
    print(f"target worst parse < 5 ms: {verdict}")


def report(args: argparse.Namespace, timings: Timings, wall: float, cpu: dict[str, float]) -> None:
    every = [t for values in timings.by_kind.values() for t in values]
    count = len(every)
    pacing = (
        f"a pause of {args.think_ms / 2:.0f}-{args.think_ms * 1.5:.0f} ms after each answer"
        if args.think_ms
        else "closed loop"
    )
    print(
        f"\nchat turns through the gateway, rules agent, {args.users} concurrent users "
        f"({pacing}), chat workers: {args.chat_workers}"
    )
    print(f"{count} turns in {wall:.1f} s = {count / wall:.0f} turns/s, errors: {timings.errors}")
    print(f"{'turn':<10}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for kind, values in [*timings.by_kind.items(), ("all", every)]:
        if not values:
            continue
        print(
            f"{kind:<10}{len(values):>7}{percentile(values, 0.5) * 1000:>10.1f}"
            f"{percentile(values, 0.99) * 1000:>10.1f}{statistics.mean(values) * 1000:>10.1f}"
        )
    if count:
        per_turn = ", ".join(f"{n} {cpu[n] / count * 1000:.2f}" for n in cpu)
        print(f"CPU ms per turn: {per_turn}; all {sum(cpu.values()) / count * 1000:.2f}")
        target = percentile(every, 0.5) * 1000
        if args.think_ms:
            verdict = "met" if target < 40 else "missed"
            print(f"target p50 < 40 ms at {args.users} users: {verdict} ({target:.1f} ms)")
        else:
            print(f"closed loop: p50 {target:.1f} ms at {count / wall:.0f} turns/s (capacity)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help="concurrent users (default 8)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=500.0,
        help="mean pause after each answer, drawn from 0.5x-1.5x (default 500; 0: closed loop)",
    )
    parser.add_argument(
        "--chat-workers", type=int, default=1, help="uvicorn workers of the chat service"
    )
    parser.add_argument(
        "--db-ping-after-idle",
        type=float,
        default=None,
        help="<SERVICE>_DB_PING_AFTER_IDLE_SECONDS of todo and chat (default: theirs, 1 s)",
    )
    parser.add_argument(
        "--parser-only", action="store_true", help="only the parser's worst case, no stack"
    )
    args = parser.parse_args()
    report_parser()
    if args.parser_only:
        return
    with migrated_postgres("bench-chat-") as (workdir, url):
        asyncio.run(run(args, url, workdir))


if __name__ == "__main__":
    main()
