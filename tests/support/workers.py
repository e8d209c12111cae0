"""A service's worker (``python -m <service>.worker``) as its own process, started and killed
at will, and what the crash tests read back from a stream: the first delivery of each event
id (later ones are the duplicates at-least-once allows) and the per-key order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.processes import free_port, stop_process
from shared.events import Event, redis_client


class WorkerProcess:
    """``python -m <module>`` with the environment given (plus a free ``PORT`` on 127.0.0.1),
    its output appended to ``log``."""

    def __init__(self, module: str, env: dict[str, str], log: Path) -> None:
        self.module = module
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def serving(self, seconds: float = 20.0) -> None:
        """Until the worker answers on its port (its loops have started), or it exited."""
        port = int(self.env["PORT"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def kill(self) -> None:
        """SIGKILL, counted when the process was still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


async def read_stream(redis_url: str, stream: str) -> list[Event]:
    """Every entry of ``stream``, in stream order."""
    redis = redis_client(redis_url)
    try:
        entries = await redis.xrange(stream)
    finally:
        await redis.aclose()
    return [Event.from_json(fields[b"event"]) for _, fields in entries]


def first_deliveries(stream: list[Event]) -> list[Event]:
    """Each event id's first entry, in stream order: what a consumer dropping repeated ids
    by id (``handle_once``) applies."""
    firsts: dict[str, Event] = {}
    for event in stream:
        firsts.setdefault(event.id, event)
    return list(firsts.values())


def assert_ids_increase_per_key(events: list[Event]) -> None:
    """Per key, the events come in the order of their ids (the order they committed in)."""
    last_seen: dict[str, int] = {}
    for event in events:
        assert int(event.id) > last_seen.get(event.key, 0), (event.key, event.id)
        last_seen[event.key] = int(event.id)
