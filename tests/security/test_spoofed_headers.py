"""Headers a client may write but only the platform may set change nothing.

``X-Forwarded-For`` and its cousins do not dodge the per-IP limit on login (behind a trusted
proxy: ``test_trusted_proxy.py``); ``X-User-Id`` does not dodge the per-user limit. As an
identity, ``X-User-Id`` is covered by ``test_isolation.py``: services trust the token alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.e2e.users import User
from tests.security.spoofing import LIMIT, SPOOFS, login_body
from tests.support.errors import assert_error

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def limited(stack: Stack, owner: User, intruder: User) -> Iterator[str]:
    """A gateway with small limits (per IP on login, per user), for this module; its URL.
    The users log in before: their logins would count."""
    limits = f"{LIMIT}/minute"
    with stack.replica(
        "gateway", GATEWAY_RATE_LIMIT_AUTH_IP=limits, GATEWAY_RATE_LIMIT_USER=limits
    ) as limited:
        yield stack.url(limited)


async def test_forwarding_headers_do_not_dodge_the_login_limit(limited: str) -> None:
    async with httpx.AsyncClient(base_url=limited, timeout=30) as client:
        answers = [
            await client.post("/api/auth/login", json=login_body(), headers=spoof)
            for spoof in SPOOFS
        ]

    assert [a.status_code for a in answers[:LIMIT]] == [401] * LIMIT
    for answer in answers[LIMIT:]:
        assert_error(answer, 429, "rate_limited")
        assert int(answer.headers["retry-after"]) >= 1


async def test_x_user_id_does_not_dodge_the_per_user_limit(
    limited: str, owner: User, intruder: User
) -> None:
    async with httpx.AsyncClient(base_url=limited, timeout=30) as client:
        answers = [
            await client.get(
                "/api/tasks",
                headers={
                    **intruder.headers,
                    "X-User-Id": str(uuid.uuid4()),
                    "X-Forwarded-For": f"203.0.113.{n}",
                },
            )
            for n in range(LIMIT + 2)
        ]
        others = await client.get("/api/tasks", headers=owner.headers)

    assert [a.status_code for a in answers[:LIMIT]] == [200] * LIMIT
    for answer in answers[LIMIT:]:
        assert_error(answer, 429, "rate_limited")
    assert others.status_code == 200


async def test_other_spellings_of_a_limited_path_do_not_dodge_its_limit(limited: str) -> None:
    """The same route spelled with escapes (either case) is public and counted under one
    limit, as the auth service it reaches reads them all as one path. Logout: no other test
    here uses its budget."""
    spellings = [
        "/api/auth/%6Cogout",
        "/api/auth/%6cog%6Fut",
        "/%61pi/auth/logout",
        "/api/auth/lo%67ou%74",
        "/api/auth/logout",
    ]
    async with httpx.AsyncClient(base_url=limited, timeout=30) as client:
        answers = [
            await client.post(
                "/",
                json={"refresh_token": "not-a-token"},
                extensions={"target": target.encode()},  # sent as written, byte for byte
            )
            for target in spellings
        ]

    assert [a.status_code for a in answers[:LIMIT]] == [204] * LIMIT
    for answer in answers[LIMIT:]:
        assert_error(answer, 429, "rate_limited")
