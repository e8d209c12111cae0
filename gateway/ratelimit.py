"""Rate limits with the ``limits`` library: in process memory, or Redis for several replicas.

In memory, the counting is synchronous on purpose (it never waits on anything). The default
fixed-window strategy counts in :class:`WindowCounters`, a storage of our own on the
library's storage interface: the library's asyncio memory storage starts an expiry task on
almost every call that walks every key, O(active keys) per request (about 1 ms at 10,000
keys, measured here), and its synchronous one restarts a timer thread every 10 ms while
requests arrive, which costs the event loop's thread the GIL hand-offs. The other strategies
use the library's synchronous memory storage. Redis goes through ``limits.aio``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from limits import RateLimitItem
from limits import strategies as sync_strategies
from limits.aio import strategies as async_strategies
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string

from gateway.metrics import RATE_LIMIT_STORAGE_ERRORS
from gateway.settings import RateLimitStrategy

logger = logging.getLogger(__name__)

_SYNC: dict[str, type[sync_strategies.RateLimiter]] = {
    "fixed-window": sync_strategies.FixedWindowRateLimiter,
    "sliding-window-counter": sync_strategies.SlidingWindowCounterRateLimiter,
    "moving-window": sync_strategies.MovingWindowRateLimiter,
}
_ASYNC: dict[str, type[async_strategies.RateLimiter]] = {
    "fixed-window": async_strategies.FixedWindowRateLimiter,
    "sliding-window-counter": async_strategies.SlidingWindowCounterRateLimiter,
    "moving-window": async_strategies.MovingWindowRateLimiter,
}


# How often expired counters are swept out of WindowCounters, in seconds.
SWEEP_INTERVAL = 10.0


class WindowCounters(Storage):
    """In-process counters for the fixed-window strategy: no thread, no task, O(1) a hit.

    A counter that has expired is replaced when next touched; once per ``SWEEP_INTERVAL``
    every expired one is dropped, so memory follows the keys active in one window.
    """

    STORAGE_SCHEME = None

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        # key -> [count, expires_at]
        self._counters: dict[str, list[float]] = {}
        self._next_sweep = clock() + SWEEP_INTERVAL

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self._clock()
        counter = self._counters.get(key)
        if counter is None or counter[1] <= now:
            counter = [0, now + expiry]
            self._counters[key] = counter
        counter[0] += amount
        if now >= self._next_sweep:
            self._sweep(now)
        return int(counter[0])

    def get(self, key: str) -> int:
        counter = self._counters.get(key)
        if counter is None or counter[1] <= self._clock():
            return 0
        return int(counter[0])

    def get_expiry(self, key: str) -> float:
        now = self._clock()
        counter = self._counters.get(key)
        return counter[1] if counter is not None and counter[1] > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self._counters)
        self._counters.clear()
        return count

    def clear(self, key: str) -> None:
        self._counters.pop(key, None)

    def __len__(self) -> int:
        return len(self._counters)

    def _sweep(self, now: float) -> None:
        self._counters = {k: c for k, c in self._counters.items() if c[1] > now}
        self._next_sweep = now + SWEEP_INTERVAL


class RateLimiter:
    """``await limiter.hit(items, *key)`` -> None when allowed, else seconds to wait.

    A storage failure lets the request through (and is logged and counted): the limits
    protect capacity, and an outage of their store must not become an outage of the API.
    """

    def __init__(self, uri: str, strategy: RateLimitStrategy) -> None:
        self._sync: sync_strategies.RateLimiter | None = None
        self._async: async_strategies.RateLimiter | None = None
        if uri.startswith("memory://"):
            storage = WindowCounters() if strategy == "fixed-window" else MemoryStorage()
            self._sync = _SYNC[strategy](storage)
        else:
            scheme_uri = uri if uri.startswith("async+") else f"async+{uri}"
            try:
                shared = storage_from_string(scheme_uri, wrap_exceptions=True)
            except ConfigurationError:
                # The library's message repeats the whole URI, its password included.
                scheme = uri.partition("://")[0]
                raise ValueError(f"no rate-limit storage for the scheme {scheme!r}") from None
            self._async = _ASYNC[strategy](shared)

    async def hit(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        try:
            for item in items:
                allowed = (
                    self._sync.hit(item, *key)
                    if self._sync is not None
                    else await self._hit_async(item, key)
                )
                if not allowed:
                    return await self._retry_after(item, key)
        except StorageError as exc:
            RATE_LIMIT_STORAGE_ERRORS.inc()
            logger.warning("rate-limit storage unavailable, request let through: %s", exc)
        return None

    async def _hit_async(self, item: RateLimitItem, key: tuple[str, ...]) -> bool:
        assert self._async is not None
        return await self._async.hit(item, *key)

    async def _retry_after(self, item: RateLimitItem, key: tuple[str, ...]) -> int:
        if self._sync is not None:
            stats = self._sync.get_window_stats(item, *key)
        else:
            assert self._async is not None
            stats = await self._async.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def reset(self) -> None:
        """Forget every counter (tests and benchmarks)."""
        if self._sync is not None:
            self._sync.storage.reset()
        elif self._async is not None:
            await self._async.storage.reset()
