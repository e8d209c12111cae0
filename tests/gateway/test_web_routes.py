"""The web client's paths: every path outside /api/ goes to the web service, without a token,
with the web service's own security headers, and the gateway's refusals there are HTML pages.

The web service here is a small ASGI app on a loopback port that answers a page with its own
policy and records what it received; the API side is the ``Echo`` upstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from scripts.processes import free_port
from tests.gateway.conftest import Echo
from tests.gateway.support import send_target
from tests.support.errors import assert_error, assert_error_page
from tests.support.raw_server import connect, raw_server, read_response, send_and_read
from tests.support.serving import live_server

WEB_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Pages:
    """A web service: a small page with its own security headers and a session cookie."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append(
            {
                "method": scope["method"],
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            }
        )
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        if scope["path"] != "/bare":
            headers += [
                (b"content-security-policy", WEB_CSP),
                (b"x-frame-options", b"SAMEORIGIN"),
                (b"referrer-policy", b"same-origin"),
                (b"x-content-type-options", b"nosniff"),
                (b"strict-transport-security", b"max-age=1"),
                (b"set-cookie", b"session=abc; HttpOnly; SameSite=Lax; Path=/"),
            ]
        page = b"<!doctype html><title>Tasks</title><h1>Tasks</h1>"
        headers.append((b"content-length", str(len(page)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


@asynccontextmanager
async def platform(start_gateway: Any, **overrides: Any) -> AsyncIterator[Any]:
    """A gateway in front of a web service (``Pages``) and one Echo for every API service."""
    pages, echo = Pages(), Echo()
    async with (
        live_server(pages, lifespan="off") as web_url,
        live_server(echo, lifespan="off") as api_url,
        start_gateway(
            web_url=web_url, auth_url=api_url, todo_url=api_url, chat_url=api_url, **overrides
        ) as (_, client),
    ):
        yield pages, echo, client


@pytest.mark.parametrize(
    "path",
    ["/", "/tasks", "/tasks/5/edit", "/static/app.js", "/docs", "/metrics", "/apix", "/sign-in"],
)
async def test_every_path_outside_api_goes_to_the_web_service_without_a_token(start_gateway, path):
    async with platform(start_gateway) as (pages, echo, client):
        response = await client.get(path + "?next=/tasks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert pages.last["raw_path"] == path
    assert pages.last["query"] == "next=/tasks"
    assert echo.requests == []


async def test_the_gateways_own_probes_are_not_forwarded(start_gateway):
    async with platform(start_gateway) as (pages, _, client):
        liveness = await client.get("/healthz")
        readiness = await client.get("/readyz")
    assert liveness.json() == {"status": "ok"}
    assert readiness.status_code == 200
    assert readiness.headers["content-type"] == "application/json"
    assert pages.requests == []


async def test_api_paths_still_need_a_token_and_are_never_sent_to_the_web_service(
    start_gateway,
):
    async with platform(start_gateway) as (pages, echo, client):
        bare = await client.get("/api/tasks")
        unknown = await client.get("/api")
    assert_error(bare, 401, "invalid_token")
    assert_error(unknown, 404, "not_found")
    assert pages.requests == []
    assert echo.requests == []


async def test_web_pages_keep_the_web_services_security_headers(start_gateway):
    async with platform(start_gateway) as (_, _echo, client):
        response = await client.get("/tasks")
    assert response.headers["content-security-policy"] == WEB_CSP.decode()
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    # The site's transport policy stays the edge's, one header.
    assert response.headers.get_list("strict-transport-security") == [
        "max-age=63072000; includeSubDomains"
    ]
    assert response.headers["set-cookie"].startswith("session=abc; HttpOnly")
    assert response.headers["x-request-id"]


async def test_a_page_without_security_headers_gets_the_gateways_strict_ones(start_gateway):
    async with platform(start_gateway) as (_, _echo, client):
        response = await client.get("/bare")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_api_answers_keep_the_gateways_security_headers(start_gateway, issuer):
    async def lax_api(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-security-policy", WEB_CSP),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"content-length", b"2"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    async with (
        live_server(lax_api, lifespan="off") as url,
        start_gateway(todo_url=url) as (_, client),
    ):
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert response.headers.get_list("content-security-policy") == [
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ]
    assert response.headers.get_list("x-frame-options") == ["DENY"]


async def test_the_web_service_gets_the_cookie_and_the_api_never_does(start_gateway, issuer):
    cookie = {"Cookie": "__Host-session=opaque-session-id"}
    async with platform(start_gateway) as (pages, echo, client):
        page = await client.get("/tasks", headers=cookie)
        with_cookie_only = await client.get("/api/tasks", headers=cookie)
        with_both = await client.get("/api/tasks", headers={**cookie, **issuer.auth("ann")})
    assert page.status_code == 200
    assert pages.last["headers"]["cookie"] == "__Host-session=opaque-session-id"
    # A session cookie is no credential on the API, and never reaches an API service.
    assert_error(with_cookie_only, 401, "invalid_token")
    assert with_both.status_code == 200
    assert len(echo.requests) == 1
    assert "cookie" not in echo.headers_of()


async def test_web_requests_carry_the_client_address_and_no_user(start_gateway, issuer):
    async with platform(start_gateway) as (pages, _, client):
        await client.get(
            "/tasks",
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "X-User-Id": "ann",
                **issuer.auth("ann"),
            },
        )
    seen = pages.last["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert "x-user-id" not in seen


async def test_web_service_down_is_an_html_503(start_gateway):
    async with start_gateway(web_url=f"http://127.0.0.1:{free_port()}") as (_, client):
        page = await client.get("/tasks")
        api = await client.get("/api/nothing")
    text = assert_error_page(page, 503)
    assert "Service Unavailable" in text
    assert "web service is unavailable" in text
    assert "127.0.0.1" not in text
    assert_error(api, 404, "not_found")


async def test_web_service_reset_is_an_html_502_and_silence_an_html_504(start_gateway):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async with raw_server(hang_up) as url, start_gateway(web_url=url) as (_, client):
        reset = await client.post("/tasks", data={"title": "milk"})
    async with (
        raw_server(silent) as url,
        start_gateway(web_url=url, web_read_timeout=0.3) as (_, client),
    ):
        timeout = await client.get("/tasks")
    assert_error_page(reset, 502)
    assert "Bad Gateway" in reset.text
    assert_error_page(timeout, 504)
    assert "Gateway Timeout" in timeout.text


async def test_oversized_form_is_an_html_413_and_never_forwarded(start_gateway):
    async with platform(start_gateway, max_body_bytes=1024) as (pages, _, client):
        page = await client.post("/tasks", content=b"x" * 2048)
        api = await client.post("/api/auth/login", content=b"x" * 2048)
    assert_error_page(page, 413)
    assert "too large" in page.text
    assert_error(api, 413, "payload_too_large")
    assert pages.requests == []


@pytest.mark.parametrize("path", ["/tasks/../admin", "/a//b", "/%2e%2e/x", "/a%2Fb"])
async def test_ambiguous_web_path_is_an_html_400(start_gateway, path):
    async with platform(start_gateway) as (pages, _, client):
        response = await send_target(client, "GET", path)
    assert_error_page(response, 400)
    assert pages.requests == []


async def test_ambiguous_api_path_stays_a_json_400(start_gateway):
    async with platform(start_gateway) as (_, _echo, client):
        response = await send_target(client, "GET", "/api/tasks/../auth")
    assert_error(response, 400, "invalid_path")


async def test_cross_origin_preflight_to_a_page_is_an_html_403(start_gateway):
    async with platform(start_gateway, cors_origins=["https://app.example"]) as (
        pages,
        _,
        client,
    ):
        response = await client.options(
            "/tasks",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        page = await client.get("/tasks", headers={"Origin": "https://app.example"})
    assert_error_page(response, 403)
    assert [seen["method"] for seen in pages.requests] == ["GET"]
    # The pages are the gateway's origin: no CORS grant for them, whatever the API allows.
    assert "access-control-allow-origin" not in page.headers


async def test_http_limit_refusals_are_pages_on_web_paths_and_envelopes_on_api_paths(
    start_gateway,
):
    async with platform(start_gateway) as (_, _echo, client):
        url = str(client.base_url).rstrip("/")
        long_page = await send_and_read(url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
        long_api = await send_and_read(url, b"GET /api/" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
        big_header = b"x-big: " + b"v" * 9000 + b"\r\n"
        header_page = await send_and_read(
            url, b"GET /tasks HTTP/1.1\r\nhost: x\r\n" + big_header + b"\r\n"
        )
        header_probe = await send_and_read(
            url, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + big_header + b"\r\n"
        )
    for (status, headers, body), expected in ((long_page, 414), (header_page, 431)):
        assert status == expected
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert body.startswith(b"<!doctype html>")
        assert headers["x-request-id"].encode() in body
    for (status, headers, body), expected in ((long_api, 414), (header_probe, 431)):
        assert status == expected
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["request_id"] == headers["x-request-id"]


async def test_web_responses_stream_through(start_gateway):
    release = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        async with asyncio.timeout(10):
            await release.wait()
        await send({"type": "http.response.body", "body": b"data: two\n\n"})

    async with (
        live_server(stream, lifespan="off") as url,
        start_gateway(web_url=url) as (_, client),
        client.stream("POST", "/chat/stream") as response,
    ):
        chunks = response.aiter_bytes()
        first = await anext(chunks)
        release.set()
        rest = b"".join([chunk async for chunk in chunks])
    assert first == b"data: one\n\n"
    assert rest == b"data: two\n\n"


# --- whose X-Forwarded-For counts -----------------------------------------------------------


async def _logins(client: httpx.AsyncClient, forwarded_for: str, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = await client.post(
            "/api/auth/login",
            json={"email": "a@example.com", "password": "x"},
            headers={"X-Forwarded-For": forwarded_for},
        )
        statuses.append(response.status_code)
    return statuses


async def test_the_web_services_forwarded_address_is_the_client_for_the_login_limit(
    start_gateway,
):
    # This test's client plays the web service (127.0.0.1, a trusted forwarder), calling
    # the API for two browsers.
    async with platform(
        start_gateway, trusted_forwarders="127.0.0.1", rate_limit_auth_ip="2/minute"
    ) as (_, echo, client):
        first = await _logins(client, "198.51.100.7", 3)
        second = await _logins(client, "198.51.100.8", 2)
        proto = await client.post(
            "/api/auth/register",
            json={},
            headers={"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"},
        )
    assert first == [200, 200, 429]
    assert second == [200, 200]
    assert echo.headers_of(0)["x-forwarded-for"] == ["198.51.100.7"]
    assert echo.headers_of(-1)["x-forwarded-for"] == ["198.51.100.9"]
    # Only the address is believed from a forwarder, not how the site is served.
    assert proto.status_code == 200
    assert echo.headers_of(-1)["x-forwarded-proto"] == ["http"]


async def test_a_forged_forwarded_address_from_another_peer_is_ignored(start_gateway):
    # The web service is elsewhere (192.0.2.80): this client's X-Forwarded-For is its own
    # invention, and every spelling of it counts as this one peer.
    async with platform(
        start_gateway, trusted_forwarders="192.0.2.80", rate_limit_auth_ip="2/minute"
    ) as (_, echo, client):
        statuses = [
            *await _logins(client, "198.51.100.7", 1),
            *await _logins(client, "198.51.100.8", 1),
            *await _logins(client, "192.0.2.80", 1),
        ]
    assert statuses == [200, 200, 429]
    assert {tuple(echo.headers_of(i)["x-forwarded-for"]) for i in range(2)} == {("127.0.0.1",)}


async def test_forwarders_setting_rejects_what_is_not_an_address():
    from pydantic import ValidationError

    from gateway.settings import GatewaySettings

    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None, trusted_forwarders="web-service")
    settings = GatewaySettings(_env_file=None, trusted_forwarders="10.0.0.0/8, 172.30.250.11")
    assert [str(n) for n in settings.forwarder_networks()] == ["10.0.0.0/8", "172.30.250.11/32"]


async def test_a_kept_alive_connection_mixes_pages_and_api_answers(start_gateway, issuer):
    async with platform(start_gateway) as (_, _echo, client):
        reader, writer = await connect(str(client.base_url).rstrip("/"))
        try:
            writer.write(b"GET /tasks HTTP/1.1\r\nhost: x\r\n\r\n")
            page = await read_response(reader)
            token = issuer.auth("ann")["Authorization"].encode()
            writer.write(
                b"GET /api/tasks HTTP/1.1\r\nhost: x\r\nauthorization: " + token + b"\r\n\r\n"
            )
            api = await read_response(reader)
        finally:
            writer.close()
    assert page[0] == 200
    assert page[1]["x-frame-options"] == "SAMEORIGIN"
    assert api[0] == 200
    assert api[1]["x-frame-options"] == "DENY"
