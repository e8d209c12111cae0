"""What every benchmark script needs: a free port, nearest-rank percentiles, CPU per process."""

from __future__ import annotations

import math
import socket
from collections.abc import Sequence
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
