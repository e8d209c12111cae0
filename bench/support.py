"""What every benchmark script needs: a migrated throw-away PostgreSQL, a free port, service
processes started in a clean environment and stopped, nearest-rank percentiles, CPU per
process."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from scripts.processes import free_port
from shared.embedded_pg import EmbeddedPostgres
from shared.migrate import available_services
from shared.migrations import upgrade

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def migrated_postgres(
    prefix: str, services: Iterable[str] | None = None
) -> Iterator[tuple[Path, str]]:
    """An embedded PostgreSQL in a temporary directory, ``services`` (default: all) migrated:
    the directory (its data under ``pgdata``) and the server's URL."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        workdir = Path(directory)
        server = EmbeddedPostgres(workdir / "pgdata")
        url = server.start()
        try:
            for service in available_services() if services is None else services:
                upgrade(service, url)
            yield workdir, url
        finally:
            server.stop()


async def wait_ready(
    name: str, base: str, process: asyncio.subprocess.Process, log: Path | None = None
) -> None:
    """Until ``base``/readyz answers 200, at most 30 s; a process that exits or never gets
    ready raises with the tail of its log."""
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    tail = ""
    if log is not None:
        tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
    raise RuntimeError(f"{name} did not become ready in 30 s:\n{tail}")


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    """Ask the process to stop with ``sig``; kill it after 10 s."""
    if process.returncode is not None:
        return
    process.send_signal(sig)
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


def clean_env(workdir: Path, **values: str) -> dict[str, str]:
    """A service's whole environment: programs on PATH, this repository importable, listening
    on 127.0.0.1, and ``values``; nothing of the caller's (its AUTH_*, TODO_*...) leaks in."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(workdir)),
        "PYTHONPATH": str(REPO),
        "HOST": "127.0.0.1",
        **values,
    }


@dataclass
class Service:
    """A service process a benchmark started: its address and its log."""

    name: str
    process: asyncio.subprocess.Process
    base: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_service(
    name: str,
    module: str,
    env: dict[str, str],
    workdir: Path,
    *,
    port: int | None = None,
    python_args: Sequence[str] = (),
) -> Service:
    """``python -m module`` with ``env`` (see ``clean_env``) on ``port`` (default: a free one),
    run in ``workdir`` so no .env of the repository is read, its output in ``<name>.log``
    there; returned once ready, stopped if it never gets ready."""
    port = free_port() if port is None else port
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *python_args,
            "-m",
            module,
            env={**env, "PORT": str(port)},
            cwd=workdir,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    service = Service(name, process, f"http://127.0.0.1:{port}", log)
    try:
        await wait_ready(name, service.base, process, log)
    except BaseException:
        await stop(process)
        raise
    return service


async def new_account(
    http: aiohttp.ClientSession, gateway: str, email: str, password: str, *, again: bool = False
) -> dict[str, Any]:
    """Registers ``email`` through the gateway (``again``: it may be there already) and signs
    in: the login's answer (``access_token``, ``user``...)."""
    body = {"email": email, "password": password}
    async with http.post(f"{gateway}/api/auth/register", json=body) as response:
        if response.status not in ((201, 409) if again else (201,)):
            raise RuntimeError(f"register: {response.status} {await response.text()}")
    async with http.post(f"{gateway}/api/auth/login", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"login: {response.status} {await response.text()}")
        answer: dict[str, Any] = await response.json()
        return answer


Request = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


@dataclass
class Tally:
    """One load phase's answers: the latencies of those that succeeded, the failures."""

    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    elapsed: float = 0.0  # seconds measured

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000


async def closed_loop(
    http: aiohttp.ClientSession,
    tally: Tally,
    request: Request,
    *,
    clients: int,
    measure_from: float,
    deadline: float,
) -> None:
    """``clients`` closed loops until ``deadline``, the requests numbered (client ``i`` sends
    ``i``, ``i + clients``...); only requests started from ``measure_from`` count."""

    async def client(worker: int) -> None:
        sequence = worker
        while (began := time.perf_counter()) < deadline:
            ok = await request(http, sequence)
            done = time.perf_counter()
            sequence += clients
            if began >= measure_from:
                if ok:
                    tally.latencies.append(done - began)
                else:
                    tally.errors += 1

    await asyncio.gather(*(client(i) for i in range(clients)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank (no interpolation: a reported p99 was observed); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (uvicorn's workers); 0 if gone."""
    try:
        process = psutil.Process(pid)
        total = sum(_own(p) for p in [process, *process.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0.0
    return total


def postgres_cpu_seconds(data_dir: Path) -> float:
    """The server's CPU: the postmaster, its live backends, and the ones it has reaped."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    return float(total) + sum(_own(child) for child in postmaster.children())


def _own(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)
