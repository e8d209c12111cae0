"""A real Redis for the tests of the gateway's shared rate-limit store.

``redis_server(directory)`` starts the machine's ``redis-server`` (Debian's package;
``.ci/run`` installs it) on a free loopback port, with a password as compose runs it and
nothing saved to disk, yields its URL and stops it. Without the binary a test is skipped on
a developer's machine but fails under CI (``CI=true``): CI cannot pass without running it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.processes import free_port

STARTUP_SECONDS = 10.0


def redis_binary() -> str:
    """The ``redis-server`` on PATH; without one, skip the test (or fail it under CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{reason}; CI must run the shared rate-limit tests", pytrace=False)
        pytest.skip(reason)
    return binary


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A Redis of its own for the block; yields ``redis://:<password>@127.0.0.1:<port>/0``."""
    port = free_port()
    password = secrets.token_urlsafe(16)
    with redis_process(port, "--requirepass", password, "--dir", str(directory)):
        yield f"redis://:{password}@127.0.0.1:{port}/0"


@contextmanager
def redis_process(port: int, *arguments: str) -> Iterator[None]:
    """The machine's ``redis-server`` with ``arguments`` (a configuration file first, if any)
    on ``127.0.0.1:port``, nothing saved to disk, from when it listens until the block ends."""
    binary = redis_binary()
    process = subprocess.Popen(
        [binary, *arguments, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_listening(process, port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
