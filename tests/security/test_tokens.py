"""Every user route refuses every forged, expired or missing token, at the gateway and at
the service's own port (zero trust: reaching a service directly gives nothing more).

Generated from the route table (``routes.py``): one test per route and place, each sending
every token of ``tokens.forged_tokens``, a session cookie without a token, and then the real
one, which must get through (so a route that refuses everything, or a wrong path, cannot pass
for a guarded one).
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.e2e.users import User
from tests.security.conftest import create_resources
from tests.security.routes import (
    GATEWAY_PUBLIC,
    TABLE,
    USER,
    Route,
    all_service_routes,
    canonical,
    compatibility_routes,
    fill,
    placeholders,
    through_gateway,
)
from tests.security.tokens import forged_tokens

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICE_ROUTES = all_service_routes()
# An unclassified route is attacked too (and fails test_route_table).
AT_SERVICE = sorted(r for r in SERVICE_ROUTES if not TABLE.get(r, USER).public)
AT_GATEWAY = sorted(
    [r for r in SERVICE_ROUTES if through_gateway(r) and (r.method, r.path) not in GATEWAY_PUBLIC]
    + sorted(compatibility_routes(SERVICE_ROUTES))
)
CASES = [("service", route) for route in AT_SERVICE] + [("gateway", r) for r in AT_GATEWAY]


def _refusal_problem(response: httpx.Response, method: str) -> str | None:
    """What is wrong with ``response`` as a refusal of a bad token (None: nothing)."""
    if response.status_code != 401:
        return f"answered {response.status_code}: {response.text[:200]}"
    if not response.headers.get("www-authenticate", "").startswith("Bearer"):
        return f"no Bearer challenge: {dict(response.headers)}"
    if method == "HEAD":
        return None
    body = response.json()
    if set(body) != {"detail", "code", "request_id"}:
        return f"not the error envelope: {body}"
    if body["request_id"] != response.headers.get("x-request-id"):
        return f"request id {body['request_id']} is not the header's"
    return None


@pytest.mark.parametrize(
    ("place", "route"), CASES, ids=[f"{place}: {route}" for place, route in CASES]
)
async def test_bad_tokens_are_refused(
    stack: Stack, gateway: httpx.AsyncClient, place: str, route: Route, intruder: User
) -> None:
    guard = TABLE.get(canonical(route), USER)
    values = {
        **await create_resources(
            gateway, intruder, placeholders(route), database_url=stack.database_url
        ),
        "user_id": intruder.id,
    }
    path = fill(route.path, values)
    body = fill(guard.body, values)
    method = route.method
    base = stack.url("gateway" if place == "gateway" else route.service)

    problems = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for name, token in forged_tokens(stack.signing_pem, intruder.id).items():
            headers = dict(guard.headers)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = await client.request(method, path, json=body, headers=headers)
            problem = _refusal_problem(response, method)
            if problem is not None:
                problems.append(f"{name}: {problem}")
        # A browser's cookies (the web client's session among them) are never credentials
        # of the API: without a bearer token the request is refused all the same.
        cookies = {"Cookie": f"__Host-session={intruder.id}; session={intruder.id}"}
        response = await client.request(
            method, path, json=body, headers={**guard.headers, **cookies}
        )
        problem = _refusal_problem(response, method)
        if problem is not None:
            problems.append(f"session cookie: {problem}")
        if guard.stream:
            # Its head is the answer; the stream itself runs until the token expires.
            async with client.stream(
                method, path, headers={**guard.headers, **intruder.headers}
            ) as real:
                pass
        else:
            real = await client.request(
                method, path, json=body, headers={**guard.headers, **intruder.headers}
            )

    assert problems == []
    # The real token gets through: the refusals above were the guard's doing.
    if guard.answer is not None:
        assert real.status_code == guard.answer, real.text
    else:
        assert real.status_code < 400 or real.status_code in (400, 422), real.text
