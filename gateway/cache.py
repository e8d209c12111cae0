"""A value the gateway fetches from its services and keeps for a while: aggregated health and
the services' OpenAPI documents. Public routes answer from it, so a flood of requests costs the
services one fetch per period, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    """``await cached.get()``: the last loaded value while it is fresh, else a new load.

    How long a value stays fresh may depend on the value (a failed fetch can be retried sooner
    than a good answer is refreshed). Callers arriving while a load runs wait for that load
    and share its result: at most one load runs at a time.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[T]],
        fresh_for: Callable[[T], float],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._fresh_for = fresh_for
        self._clock = clock
        self._lock = asyncio.Lock()
        # (expiry on the clock, value)
        self._entry: tuple[float, T] | None = None

    def _fresh(self) -> tuple[float, T] | None:
        entry = self._entry
        return entry if entry is not None and self._clock() < entry[0] else None

    async def get(self) -> T:
        entry = self._fresh()
        if entry is None:
            async with self._lock:
                # Another caller may have loaded it while this one waited for the lock.
                entry = self._fresh()
                if entry is None:
                    value = await self._load()
                    entry = (self._clock() + self._fresh_for(value), value)
                    self._entry = entry
        return entry[1]
