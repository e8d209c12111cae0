"""Rate limits with the ``limits`` library: in process memory, or Redis for several replicas.

In memory the synchronous storage is used on purpose: it never waits on anything, and its
expiry runs on a timer thread at most every 10 ms. The library's asyncio memory storage
starts an expiry task on almost every call that walks every key, which costs O(active keys)
per request (about 1 ms at 10,000 keys, measured here). Redis goes through ``limits.aio``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem
from limits import strategies as sync_strategies
from limits.aio import strategies as async_strategies
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string

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


class RateLimiter:
    """``await limiter.hit(items, *key)`` -> None when allowed, else seconds to wait.

    A storage failure lets the request through (and is logged and counted): the limits
    protect capacity, and an outage of their store must not become an outage of the API.
    """

    def __init__(self, uri: str, strategy: RateLimitStrategy) -> None:
        self._sync: sync_strategies.RateLimiter | None = None
        self._async: async_strategies.RateLimiter | None = None
        if uri.startswith("memory://"):
            self._sync = _SYNC[strategy](MemoryStorage())
        else:
            scheme_uri = uri if uri.startswith("async+") else f"async+{uri}"
            storage = storage_from_string(scheme_uri, wrap_exceptions=True)
            self._async = _ASYNC[strategy](storage)

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
