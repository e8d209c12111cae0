"""Who gets through: tokens, public routes, compatibility routes, body limit, rate limits, CORS."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest

from tests.gateway.conftest import Echo
from tests.support.errors import assert_error
from tests.support.raw_server import connect, read_response
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic YW5uOnNlY3JldA==",
        b"Bearer \xe9\xe9",
    ],
)
async def test_missing_or_malformed_token_is_401_and_nothing_is_forwarded(
    echo, start_gateway, authorization
):
    upstream, url = echo
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=headers)
    assert_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"iat": None},
    ],
    ids=["expired", "wrong-audience", "unknown-issuer", "no-issued-at"],
)
async def test_invalid_token_claims_are_401(echo, start_gateway, issuer, claims):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get(
            "/api/tasks", headers={"Authorization": f"Bearer {issuer.mint('ann', **claims)}"}
        )
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


async def test_token_without_subject_is_401(echo, start_gateway, issuer):
    upstream, url = echo
    claims = {k: v for k, v in issuer.claims("ann").items() if k != "sub"}
    token = jwt.encode(
        claims, issuer.key.private_key, algorithm="EdDSA", headers={"kid": issuer.key.kid}
    )
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


async def test_unsigned_token_is_401(echo, start_gateway, issuer):
    upstream, url = echo
    token = jwt.encode(issuer.claims("ann"), key=None, algorithm="none")
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


async def test_token_signed_by_another_key_is_401(echo, start_gateway):
    upstream, url = echo
    forger = TestIssuer()  # same issuer name and kid shape, different private key
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=forger.auth("ann"))
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/auth/jwks"),
    ],
)
async def test_public_routes_need_no_token(echo, start_gateway, method, path):
    upstream, url = echo
    async with start_gateway(auth_url=url) as (_, client):
        # No token, so the gateway adds no X-User-Id of its own: the client's must not reach
        # the service either.
        response = await client.request(
            method, path, json={} if method == "POST" else None, headers={"X-User-Id": "ann"}
        )
    assert response.status_code == 200
    assert upstream.requests[-1]["path"] == path
    assert "x-user-id" not in upstream.headers_of()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/me"),
        ("GET", "/api/auth/login"),  # only POST is public
        ("POST", "/api/auth/password"),
        ("GET", "/api/auth/openapi.json"),
        ("POST", "/api/chat"),
        ("GET", "/api/conversations"),
        ("POST", "/api/mcp"),
    ],
)
async def test_every_other_route_needs_a_token(echo, start_gateway, method, path):
    upstream, url = echo
    async with start_gateway(auth_url=url, todo_url=url, chat_url=url) as (_, client):
        response = await client.request(method, path)
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/auth/me", "auth"),
        ("/api/tasks/3", "todo"),
        ("/api/mcp", "todo"),
        ("/api/notifications/stream", "todo"),
        ("/api/chat", "chat"),
        ("/api/conversations/9", "chat"),
    ],
)
async def test_each_prefix_goes_to_its_service(start_gateway, issuer, path, service):
    echoes = {name: Echo() for name in ("auth", "todo", "chat")}
    async with (
        live_server(echoes["auth"], lifespan="off") as auth,
        live_server(echoes["todo"], lifespan="off") as todo,
        live_server(echoes["chat"], lifespan="off") as chat,
        start_gateway(auth_url=auth, todo_url=todo, chat_url=chat) as (_, client),
    ):
        response = await client.get(path, headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert {name for name, echo in echoes.items() if echo.requests} == {service}
    assert echoes[service].requests[0]["path"] == path


@pytest.mark.parametrize("path", ["/api/nothing", "/api/", "/api", "/api/tasksx", "/api/metrics"])
async def test_unknown_api_paths_are_404_envelopes(start_gateway, issuer, path):
    async with start_gateway() as (_, client):
        response = await client.get(path, headers=issuer.auth("ann"))
    assert_error(response, 404, "not_found")


async def test_compatibility_task_route_goes_to_the_canonical_one(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.put(
            "/api/ann/tasks/5?x=1", json={"title": "t"}, headers=issuer.auth("ann")
        )
        listing = await client.get("/api/ann/tasks", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert upstream.requests[0]["method"] == "PUT"
    assert upstream.requests[0]["raw_path"] == "/api/tasks/5"
    assert upstream.requests[0]["query"] == "x=1"
    assert listing.status_code == 200
    assert upstream.requests[1]["raw_path"] == "/api/tasks"


async def test_compatibility_chat_route_goes_to_the_canonical_one(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(chat_url=url) as (_, client):
        response = await client.post(
            "/api/ann/chat", json={"message": "hi"}, headers=issuer.auth("ann")
        )
        deeper = await client.post("/api/ann/chat/more", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert upstream.requests[0]["raw_path"] == "/api/chat"
    assert_error(deeper, 404, "not_found")
    assert len(upstream.requests) == 1


async def test_compatibility_route_with_an_encoded_user_id(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/a%40b/tasks", headers=issuer.auth("a@b"))
    assert response.status_code == 200
    assert upstream.requests[0]["raw_path"] == "/api/tasks"


@pytest.mark.parametrize("path", ["/api/bob/tasks", "/api/bob/tasks/1", "/api/bob/chat"])
async def test_compatibility_route_for_another_user_is_403(echo, start_gateway, issuer, path):
    upstream, url = echo
    async with start_gateway(todo_url=url, chat_url=url) as (_, client):
        response = await client.get(path, headers=issuer.auth("ann"))
    assert_error(response, 403, "forbidden")
    assert upstream.requests == []


async def test_compatibility_route_without_token_is_401(echo, start_gateway):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/ann/tasks")
    assert_error(response, 401, "invalid_token")
    assert upstream.requests == []


async def test_body_over_the_limit_by_content_length_is_413(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url, max_body_bytes=1024) as (_, client):
        at_limit = await client.post("/api/tasks", content=b"x" * 1024, headers=issuer.auth("a"))
        over = await client.post("/api/tasks", content=b"x" * 1025, headers=issuer.auth("a"))
    assert at_limit.status_code == 200
    assert_error(over, 413, "payload_too_large")
    assert len(upstream.requests) == 1


async def test_a_declared_body_one_byte_over_the_limit_is_413_before_the_token_is_checked(
    echo, start_gateway
):
    # Refused by its Content-Length alone: no token check, no body read, nothing forwarded.
    upstream, url = echo
    async with start_gateway(todo_url=url, max_body_bytes=1024) as (_, client):
        over = await client.post("/api/tasks", content=b"x" * 1025)
    assert_error(over, 413, "payload_too_large")
    assert upstream.requests == []


async def test_streamed_body_over_the_limit_is_413_before_the_service(echo, start_gateway, issuer):
    upstream, url = echo

    async def chunks():
        for _ in range(8):
            yield b"y" * 512

    async with start_gateway(todo_url=url, max_body_bytes=2048) as (_, client):
        response = await client.post("/api/tasks", content=chunks(), headers=issuer.auth("a"))
    assert "content-length" not in response.request.headers  # sent chunked
    assert_error(response, 413, "payload_too_large")
    assert upstream.requests == []


async def test_a_chunked_body_over_the_limit_arriving_at_once_is_413_before_the_service(
    echo, start_gateway, issuer
):
    # No Content-Length, and the whole chunked body in one write: the server hands it over as
    # one complete message, which the gateway must measure as well as a streamed one.
    upstream, url = echo
    token = issuer.auth("a")["Authorization"].encode()
    body = b"x" * 2048
    request = (
        b"POST /api/tasks HTTP/1.1\r\nHost: gateway\r\nAuthorization: " + token + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}".encode()
        + b"\r\n"
        + body
        + b"\r\n0\r\n\r\n"
    )
    async with start_gateway(todo_url=url, max_body_bytes=1024) as (_, client):
        reader, writer = await connect(str(client.base_url))
        try:
            writer.write(request)
            status, _, answer = await asyncio.wait_for(read_response(reader), 10)
        finally:
            writer.close()
    assert status == 413, answer
    assert json.loads(answer)["code"] == "payload_too_large"
    assert upstream.requests == []


async def test_default_body_limit_is_one_mebibyte(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.post(
            "/api/tasks", content=b"z" * (2 * 1024 * 1024), headers=issuer.auth("a")
        )
    assert_error(response, 413, "payload_too_large")
    assert upstream.requests == []


async def test_user_rate_limit_is_429_with_retry_after(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url, rate_limit_user="3/minute") as (_, client):
        allowed = [await client.get("/api/tasks", headers=issuer.auth("ann")) for _ in range(3)]
        refused = await client.get("/api/tasks", headers=issuer.auth("ann"))
        other_user = await client.get("/api/tasks", headers=issuer.auth("bob"))
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert other_user.status_code == 200
    assert len(upstream.requests) == 4


async def test_chat_turns_have_their_own_per_user_limit(echo, start_gateway, issuer):
    # A turn may call the language model several times: the user's general limit would let
    # one account spend thousands of model calls a minute.
    upstream, url = echo
    async with start_gateway(chat_url=url, rate_limit_chat_turn="2/minute") as (_, client):
        turns = [
            await client.post("/api/chat", json={"message": "hi"}, headers=issuer.auth("ann"))
            for _ in range(2)
        ]
        refused = await client.post("/api/chat", json={"message": "hi"}, headers=issuer.auth("ann"))
        # The Phase III route is the same turn, counted in the same budget.
        compatible = await client.post(
            "/api/ann/chat", json={"message": "hi"}, headers=issuer.auth("ann")
        )
        reading = await client.get("/api/conversations", headers=issuer.auth("ann"))
        other_user = await client.post(
            "/api/chat", json={"message": "hi"}, headers=issuer.auth("bob")
        )
    assert [t.status_code for t in turns] == [200, 200]
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert_error(compatible, 429, "rate_limited")
    assert reading.status_code == 200
    assert other_user.status_code == 200
    assert len(upstream.requests) == 4


@pytest.mark.parametrize(
    "path", ["/api/auth/login", "/api/auth/register", "/api/auth/refresh", "/api/auth/logout"]
)
async def test_public_auth_writes_are_limited_per_client_ip(echo, start_gateway, path):
    upstream, url = echo
    other = "/api/auth/login" if path != "/api/auth/login" else "/api/auth/logout"
    async with start_gateway(auth_url=url, rate_limit_auth_ip="2/minute") as (_, client):
        statuses = [(await client.post(path, json={})).status_code for _ in range(2)]
        refused = await client.post(path, json={})
        # Each endpoint keeps its own budget.
        elsewhere = await client.post(other, json={})
    assert statuses == [200, 200]
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert elsewhere.status_code == 200
    assert len(upstream.requests) == 3


async def test_spoofed_forwarded_for_does_not_dodge_the_ip_limit(echo, start_gateway):
    _, url = echo
    async with start_gateway(auth_url=url, rate_limit_auth_ip="2/minute") as (_, client):
        statuses = [
            (
                await client.post(
                    "/api/auth/login", json={}, headers={"X-Forwarded-For": f"10.0.0.{n}"}
                )
            ).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 429, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_ip_limit(echo, start_gateway):
    _, url = echo
    settings = {"auth_url": url, "rate_limit_auth_ip": "1/minute", "trusted_proxies": "127.0.0.1"}
    async with start_gateway(**settings) as (_, client):

        async def login(forwarded_for: str) -> int:
            response = await client.post(
                "/api/auth/login", json={}, headers={"X-Forwarded-For": forwarded_for}
            )
            return response.status_code

        first = await login("203.0.113.1")
        again = await login("203.0.113.1")
        # A client cannot pick its address by prepending one: the proxy appended the real one.
        prepended = await login("198.51.100.7, 203.0.113.1")
        other = await login("203.0.113.2")
    assert (first, again, prepended, other) == (200, 429, 429, 200)


async def test_ipv6_clients_of_one_64_share_one_ip_limit(echo, start_gateway):
    # One subscriber holds a whole /64: a new source address per request costs it nothing.
    _, url = echo
    settings = {"auth_url": url, "rate_limit_auth_ip": "2/minute", "trusted_proxies": "127.0.0.1"}
    async with start_gateway(**settings) as (_, client):
        statuses = [
            (
                await client.post(
                    "/api/auth/login", json={}, headers={"X-Forwarded-For": f"2001:db8::{n:x}"}
                )
            ).status_code
            for n in range(1, 5)
        ]
        elsewhere = await client.post(
            "/api/auth/login", json={}, headers={"X-Forwarded-For": "2001:db8:0:1::1"}
        )
    assert statuses == [200, 200, 429, 429]
    assert elsewhere.status_code == 200


async def test_every_way_a_proxy_writes_one_client_address_counts_under_its_one_limit(
    echo, start_gateway
):
    # Proxies write an entry with its port (one per connection, so each attempt would be a new
    # client), in brackets, with an IPv6 zone, or IPv4-mapped; a trusted hop with its port is
    # still the trusted proxy, not the client.
    upstream, url = echo
    settings = {"auth_url": url, "rate_limit_auth_ip": "2/minute", "trusted_proxies": "127.0.0.1"}
    clients = {
        "203.0.113.7": [
            "203.0.113.7:50001",
            "203.0.113.7:50002",
            "::ffff:203.0.113.7",
            "203.0.113.7, 127.0.0.1:8080",
            "[::ffff:203.0.113.7]:443",
        ],
        "2001:db8::1": [
            "[2001:db8::1]:443",
            "[2001:db8::1]",
            "2001:db8::1%eth0",
            "2001:DB8:0:0::1, [::ffff:127.0.0.1]:9000",
        ],
    }
    async with start_gateway(**settings) as (_, client):
        for address, spellings in clients.items():
            statuses = []
            for spelling in spellings:
                response = await client.post(
                    "/api/auth/login", json={}, headers={"X-Forwarded-For": spelling}
                )
                statuses.append(response.status_code)
                if response.status_code == 200:
                    # The service is told the address itself, as its throttling counts it.
                    assert upstream.headers_of()["x-forwarded-for"] == [address]
            assert statuses == [200, 200] + [429] * (len(spellings) - 2), (address, statuses)


async def test_cors_preflight_from_an_allowed_origin_is_answered_by_the_gateway(
    echo, start_gateway
):
    upstream, url = echo
    origin = "https://app.example.com"
    async with start_gateway(todo_url=url, cors_origins=origin) as (_, client):
        response = await client.options(
            "/api/tasks/1",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert response.headers["access-control-max-age"] == "600"
    assert "Origin" in response.headers["vary"]
    assert upstream.requests == []


async def test_cors_preflight_allows_the_request_headers_the_api_reads(echo, start_gateway):
    # Without them in the answer, the browser never sends the request: no safe retry of a
    # write, no conditional update, no resumed event stream from a web client.
    _, url = echo
    origin = "https://app.example.com"
    wanted = ["idempotency-key", "if-match", "if-none-match", "last-event-id", "x-request-id"]
    async with start_gateway(todo_url=url, cors_origins=origin) as (_, client):
        response = await client.options(
            "/api/tasks",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": ", ".join(wanted),
            },
        )
    assert response.status_code == 204
    allowed = {name.strip() for name in response.headers["access-control-allow-headers"].split(",")}
    assert set(wanted) <= allowed, set(wanted) - allowed


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        # Exactly the configured origin, never one that merely begins with it.
        "https://app.example.com.evil.example",
        "https://app.example.com:8443",
    ],
)
async def test_cors_preflight_from_another_origin_is_refused(echo, start_gateway, origin):
    upstream, url = echo
    async with start_gateway(todo_url=url, cors_origins='["https://app.example.com"]') as (
        _,
        client,
    ):
        response = await client.options(
            "/api/tasks",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
    assert_error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
    assert upstream.requests == []


async def test_cors_headers_only_for_allowed_origins(echo, start_gateway, issuer):
    _, url = echo
    origin = "https://app.example.com"
    async with start_gateway(todo_url=url, cors_origins=origin) as (_, client):
        allowed = await client.get("/api/tasks", headers={**issuer.auth("a"), "Origin": origin})
        refused = await client.get("/api/tasks", headers={"Origin": origin})
        other = await client.get(
            "/api/tasks", headers={**issuer.auth("a"), "Origin": "https://evil.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in allowed.headers["access-control-expose-headers"]
    # Errors carry CORS headers too, so a browser client can read them.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("valid_first", [True, False])
async def test_two_authorization_headers_are_400_and_nothing_is_forwarded(
    echo, start_gateway, issuer, valid_first
):
    """The gateway and a service could each read a different one: neither is read."""
    upstream, url = echo
    pair = [("Authorization", issuer.auth("ann")["Authorization"]), ("Authorization", "Bearer x")]
    headers = pair if valid_first else pair[::-1]
    async with start_gateway(auth_url=url, todo_url=url) as (_, client):
        protected = await client.get("/api/tasks", headers=headers)
        public = await client.post("/api/auth/login", json={}, headers=headers)
    assert_error(protected, 400, "duplicate_header")
    assert_error(public, 400, "duplicate_header")
    assert upstream.requests == []


async def test_two_host_headers_are_400_and_nothing_is_forwarded(echo, start_gateway, issuer):
    """A proxy in front may route by the first Host and the gateway name the last as
    X-Forwarded-Host (the web client's origin check, its absolute links): neither is read
    (RFC 9112 3.2: a request with more than one Host is a 400)."""
    upstream, url = echo
    token = issuer.auth("ann")["Authorization"].encode()
    hosts = b"Host: gateway.example\r\nHost: evil.example\r\n"
    async with start_gateway(auth_url=url, todo_url=url) as (_, client):
        base = str(client.base_url)
        protected = b"GET /api/tasks HTTP/1.1\r\n" + hosts + b"Authorization: " + token
        public = b"POST /api/auth/login HTTP/1.1\r\n" + hosts + b"Content-Length: 2\r\n\r\n{}"
        for request in (protected + b"\r\n\r\n", public):
            reader, writer = await connect(base)
            writer.write(request)
            status, _, body = await read_response(reader)
            writer.close()
            assert (status, json.loads(body)["code"]) == (400, "duplicate_header")
    assert upstream.requests == []
