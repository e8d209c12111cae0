"""Behind a trusted proxy the gateway reads X-Forwarded-For, and still only the proxy's entry.

The test client plays the trusted proxy (127.0.0.1): it appends the address it saw, the real
client's, to whatever the client wrote. The real client is limited whatever it wrote; another
real client behind the same proxy still gets in.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.security.spoofing import LIMIT, SPOOFS, login_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def behind_proxy(stack: Stack) -> Iterator[str]:
    with stack.replica(
        "gateway",
        GATEWAY_RATE_LIMIT_AUTH_IP=f"{LIMIT}/minute",
        GATEWAY_TRUSTED_PROXIES="127.0.0.1",
    ) as proxied:
        yield stack.url(proxied)


async def test_only_the_proxys_own_entry_counts(behind_proxy: str) -> None:
    async with httpx.AsyncClient(base_url=behind_proxy, timeout=30) as client:
        answers = []
        for n, spoof in enumerate(SPOOFS):
            written = spoof.get("X-Forwarded-For", f"192.0.2.{n + 1}")
            headers = {**spoof, "X-Forwarded-For": f"{written}, 198.51.100.50"}
            answers.append(await client.post("/api/auth/login", json=login_body(), headers=headers))
        other = await client.post(
            "/api/auth/login",
            json=login_body(),
            headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.51"},
        )

    assert [a.status_code for a in answers[:LIMIT]] == [401] * LIMIT
    assert {a.status_code for a in answers[LIMIT:]} == {429}
    assert other.status_code == 401
