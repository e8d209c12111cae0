"""Steady, bounded client traffic for fault tests, with every answer recorded.

Each named stream of requests runs in a few workers that repeat it at a steady pace until the
traffic is stopped or each worker has sent ``max_per_worker`` requests. Every answer, or the
absence of one (status 0: a client timeout or a connection error), is recorded with its start
and end times, so a test can say what the platform answered before, during and after a fault::

    async with Traffic(client, {"list": list_tasks, "me": read_me}) as traffic:
        await traffic.until(lambda: traffic.count("list") >= 20, within=10, what="warm-up")
        ...  # the fault
    traffic.of("list", since=fault_at)  # the answers sent after the fault
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
"""One request: the client and a sequence number unique within the traffic."""


@dataclass(frozen=True)
class Outcome:
    name: str
    sequence: int
    started: float
    ended: float
    status: int  # 0: no HTTP answer
    body: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """The error envelope's ``code``, when the answer is one."""
        return self.body.get("code") if isinstance(self.body, dict) else None


class Traffic:
    def __init__(
        self,
        client: httpx.AsyncClient,
        streams: Mapping[str, Send],
        *,
        workers: int = 2,
        pace: float = 0.05,
        max_per_worker: int = 2000,
    ) -> None:
        """``pace``: seconds between one worker's requests (a steady rate, not a flood)."""
        self.client = client
        self.streams = dict(streams)
        self.workers = workers
        self.pace = pace
        self.max_per_worker = max_per_worker
        self.outcomes: list[Outcome] = []
        self._sequence = itertools.count(1)
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Traffic:
        self._tasks = [
            asyncio.create_task(self._worker(name, send))
            for name, send in self.streams.items()
            for _ in range(self.workers)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Let the requests in flight finish (each is bounded by the client's timeout)."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _worker(self, name: str, send: Send) -> None:
        for _ in range(self.max_per_worker):
            if self._stopping.is_set():
                return
            sequence = next(self._sequence)
            started = time.monotonic()
            try:
                response = await send(self.client, sequence)
            except httpx.HTTPError as exc:
                outcome = Outcome(
                    name, sequence, started, time.monotonic(), 0, None, type(exc).__name__
                )
            else:
                try:
                    body = response.json() if response.content else None
                except ValueError:
                    body = response.text
                outcome = Outcome(
                    name, sequence, started, time.monotonic(), response.status_code, body
                )
            self.outcomes.append(outcome)
            self._changed.set()
            # A steady pace; stopping cuts the wait short.
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.pace)

    async def until(self, condition: Callable[[], bool], *, within: float, what: str) -> float:
        """Wait (at most ``within`` seconds) until ``condition()`` holds after an answer;
        returns the time it held."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {within} s: {what}") from None
        return time.monotonic()

    def of(
        self, name: str, *, since: float | None = None, before: float | None = None
    ) -> list[Outcome]:
        """The answers to ``name`` whose requests started in [since, before)."""
        return [
            o
            for o in self.outcomes
            if o.name == name
            and (since is None or o.started >= since)
            and (before is None or o.started < before)
        ]

    def count(self, name: str, *, since: float | None = None, ok: bool | None = None) -> int:
        return sum(1 for o in self.of(name, since=since) if ok is None or o.ok == ok)

    def first(self, name: str, status: int, *, since: float) -> Outcome | None:
        """The first answer (by arrival) with ``status`` to a request started after ``since``."""
        matching = [o for o in self.of(name, since=since) if o.status == status]
        return min(matching, key=lambda o: o.ended) if matching else None
