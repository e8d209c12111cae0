"""The platform end to end, through the gateway: real processes, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from gateway.api import HEALTH_CACHE_SECONDS
from tests.e2e.stack import Stack
from tests.e2e.users import User, register_and_login
from tests.support.errors import assert_error
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.asyncio(loop_scope="session")


def needs(*names: str) -> None:
    missing = [name for name in names if not Stack.available(name)]
    if missing:
        pytest.skip(f"not in this checkout: {', '.join(missing)}")


# --- auth through the gateway ---------------------------------------------------------------


async def test_register_login_me_and_refresh(gateway):
    user = await register_and_login(gateway, name="Ann")
    me = await gateway.get("/api/auth/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert me.json()["name"] == "Ann"

    refreshed = await gateway.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    fresh = refreshed.json()["access_token"]
    me_again = await gateway.get("/api/auth/me", headers={"Authorization": f"Bearer {fresh}"})
    assert me_again.json()["id"] == user.id
    # The spent refresh token is refused (and revokes the family).
    reused = await gateway.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert reused.status_code == 401


async def test_swagger_password_form_logs_in_through_the_gateway(gateway, user):
    response = await gateway.post(
        "/api/auth/login", data={"username": user.email, "password": user.password}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


async def test_jwks_is_public_and_me_is_not(gateway):
    jwks = await gateway.get("/api/auth/jwks")
    assert jwks.status_code == 200
    assert jwks.json()["keys"][0]["alg"] == "EdDSA"
    assert_error(await gateway.get("/api/auth/me"), 401, "invalid_token")


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("gateway", "/api/auth/me"),
        ("auth", "/api/auth/me"),
        ("todo", "/api/tasks"),
        ("chat", "/api/conversations"),
    ],
)
async def test_forged_token_is_refused_at_the_gateway_and_at_each_port(stack, service, path):
    needs(service)
    forged = TestIssuer().mint("someone")  # our issuer's name, somebody else's key
    async with httpx.AsyncClient(base_url=stack.url(service)) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("service", ["gateway", "auth", "todo", "chat"])
async def test_every_port_refuses_a_huge_url_and_too_many_headers_in_the_envelope(stack, service):
    needs(service)
    async with httpx.AsyncClient(base_url=stack.url(service), timeout=30) as client:
        # A longer query was a plain-text 400 from the HTTP parser (httpx sends at most 64 KiB;
        # tests/gateway/test_http_limits.py sends 100,000 characters over a raw socket).
        assert_error(await client.get("/healthz", params={"q": "x" * 60_000}), 414, "url_too_long")
        filler = {f"x-filler-{i}": "v" for i in range(200)}
        assert_error(await client.get("/healthz", headers=filler), 431, "too_many_headers")


async def test_spoofed_x_user_id_is_ignored(gateway, user):
    other = await register_and_login(gateway)
    response = await gateway.get("/api/auth/me", headers={**user.headers, "X-User-Id": other.id})
    assert response.status_code == 200
    assert response.json()["id"] == user.id


async def test_request_id_round_trip(gateway, user):
    response = await gateway.get(
        "/api/auth/me", headers={**user.headers, "X-Request-ID": "e2e-trace-1"}
    )
    assert response.headers["x-request-id"] == "e2e-trace-1"


async def test_two_mebibyte_body_is_413(gateway, user):
    response = await gateway.post(
        "/api/auth/register",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


async def test_unknown_api_path_is_404(gateway, user):
    assert_error(await gateway.get("/api/nowhere", headers=user.headers), 404, "not_found")


# --- upstreams going away and coming back -------------------------------------------------


async def test_stopped_service_is_503_quickly_and_recovers(stack, gateway, user):
    with stack.stopped("auth"):
        started = time.monotonic()
        response = await gateway.get("/api/auth/me", headers=user.headers)
        assert time.monotonic() - started < 5
        assert_error(response, 503, "service_unavailable")
    recovered = await gateway.get("/api/auth/me", headers=user.headers)
    assert recovered.status_code == 200


async def test_health_turns_503_and_back(stack, gateway):
    healthy = await gateway.get("/api/health")
    assert healthy.status_code == 200
    assert healthy.json()["services"]["auth"]["status"] == "ready"
    with stack.stopped("auth"):
        # The gateway answers from a round of checks up to a second old.
        await asyncio.sleep(HEALTH_CACHE_SECONDS)
        degraded = await gateway.get("/api/health")
    assert_error(degraded, 503, "service_unavailable")
    assert degraded.json()["detail"]["services"]["auth"]["status"] == "unavailable"
    await asyncio.sleep(HEALTH_CACHE_SECONDS)
    assert (await gateway.get("/api/health")).status_code == 200


async def test_issued_tokens_keep_working_while_auth_is_down(stack, gateway, user):
    needs("todo")
    with stack.stopped("auth"):
        response = await gateway.get("/api/tasks", headers=user.headers)
    assert response.status_code == 200


async def test_gateway_probes(stack):
    async with httpx.AsyncClient(base_url=stack.url("gateway")) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.json() == {"status": "ready", "checks": {"keys": True}}


async def test_openapi_and_docs(gateway):
    document = (await gateway.get("/api/openapi.json")).json()
    assert "/api/auth/login" in document["paths"]
    assert "/api/health" in document["paths"]
    schemes = document["components"]["securitySchemes"]
    assert any(s.get("flows", {}).get("password") for s in schemes.values())
    if Stack.available("todo"):
        assert "/api/tasks" in document["paths"]
    docs = await gateway.get("/api/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text


# --- rate limits ------------------------------------------------------------------------------


async def test_login_rate_limit_is_429_and_spoofing_does_not_dodge_it(stack, user):
    with stack.replica("gateway", GATEWAY_RATE_LIMIT_AUTH_IP="3/minute") as limited:
        async with httpx.AsyncClient(base_url=stack.url(limited), timeout=30) as gateway:
            statuses = []
            for n in range(5):
                response = await gateway.post(
                    "/api/auth/login",
                    json={"email": user.email, "password": user.password},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
                statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert int(response.headers["retry-after"]) >= 1
    assert_error(response, 429, "rate_limited")


async def test_a_spoofed_forwarded_for_sent_straight_to_the_auth_port_is_not_believed(stack):
    """The auth service throttles guesses per client address, taken from X-Forwarded-For only
    when the gateway's address sends it. Here the "gateway" is 127.0.0.2 and the attacker
    127.0.0.1: its guesses under made-up addresses all count as its own."""

    async def guesses(client: httpx.AsyncClient, email: str) -> list[int]:
        body = {"email": email, "password": "not the password"}
        return [
            (
                await client.post(
                    "/api/auth/login", json=body, headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
            ).status_code
            for n in range(7)
        ]

    with stack.replica("auth", FORWARDED_ALLOW_IPS="127.0.0.2") as auth:
        async with httpx.AsyncClient(base_url=stack.url(auth), timeout=30) as attacker:
            spoofed = await guesses(attacker, "victim-of-spoofing@example.com")
        from_gateway = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(
            base_url=stack.url(auth), transport=from_gateway, timeout=30
        ) as gateway:
            believed = await guesses(gateway, "seven-clients@example.com")

    assert spoofed == [401] * 5 + [429] * 2  # AUTH_LOCKOUT_THRESHOLD: 5 per address
    assert believed == [401] * 7  # seven clients, one guess each


async def test_user_rate_limit_is_429(stack, user):
    with stack.replica("gateway", GATEWAY_RATE_LIMIT_USER="2/minute") as limited:
        async with httpx.AsyncClient(base_url=stack.url(limited), timeout=30) as gateway:
            statuses = [
                (await gateway.get("/api/auth/me", headers=user.headers)).status_code
                for _ in range(3)
            ]
            last = await gateway.get("/api/auth/me", headers=user.headers)
    assert statuses == [200, 200, 429]
    assert_error(last, 429, "rate_limited")
    assert int(last.headers["retry-after"]) >= 1


# --- another trusted issuer -------------------------------------------------------------------


@contextmanager
def jwks_server(issuer: TestIssuer) -> Iterator[str]:
    """A local JWKS endpoint (as Better Auth publishes one) in a thread on 127.0.0.1."""
    document = json.dumps(issuer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/auth/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_token_of_a_second_trusted_issuer_passes_when_configured(stack, gateway):
    # The request goes to a service that verifies with the shared settings (auth trusts
    # only its own key set), so it is told about the issuer as well as the gateway.
    service, path = next(
        ((name, path) for name, path in (("todo", "/api/tasks"), ("chat", "/api/conversations"))
         if Stack.available(name)),
        (None, None),
    )  # fmt: skip
    if service is None or path is None:
        pytest.skip("needs the todo or the chat service")
    partner = TestIssuer(issuer="https://partner.example", audience="partner-app")
    token = {"Authorization": f"Bearer {partner.mint('partner-user-1')}"}

    assert_error(await gateway.get(path, headers=token), 401, "invalid_token")
    with jwks_server(partner) as jwks_url:
        trusted = json.dumps(
            [{"issuer": partner.issuer, "audience": partner.audience, "jwks_url": jwks_url}]
        )
        for name in (service, "gateway"):
            stack.restart(name, env={"EXTRA_TRUSTED_ISSUERS": trusted})
        try:
            response = await gateway.get(path, headers=token)
        finally:
            for name in (service, "gateway"):
                stack.restart(name)
    assert response.status_code == 200, response.text
    assert response.json() == []  # a new user of that issuer: nothing yet
    # Not configured any more: refused again.
    assert_error(await gateway.get(path, headers=token), 401, "invalid_token")


# --- tasks through the gateway ----------------------------------------------------------------


async def test_every_task_route_through_the_gateway(gateway, user):
    needs("todo")
    created = await gateway.post(
        "/api/tasks", json={"title": "Buy milk", "priority": "high"}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert created.headers["location"] == f"/api/tasks/{task['id']}"
    assert task["user_id"] == user.id

    listed = await gateway.get("/api/tasks", headers=user.headers)
    assert [t["id"] for t in listed.json()] == [task["id"]]
    assert listed.headers["x-total-count"] == "1"

    one = await gateway.get(f"/api/tasks/{task['id']}", headers=user.headers)
    assert one.json()["title"] == "Buy milk"

    replaced = await gateway.put(
        f"/api/tasks/{task['id']}", json={"title": "Buy oat milk"}, headers=user.headers
    )
    assert replaced.status_code == 200, replaced.text
    patched = await gateway.patch(
        f"/api/tasks/{task['id']}", json={"description": "2 litres"}, headers=user.headers
    )
    assert patched.json()["description"] == "2 litres"
    completed = await gateway.patch(f"/api/tasks/{task['id']}/complete", headers=user.headers)
    assert completed.json()["completed"] is True

    deleted = await gateway.delete(f"/api/tasks/{task['id']}", headers=user.headers)
    assert deleted.status_code == 204
    gone = await gateway.get(f"/api/tasks/{task['id']}", headers=user.headers)
    assert gone.status_code == 404


async def test_users_never_see_each_others_tasks(gateway, user):
    needs("todo")
    other = await register_and_login(gateway)
    mine = await gateway.post("/api/tasks", json={"title": "Mine"}, headers=user.headers)
    task_id = mine.json()["id"]

    assert (await gateway.get("/api/tasks", headers=other.headers)).json() == []
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"title": "Stolen"} if method in ("PUT", "PATCH") else None
        response = await gateway.request(
            method, f"/api/tasks/{task_id}", json=body, headers=other.headers
        )
        assert response.status_code == 404, method
    # Spoofing the owner's id as a header changes nothing.
    spoofed = await gateway.get(
        f"/api/tasks/{task_id}", headers={**other.headers, "X-User-Id": user.id}
    )
    assert spoofed.status_code == 404
    still = await gateway.get(f"/api/tasks/{task_id}", headers=user.headers)
    assert still.json()["title"] == "Mine"


async def test_compatibility_routes(gateway, user: User):
    needs("todo")
    created = await gateway.post(
        f"/api/{user.id}/tasks", json={"title": "Phase II client"}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    listed = await gateway.get(f"/api/{user.id}/tasks", headers=user.headers)
    assert task_id in [t["id"] for t in listed.json()]
    toggled = await gateway.patch(f"/api/{user.id}/tasks/{task_id}/complete", headers=user.headers)
    assert toggled.json()["completed"] is True
    updated = await gateway.put(
        f"/api/{user.id}/tasks/{task_id}", json={"title": "Renamed"}, headers=user.headers
    )
    assert updated.json()["title"] == "Renamed"

    other = await register_and_login(gateway)
    for method, path in (
        ("GET", f"/api/{user.id}/tasks"),
        ("GET", f"/api/{user.id}/tasks/{task_id}"),
        ("DELETE", f"/api/{user.id}/tasks/{task_id}"),
        ("POST", f"/api/{user.id}/chat"),
    ):
        response = await gateway.request(method, path, headers=other.headers)
        assert_error(response, 403, "forbidden")
    deleted = await gateway.delete(f"/api/{user.id}/tasks/{task_id}", headers=user.headers)
    assert deleted.status_code == 204


async def test_todo_down_is_503_and_back(stack, gateway, user):
    needs("todo")
    with stack.stopped("todo"):
        assert_error(
            await gateway.get("/api/tasks", headers=user.headers), 503, "service_unavailable"
        )
    assert (await gateway.get("/api/tasks", headers=user.headers)).status_code == 200


# --- MCP through the gateway ------------------------------------------------------------------

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def mcp_call(gateway: httpx.AsyncClient, user: User, method: str, params: dict) -> dict:
    response = await gateway.post(
        "/api/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={**MCP_HEADERS, **user.headers},
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    assert "error" not in body, body
    return body["result"]


async def test_mcp_tools_through_the_gateway_act_for_the_token_user(gateway, user):
    needs("todo")
    initialized = await mcp_call(
        gateway,
        user,
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"},
        },
    )
    assert "tools" in initialized["capabilities"]
    tools = await mcp_call(gateway, user, "tools/list", {})
    assert {"add_task", "list_tasks"} <= {tool["name"] for tool in tools["tools"]}
    await mcp_call(
        gateway, user, "tools/call", {"name": "add_task", "arguments": {"title": "Via MCP"}}
    )
    listed = await gateway.get("/api/tasks", headers=user.headers)
    assert "Via MCP" in [task["title"] for task in listed.json()]

    anonymous = await gateway.post(
        "/api/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=MCP_HEADERS
    )
    assert_error(anonymous, 401, "invalid_token")
