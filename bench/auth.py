"""Benchmark of the auth service: token verification, login latency, and ``GET /api/auth/me``
idle and while many different accounts log in.

Starts its own embedded PostgreSQL in a temporary directory, migrates, runs
``python -m auth_service`` as a real uvicorn process (one worker) on a free 127.0.0.1 port and
drives it with aiohttp for a bounded time per phase:

1. verification cost per call (in this process): ``TokenVerifier`` + ``StaticKeySource``,
   every token new (uncached) and one token repeated (cached);
2. argon2 parameters in use (read back from a stored hash) and login latency, one at a time,
   for a valid password, a wrong password and an unknown email (timing equalisation);
3. ``GET /api/auth/me`` at ``--concurrency`` clients, idle;
4. the same while ``--login-clients`` clients log in as many different accounts.

Phases 3 and 4 alternate for ``--rounds`` rounds, so a noisy neighbour weighs on both alike.
Target: the median over rounds of p99 of /me under login load within 3x of idle. The server's
CPU use per phase, and per login for the one-at-a-time logins, comes from ``/proc`` (Linux).

    .venv/bin/python -m bench.auth                     # 3 rounds of 2 x 10 s, about 90 s
    .venv/bin/python bench/auth.py --duration 3 --warmup 1 --accounts 64
    .venv/bin/python -m bench.auth --hash-niceness 0   # hashing threads at the loop's priority
    .venv/bin/python -m bench.auth --profile /tmp/auth.prof   # cProfile of the service

Not part of the test suite; figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import pstats
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import jwt

from auth_service.keys import KeySet, generate_pem, parse_pem_keys
from auth_service.settings import AuthSettings
from bench.support import (
    Service,
    Tally,
    clean_env,
    closed_loop,
    cpu_seconds,
    migrated_postgres,
    start_service,
    stop,
)
from shared.clock import utcnow
from shared.tokens import IssuerKeys, StaticKeySource, TokenVerifier

ISSUER = "todo-platform-auth"
AUDIENCE = "todo-platform"
PASSWORD = "bench password 1234"


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Phase(Tally):
    server_cpu: float = 0.0

    def row(self) -> str:
        cpu = f"{self.server_cpu / self.elapsed * 100:.0f}" if self.server_cpu else "-"
        return (
            f"| {self.name:<30} | {len(self.latencies):>7} | {self.errors:>5} | {self.rate:>7.0f} "
            f"| {self.p50_ms:>7.2f} | {self.p99_ms:>7.2f} | {cpu:>9} |"
        )


HEADER = (
    f"| {'phase':<30} | {'count':>7} | {'errs':>5} | {'req/s':>7} | {'p50 ms':>7} "
    f"| {'p99 ms':>7} | {'srv CPU %':>9} |\n"
    f"|{'-' * 32}|{'-' * 9}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 11}|"
)


# --- 1. verification cost, in process ---------------------------------------------------------


async def verification_cost(uncached: int, cached: int) -> tuple[float, float, float]:
    """(µs per uncached verify, µs per cached verify, µs per bare PyJWT decode)."""
    keys = KeySet(parse_pem_keys(generate_pem()))
    source = StaticKeySource(keys.public_keys())
    verifier = TokenVerifier(
        [IssuerKeys(ISSUER, AUDIENCE, "EdDSA", source)], cache_size=uncached + 1
    )
    now = utcnow()
    tokens = [
        keys.mint_access_token(
            subject=str(uuid.uuid4()),
            issuer=ISSUER,
            audience=AUDIENCE,
            now=now,
            ttl=timedelta(minutes=15),
        )
        for _ in range(uncached)
    ]

    started = time.perf_counter()
    for token in tokens:
        await verifier.verify(token)
    uncached_us = (time.perf_counter() - started) / uncached * 1e6

    repeated = tokens[0]
    started = time.perf_counter()
    for _ in range(cached):
        await verifier.verify(repeated)
    cached_us = (time.perf_counter() - started) / cached * 1e6

    public = keys.current.public_key
    started = time.perf_counter()
    for token in tokens:
        jwt.decode(token, public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
    bare_us = (time.perf_counter() - started) / uncached * 1e6
    return uncached_us, cached_us, bare_us


# --- the service under test -------------------------------------------------------------------


async def start_auth(args: argparse.Namespace, url: str, workdir: Path) -> Service:
    # A clean environment: nothing from the caller's AUTH_* or .env leaks into the figures.
    env = clean_env(
        workdir,
        WEB_CONCURRENCY="1",
        AUTH_ENVIRONMENT="production",
        AUTH_DATABASE_URL=url,
        AUTH_SIGNING_KEYS=generate_pem(),
        AUTH_LOG_LEVEL=args.log_level,
        AUTH_PASSWORD_HASH_WORKERS=str(args.hash_workers),
        # Every bench login is either right or deliberately spread over many emails.
        AUTH_LOCKOUT_THRESHOLD="1000000",
        AUTH_LOCKOUT_ACCOUNT_CEILING="1000000",
        AUTH_PASSWORD_HASH_NICENESS=str(args.hash_niceness),
    )
    if args.db_ping_after_idle is not None:
        env["AUTH_DB_PING_AFTER_IDLE_SECONDS"] = str(args.db_ping_after_idle)
    profiler = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
    return await start_service("auth", "auth_service", env, workdir, python_args=profiler)


async def stop_service(service: Service) -> None:
    await stop(service.process, signal.SIGINT)  # cProfile writes its stats on SIGINT


# --- load -------------------------------------------------------------------------------------


async def me_load(
    service: Service,
    tokens: list[str],
    accounts: list[str],
    *,
    args: argparse.Namespace,
    with_logins: bool,
) -> tuple[Phase, Phase | None]:
    """/me at ``--concurrency`` clients; with logins, ``--login-clients`` more log in."""
    suffix = f" + {args.login_clients} logging in" if with_logins else ", idle"
    me = Phase(f"GET /me x{args.concurrency}{suffix}")
    logins = Phase(f"POST /login x{args.login_clients} (under /me)") if with_logins else None
    headers = [{"Authorization": f"Bearer {token}"} for token in tokens]
    me_url = f"{service.base}/api/auth/me"
    login_url = f"{service.base}/api/auth/login"
    # Spread the logins over as many accounts as there are, none of them a /me client's.
    login_accounts = accounts[len(tokens) :] or accounts
    next_account: Iterator[str] = itertools.cycle(login_accounts)

    async def get_me(http: aiohttp.ClientSession, sequence: int) -> bool:
        async with http.get(me_url, headers=headers[sequence % len(headers)]) as response:
            await response.read()
            return response.status == 200

    async def post_login(http: aiohttp.ClientSession, sequence: int) -> bool:
        body = {"email": next(next_account), "password": PASSWORD}
        async with http.post(login_url, json=body) as response:
            await response.read()
            return response.status == 200

    total = args.concurrency + (args.login_clients if with_logins else 0)
    connector = aiohttp.TCPConnector(limit=total)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        measure_from = start + args.warmup
        deadline = measure_from + args.duration
        runs = [
            closed_loop(
                http,
                me,
                get_me,
                clients=args.concurrency,
                measure_from=measure_from,
                deadline=deadline,
            )
        ]
        if logins is not None:
            runs.append(
                closed_loop(
                    http,
                    logins,
                    post_login,
                    clients=args.login_clients,
                    measure_from=measure_from,
                    deadline=deadline,
                )
            )
        cpu_task = asyncio.create_task(cpu_between(service.pid, measure_from, deadline))
        await asyncio.gather(*runs)
        cpu = await cpu_task
    me.elapsed = args.duration
    me.server_cpu = cpu
    if logins is not None:
        logins.elapsed = args.duration
    return me, logins


async def cpu_between(pid: int, start: float, end: float) -> float:
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    before = cpu_seconds(pid)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    return cpu_seconds(pid) - before


# --- setup and sequential figures --------------------------------------------------------------


async def register_accounts(service: Service, count: int) -> tuple[list[str], Phase]:
    phase = Phase("POST /register (setup, x8)")
    emails = [f"bench-{i:05d}@example.com" for i in range(count)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for email in emails:
        queue.put_nowait(email)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            email = queue.get_nowait()
            began = time.perf_counter()
            body = {"email": email, "password": PASSWORD}
            async with http.post(f"{service.base}/api/auth/register", json=body) as response:
                await response.read()
                if response.status != 201:
                    raise RuntimeError(f"register {email}: {response.status}")
            phase.latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(8)))
    phase.elapsed = time.perf_counter() - started
    return emails, phase


async def sequential_logins(
    service: Service, bodies: list[dict[str, str]], name: str, expect: int
) -> tuple[Phase, list[str]]:
    phase = Phase(name)
    tokens = []
    started = time.perf_counter()
    cpu_before = cpu_seconds(service.pid)
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            began = time.perf_counter()
            async with http.post(f"{service.base}/api/auth/login", json=body) as response:
                payload = await response.json()
                if response.status != expect:
                    raise RuntimeError(f"login: {response.status} {payload}")
            phase.latencies.append(time.perf_counter() - began)
            if expect == 200:
                tokens.append(payload["access_token"])
    phase.elapsed = time.perf_counter() - started
    phase.server_cpu = cpu_seconds(service.pid) - cpu_before
    return phase, tokens


async def stored_hash_parameters(url: str) -> str:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        stored: str = await connection.fetchval("SELECT password_hash FROM auth.users LIMIT 1")
    finally:
        await connection.close()
    # $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>: keep the algorithm and parameters.
    return "$".join(stored.split("$")[:4])


# --- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, workdir: Path) -> bool:
    uncached_us, cached_us, bare_us = await verification_cost(args.verify_tokens, 200_000)
    print("## Token verification (in process, TokenVerifier + StaticKeySource, EdDSA)")
    print(f"uncached: {uncached_us:7.1f} us/call   (bare PyJWT decode: {bare_us:.1f} us)")
    print(f"cached:   {cached_us:7.2f} us/call")
    print()

    service = await start_auth(args, url, workdir)
    try:
        emails, registered = await register_accounts(service, args.accounts)
        params = await stored_hash_parameters(url)
        defaults = AuthSettings(_env_file=None)
        print("## Password hashing")
        print(
            f"argon2id t={defaults.argon2_time_cost} m={defaults.argon2_memory_kib} KiB "
            f"p={defaults.argon2_parallelism}; stored: {params}; "
            f"hashing threads: {args.hash_workers} at niceness {args.hash_niceness}"
        )
        print()

        me_clients = emails[: args.concurrency]
        valid, tokens = await sequential_logins(
            service,
            [{"email": email, "password": PASSWORD} for email in me_clients],
            "POST /login, one at a time",
            200,
        )
        wrong, _ = await sequential_logins(
            service,
            [{"email": email, "password": "wrong password"} for email in emails[:20]],
            "  wrong password",
            401,
        )
        unknown, _ = await sequential_logins(
            service,
            [{"email": f"nobody-{i}@example.com", "password": PASSWORD} for i in range(20)],
            "  unknown email",
            401,
        )

        rounds = []
        for _ in range(args.rounds):
            idle, _ = await me_load(service, tokens, emails, args=args, with_logins=False)
            loaded, logins = await me_load(service, tokens, emails, args=args, with_logins=True)
            assert logins is not None
            rounds.append((idle, loaded, logins))
    finally:
        await stop_service(service)

    print(
        f"## Load ({args.duration:.0f} s per phase after {args.warmup:.0f} s warm-up, "
        f"one uvicorn worker, {os.cpu_count()} CPUs, {len(emails)} accounts)"
    )
    print(HEADER)
    for phase in (registered, valid, wrong, unknown):
        print(phase.row())
    print()
    per_login = ", ".join(
        f"{phase.name.strip()} {phase.server_cpu / len(phase.latencies) * 1000:.1f} ms"
        for phase in (valid, wrong, unknown)
    )
    print(f"Server CPU per login, one at a time: {per_login}")
    print()
    ratios = []
    for idle, loaded, logins in rounds:
        for phase in (idle, loaded, logins):
            print(phase.row())
        ratios.append(loaded.p99_ms / idle.p99_ms if idle.p99_ms else float("inf"))
    print()
    # Idle and loaded phases alternate, so a noisy neighbour weighs on both alike; with
    # several rounds the median ratio is the figure.
    ratio = statistics.median(ratios)
    errors = sum(idle.errors + loaded.errors for idle, loaded, _ in rounds)
    met = ratio <= 3.0 and not errors
    print(
        f"/me p99 under login load / idle, per round: "
        f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {ratio:.2f}x "
        f"(target <= 3x): {'met' if met else 'NOT met'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent /me clients")
    parser.add_argument("--login-clients", type=int, default=8, help="concurrent login clients")
    parser.add_argument("--accounts", type=int, default=200, help="accounts to register")
    parser.add_argument(
        "--hash-workers",
        type=int,
        default=AuthSettings.model_fields["password_hash_workers"].default,
        help="AUTH_PASSWORD_HASH_WORKERS of the service (default: the service's default)",
    )
    parser.add_argument(
        "--hash-niceness",
        type=int,
        default=AuthSettings.model_fields["password_hash_niceness"].default,
        help="AUTH_PASSWORD_HASH_NICENESS of the service (default: the service's default)",
    )
    parser.add_argument(
        "--db-ping-after-idle",
        type=float,
        help="AUTH_DB_PING_AFTER_IDLE_SECONDS of the service (default: ping every checkout)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="idle/loaded phase pairs (median ratio)"
    )
    parser.add_argument("--verify-tokens", type=int, default=5000, help="uncached verifications")
    parser.add_argument("--log-level", default="INFO", help="AUTH_LOG_LEVEL of the service")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the service under cProfile and write its stats here (figures get slower)",
    )
    args = parser.parse_args()
    if args.accounts < args.concurrency:
        parser.error("--accounts must be at least --concurrency")

    with migrated_postgres("bench-auth-", ["auth_service"]) as (workdir, url):
        met = asyncio.run(run(args, url, workdir))
    if args.profile:
        print(f"\n## Service profile ({args.profile}), top functions by own time")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
