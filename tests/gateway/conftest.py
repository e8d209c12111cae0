"""In-process gateway tests: the gateway and small upstreams served by uvicorn in the test's
own event loop, on 127.0.0.1 ports picked by the kernel, reached over real TCP.

Real sockets (not ``httpx.ASGITransport``) because what is under test is the wire: header
handling, streaming chunk by chunk, and upstreams that refuse, reset or stall.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.app import Gateway, create_app
from gateway.server import CoalescingHttpToolsProtocol
from gateway.settings import GatewaySettings
from scripts.processes import free_port
from shared.server import HttpLimits, http_protocol
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer


class Echo:
    """An upstream that answers every request with what it received, as JSON.

    ``/api/tasks/stream`` answers with server-sent events: the first at once, the second only
    after the test sets ``release`` (so streaming is proven without timing).
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body_length": len(body),
        }
        self.requests.append(seen)
        if scope["path"] == "/api/tasks/stream":
            await self._events(send)
            return
        payload = json.dumps(seen).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"x-upstream-secret"),
                    (b"x-upstream-secret", b"hop-by-hop"),
                    (b"keep-alive", b"timeout=5"),
                    (b"x-total-count", b"3"),
                    (b"set-cookie", b"a=1; Path=/"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _events(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        async with asyncio.timeout(10):
            await self.release.wait()
        await send({"type": "http.response.body", "body": b"data: second\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def headers_of(self, index: int = -1) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name, value in self.requests[index]["headers"]:
            grouped.setdefault(name, []).append(value)
        return grouped


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    upstream = Echo()
    async with live_server(upstream, lifespan="off") as url:
        yield upstream, url


@pytest.fixture
def gateway_settings() -> Callable[..., GatewaySettings]:
    def build(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "environment": "test",
            "auth_url": f"http://127.0.0.1:{free_port()}",
            "todo_url": f"http://127.0.0.1:{free_port()}",
            "chat_url": f"http://127.0.0.1:{free_port()}",
            "web_url": f"http://127.0.0.1:{free_port()}",
            "rate_limit_user": "",
            "rate_limit_chat_turn": "",
            "rate_limit_auth_ip": "",
            "access_log": False,
            **overrides,
        }
        return GatewaySettings(_env_file=None, **values)

    return build


@pytest.fixture
def start_gateway(
    issuer: TestIssuer, gateway_settings: Callable[..., GatewaySettings]
) -> Callable[..., Any]:
    """``async with start_gateway(**settings) as (app, client)``: a served gateway."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
        settings = gateway_settings(**overrides)
        app = create_app(settings, verifier=issuer.verifier())
        protocol = http_protocol(HttpLimits.of(settings), CoalescingHttpToolsProtocol)
        async with (
            # Served as `python -m gateway` serves it: one write per response, its HTTP
            # limits, and X-Forwarded-* left to the gateway itself.
            live_server(app, http=protocol, proxy_headers=False) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            yield app, client

    return start
