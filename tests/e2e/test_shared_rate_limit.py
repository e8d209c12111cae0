"""Gateway replicas share their rate limits through one Redis (``GATEWAY_RATE_LIMIT_STORAGE_URI``).

Two real gateway processes, each on its own port, in front of the same services, with the
same Redis (tests/support/redis.py: skipped without ``redis-server`` on a developer's
machine, a failure under CI). Requests spread over both are refused at the combined limit,
as they must be behind a load balancer; with per-process counting each would allow it whole.
"""

from __future__ import annotations

import httpx

from tests.e2e.stack import Stack
from tests.e2e.users import User

LIMIT = 6


async def test_two_gateways_sharing_redis_refuse_at_the_combined_limit(
    stack: Stack, user: User, redis_url: str
) -> None:
    # The moving window counts exactly the last minute: no window boundary mid-test.
    shared = {
        "GATEWAY_RATE_LIMIT_STORAGE_URI": redis_url,
        "GATEWAY_RATE_LIMIT_STRATEGY": "moving-window",
        "GATEWAY_RATE_LIMIT_USER": f"{LIMIT}/minute",
    }
    with stack.replica("gateway", **shared) as one, stack.replica("gateway", **shared) as other:
        async with (
            httpx.AsyncClient(base_url=stack.url(one), timeout=30) as first,
            httpx.AsyncClient(base_url=stack.url(other), timeout=30) as second,
        ):
            answers = [
                await (first if n % 2 == 0 else second).get("/api/auth/me", headers=user.headers)
                for n in range(2 * LIMIT)
            ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * LIMIT + [429] * LIMIT
    for refused in answers[LIMIT:]:
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
