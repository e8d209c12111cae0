"""What the gateway costs: the same JWT-checked JSON GET, direct and through the gateway.

Starts two processes on free 127.0.0.1 ports, one uvicorn worker each (uvloop, httptools):

- an upstream with the platform's service shape (``shared.app.create_service_app``: request
  id, body limit, metrics, access log) whose ``GET /api/tasks`` verifies the EdDSA bearer
  token with ``shared.tokens`` and answers a small JSON list; it also publishes the key at
  ``/api/auth/jwks``;
- ``python -m gateway`` in front of it, with everything of the production hot path on: token
  check against that JWKS, the per-user rate limit (set high enough never to refuse), metrics
  (listener on), security headers, X-Forwarded-*, X-Request-ID, the access log.

Then drives both with ``wrk`` (one thread, a Lua script adds the Authorization header) at each
concurrency, for a bounded time, and prints req/s, p50/p99 latency and the CPU time per
request of the gateway and of the upstream (utime + stime from /proc/<pid>/stat). Without
``wrk`` (``apt-get install wrk``) an aiohttp load generator is used instead; it needs a core
of its own and understates both sides on a 2-core machine.

    .venv/bin/python bench/gateway.py                        # 32 and 128 connections, 10 s each
    .venv/bin/python bench/gateway.py --duration 3 --connections 32

Not part of the test suite; figures go to bench/RESULTS.md ("## Gateway").
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scripts.processes import free_port, stop_process

ISSUER = "bench-issuer"
AUDIENCE = "bench-audience"
PATH = "/api/tasks"
ROOT = Path(__file__).resolve().parent.parent


# --- the upstream (runs in its own process: bench/gateway.py --serve-upstream PORT PEM) -----


def serve_upstream(port: int, pem_file: str) -> None:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI

    from auth_service.keys import KeySet, parse_pem_keys
    from shared.app import create_service_app
    from shared.deps import CurrentPrincipal
    from shared.settings import ServiceSettings
    from shared.tokens import IssuerKeys, StaticKeySource, TokenVerifier

    keys = KeySet(parse_pem_keys(Path(pem_file).read_text()))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source = StaticKeySource(keys.public_keys())
        app.state.verifier = TokenVerifier([IssuerKeys(ISSUER, AUDIENCE, "EdDSA", source)])
        yield

    settings = ServiceSettings(_env_file=None, environment="production", log_json=True)
    app = create_service_app(
        name="bench-upstream",
        title="Bench upstream",
        settings=settings,
        lifespan=lifespan,
        readiness={},
    )
    tasks = [
        {"id": n, "title": f"Task {n}", "completed": n % 2 == 0, "priority": "medium"}
        for n in range(1, 4)
    ]

    @app.get(PATH)
    async def list_tasks(principal: CurrentPrincipal) -> list[dict[str, Any]]:
        return [{**task, "user_id": principal.sub} for task in tasks]

    @app.get("/api/auth/jwks")
    async def jwks() -> dict[str, Any]:
        return keys.jwks()

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
    )


# --- the driver ------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU time per request, in microseconds, split into user and kernel (system) time."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __str__(self) -> str:
        return f"{self.total:4.0f} ({self.user:.0f}+{self.system:.0f})"


@dataclass
class Result:
    target: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    gateway_cpu: Cpu | None
    upstream_cpu: Cpu
    loadgen_cpu: Cpu | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def capacity(self, cores: int) -> float:
        """Requests a second an otherwise idle machine could serve at these CPU costs.

        Each server process is one worker, so it is bounded by one core; all the processes
        together (the load generator too) by the machine's cores.
        """
        servers = [self.upstream_cpu.total]
        if self.gateway_cpu is not None:
            servers.append(self.gateway_cpu.total)
        spent = sum(servers) + (self.loadgen_cpu.total if self.loadgen_cpu else 0)
        return min(min(1e6 / cost for cost in servers), cores * 1e6 / spent)


def cpu_times(pid: int) -> tuple[float, float]:
    """utime and stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def children_cpu() -> tuple[float, float]:
    """CPU of the finished child processes (wrk), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def per_request(before: tuple[float, float], after: tuple[float, float], requests: int) -> Cpu:
    return Cpu((after[0] - before[0]) / requests * 1e6, (after[1] - before[1]) / requests * 1e6)


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            stop_process(proc)


def run_wrk(
    url: str, token: str, connections: int, duration: float, workdir: Path, lua: str = ""
) -> Any:
    """requests, seconds, p50 ms, p99 ms of one ``wrk`` run; ``lua`` is more of its script
    (a method, a body, a ``request`` function). Any non-2xx/3xx answer raises."""
    script = workdir / "auth.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n{lua}')
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    seconds = _wrk_seconds(re.search(r"requests in ([\d.]+\w+),", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} error responses from {url}:\n{output}")
    return requests, seconds, _wrk_ms(output, "50%"), _wrk_ms(output, "99%")


def _wrk_seconds(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"s": 1.0, "m": 60.0, "ms": 0.001}[unit]


def _wrk_ms(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _aiohttp_load(url: str, token: str, connections: int, duration: float) -> Any:
    import aiohttp

    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{response.status} from {url}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies), seconds, quantiles[49] * 1000, quantiles[98] * 1000


def measure(
    target: str,
    url: str,
    token: str,
    connections: int,
    duration: float,
    workdir: Path,
    gateway_pid: int | None,
    upstream_pid: int,
) -> Result:
    load = (
        (lambda d: run_wrk(url, token, connections, d, workdir))
        if shutil.which("wrk")
        else (lambda d: asyncio.run(_aiohttp_load(url, token, connections, d)))
    )
    load(1.0)  # warm-up: connections, caches
    gateway_before = cpu_times(gateway_pid) if gateway_pid else None
    upstream_before = cpu_times(upstream_pid)
    loadgen_before = children_cpu()
    requests, seconds, p50, p99 = load(duration)
    return Result(
        target,
        connections,
        requests,
        seconds,
        p50,
        p99,
        per_request(gateway_before, cpu_times(gateway_pid), requests)
        if gateway_pid and gateway_before
        else None,
        per_request(upstream_before, cpu_times(upstream_pid), requests),
        # wrk runs as a child process; the aiohttp fallback runs in this one.
        per_request(loadgen_before, children_cpu(), requests) if shutil.which("wrk") else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", default="32,128", help="comma-separated")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate direct and gateway this many times; the table shows medians",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--serve-upstream", nargs=2, metavar=("PORT", "PEM"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(int(args.serve_upstream[0]), args.serve_upstream[1])
        return

    import jwt

    from auth_service.keys import generate_pem, parse_pem_keys

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        pem = generate_pem()
        (workdir / "key.pem").write_text(pem)
        key = parse_pem_keys(pem)[0]
        now = int(time.time())
        token = jwt.encode(
            {"sub": "bench-user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now,
             "exp": now + 3600, "jti": "bench"},
            key.private_key,
            algorithm="EdDSA",
            headers={"kid": key.kid},
        )  # fmt: skip
        upstream_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        gateway_env = {
            **env,
            "PORT": str(gateway_port),
            "ENVIRONMENT": "production",
            "LOG_JSON": "true",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "AUTH_JWKS_URL": f"{upstream_url}/api/auth/jwks",
            "GATEWAY_AUTH_URL": upstream_url,
            "GATEWAY_TODO_URL": upstream_url,
            "GATEWAY_CHAT_URL": upstream_url,
            "GATEWAY_RATE_LIMIT_USER": "100000000/minute",
            "GATEWAY_METRICS_PORT": str(metrics_port),
        }
        upstream_args = [sys.executable, __file__, "--serve-upstream", str(upstream_port)]
        with (
            process([*upstream_args, str(workdir / "key.pem")], env, workdir / "up.log") as up,
            process(
                [sys.executable, "-m", "gateway"], gateway_env, workdir / "gateway.log"
            ) as gateway,
        ):
            wait_ready(f"{upstream_url}/healthz")
            wait_ready(f"http://127.0.0.1:{gateway_port}/readyz")
            results = []
            for _ in range(args.rounds):
                for connections in (int(c) for c in args.connections.split(",")):
                    for target, url, gateway_pid in (
                        ("direct", f"{upstream_url}{PATH}", None),
                        ("gateway", f"http://127.0.0.1:{gateway_port}{PATH}", gateway.pid),
                    ):
                        result = measure(
                            target, url, token, connections, args.duration, workdir,
                            gateway_pid, up.pid,
                        )  # fmt: skip
                        results.append(result)
                        print(_line(result), flush=True)
        print()
        print(_summary(_medians(results)))
        if args.json:
            args.json.write_text(
                json.dumps([asdict(r) | {"rps": r.rps} for r in results], indent=2)
            )


def _line(r: Result) -> str:
    gateway = str(r.gateway_cpu) if r.gateway_cpu is not None else "   -"
    loadgen = str(r.loadgen_cpu) if r.loadgen_cpu is not None else "   -"
    return (
        f"{r.target:<8} c={r.connections:<4} {r.rps:7.0f} req/s  p50 {r.p50_ms:7.2f} ms  "
        f"p99 {r.p99_ms:7.2f} ms  CPU us/req (user+sys): gateway {gateway}, "
        f"upstream {r.upstream_cpu}, wrk {loadgen}"
    )


def _medians(results: list[Result]) -> list[Result]:
    """One result per (target, connections): the median of each figure over the rounds."""
    grouped: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        grouped.setdefault((result.target, result.connections), []).append(result)

    def cpu(values: list[Cpu | None]) -> Cpu | None:
        present = [v for v in values if v is not None]
        if not present:
            return None
        return Cpu(
            statistics.median(v.user for v in present),
            statistics.median(v.system for v in present),
        )

    medians = []
    for (target, connections), runs in grouped.items():
        rps = statistics.median(r.rps for r in runs)
        upstream = cpu([r.upstream_cpu for r in runs])
        assert upstream is not None
        medians.append(
            Result(
                target,
                connections,
                requests=round(rps * 1000),
                seconds=1000.0,
                p50_ms=statistics.median(r.p50_ms for r in runs),
                p99_ms=statistics.median(r.p99_ms for r in runs),
                gateway_cpu=cpu([r.gateway_cpu for r in runs]),
                upstream_cpu=upstream,
                loadgen_cpu=cpu([r.loadgen_cpu for r in runs]),
            )
        )
    return medians


def _summary(results: list[Result]) -> str:
    cores = os.cpu_count() or 1
    lines = [
        "| connections | direct req/s | gateway req/s | ratio | direct p50 / p99 ms "
        "| gateway p50 / p99 ms | p99 ratio | gateway CPU/req (user+sys) "
        f"| upstream CPU/req | CPU-bound ratio, idle {cores} cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r.target, r.connections): r for r in results}
    for connections in sorted({r.connections for r in results}):
        d, g = by[("direct", connections)], by[("gateway", connections)]
        lines.append(
            f"| {connections} | {d.rps:.0f} | {g.rps:.0f} | {g.rps / d.rps:.2f}x "
            f"| {d.p50_ms:.2f} / {d.p99_ms:.2f} | {g.p50_ms:.2f} / {g.p99_ms:.2f} "
            f"| {g.p99_ms / d.p99_ms:.2f}x | {g.gateway_cpu} us | {g.upstream_cpu} us "
            f"| {g.capacity(cores) / d.capacity(cores):.2f}x |"
        )
    lines.append(
        "\nCPU-bound ratio: the gateway's rate over the direct rate that the measured CPU "
        "costs per request allow when nothing else runs: each one-worker server bounded by "
        "one core, all processes (wrk included) by the machine's cores. A model, not a "
        "measurement: it shows what a quiet machine should give when this one is shared."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
