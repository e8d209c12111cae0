"""The rate limiter under the gateway: counting, windows, retry-after, a store that fails."""

from __future__ import annotations

import pytest
from limits import parse_many
from prometheus_client import REGISTRY

from gateway.ratelimit import SWEEP_INTERVAL, RateLimiter, WindowCounters
from scripts.processes import free_port
from tests.support.redis import redis_binary


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_window_counters_count_until_the_window_ends():
    clock = Clock()
    counters = WindowCounters(clock=clock)
    assert [counters.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.get("k") == 3
    assert counters.get_expiry("k") == clock.now + 60
    clock.now += 59.9
    assert counters.incr("k", 60) == 4
    clock.now += 0.1
    assert counters.get("k") == 0
    assert counters.incr("k", 60) == 1


def test_window_counters_keep_keys_apart_and_sweep_expired_ones():
    clock = Clock()
    counters = WindowCounters(clock=clock)
    for n in range(100):
        counters.incr(f"user-{n}", 1)
    counters.incr("long", 3600)
    assert len(counters) == 101
    clock.now += SWEEP_INTERVAL
    counters.incr("fresh", 1)
    assert len(counters) == 2  # "long" and "fresh"
    counters.clear("long")
    assert counters.get("long") == 0
    assert counters.reset() == 1


async def test_limiter_refuses_over_the_limit_with_seconds_to_wait():
    limiter = RateLimiter("memory://", "fixed-window")
    items = parse_many("2/minute")
    assert await limiter.hit(items, "user", "ann") is None
    assert await limiter.hit(items, "user", "ann") is None
    retry_after = await limiter.hit(items, "user", "ann")
    assert retry_after is not None
    assert 1 <= retry_after <= 60
    assert await limiter.hit(items, "user", "bob") is None


async def test_every_limit_of_a_list_applies():
    limiter = RateLimiter("memory://", "fixed-window")
    items = parse_many("100/minute;2/hour")
    assert await limiter.hit(items, "ip", "1.2.3.4") is None
    assert await limiter.hit(items, "ip", "1.2.3.4") is None
    retry_after = await limiter.hit(items, "ip", "1.2.3.4")
    assert retry_after is not None
    assert retry_after > 60  # the hourly limit is the one refusing


async def test_other_strategies_work_in_memory():
    for strategy in ("sliding-window-counter", "moving-window"):
        limiter = RateLimiter("memory://", strategy)
        items = parse_many("1/minute")
        assert await limiter.hit(items, "user", "ann") is None
        assert await limiter.hit(items, "user", "ann") is not None


def storage_errors() -> float:
    return REGISTRY.get_sample_value("gateway_rate_limit_storage_errors_total") or 0.0


async def test_unreachable_shared_store_lets_requests_through_and_is_counted():
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0", "fixed-window")
    before = storage_errors()
    assert await limiter.hit(parse_many("1/minute"), "user", "ann") is None
    assert storage_errors() == before + 1


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
async def test_replicas_sharing_redis_share_the_count(redis_url, strategy):
    first, second = RateLimiter(redis_url, strategy), RateLimiter(redis_url, strategy)
    items = parse_many("3/minute")
    key = ("user", f"ann-{strategy}")
    results = [
        await first.hit(items, *key),
        await second.hit(items, *key),
        await first.hit(items, *key),
        await second.hit(items, *key),
    ]
    assert results[:3] == [None, None, None]
    assert results[3] is not None
    assert 1 <= results[3] <= 60
    await first.reset()


def test_without_redis_server_a_developer_skips_and_ci_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        redis_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        redis_binary()


def test_an_unknown_storage_scheme_is_refused_without_repeating_the_uri() -> None:
    # The limits library's own error repeats the whole URI, its password included.
    with pytest.raises(ValueError, match="'bogus'") as refused:
        RateLimiter("bogus://gateway:s3cret-password@redis:6379/0", "fixed-window")
    assert "s3cret-password" not in str(refused.value)
    assert refused.value.__suppress_context__
