"""A service's own port has the gateway's HTTP limits: the auth app served as ``python -m
auth_service`` serves it (``shared.server``, bounded by the service's settings)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from auth_service.settings import AuthSettings
from shared.server import HttpLimits, http_protocol
from tests.support.raw_server import (
    assert_refusal,
    connect,
    many_headers,
    read_response,
    send_and_read,
)
from tests.support.serving import live_server


@pytest.fixture
async def auth_url(auth_app: FastAPI, auth_settings: AuthSettings) -> AsyncIterator[str]:
    settings = auth_settings.model_copy(
        update={
            "header_timeout_seconds": 0.5,
            "body_timeout_seconds": 0.5,
            "min_body_rate_bytes_per_second": 100,
            "body_rate_grace_seconds": 0.5,
        }
    )
    async with live_server(auth_app, http=http_protocol(HttpLimits.of(settings))) as url:
        yield url


async def test_a_9_kib_url_is_414_on_the_auth_port(auth_url):
    target = b"/api/auth/me?q=" + b"x" * 9 * 1024
    response = await send_and_read(auth_url, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert_refusal(response, 414, "url_too_long")


async def test_too_many_headers_are_431_on_the_auth_port(auth_url):
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + many_headers(1000) + b"\r\n"
    assert_refusal(await send_and_read(auth_url, request), 431, "too_many_headers")


async def test_a_header_over_the_field_limit_is_431_on_the_auth_port(auth_url):
    header = b"X-Big: " + b"h" * (16 * 1024 + 1) + b"\r\n"
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + header + b"\r\n"
    assert_refusal(await send_and_read(auth_url, request), 431, "header_field_too_large")


async def test_a_slow_head_and_a_stalled_body_are_408_on_the_auth_port(auth_url):
    started = time.monotonic()
    slow_head, stalled_body = await asyncio.gather(
        send_and_read(auth_url, b"GET /healthz HTTP/1.1\r\nHost: a\r\n"),
        send_and_read(
            auth_url,
            b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email":',
        ),
    )
    assert_refusal(slow_head, 408, "request_timeout")
    assert_refusal(stalled_body, 408, "request_timeout")
    assert time.monotonic() - started < 3


async def test_the_auth_port_takes_what_the_gateway_may_forward_on_a_kept_alive_connection(
    auth_url,
):
    # The gateway's own limits (100 fields, 32 KiB) plus the headers it adds.
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + many_headers(106, size=300) + b"\r\n"
    assert len(request) > 32 * 1024
    reader, writer = await connect(auth_url)
    try:
        async with asyncio.timeout(10):
            for _ in range(3):
                writer.write(request)
                status, _, body = await read_response(reader)
                assert status == 200, body
    finally:
        writer.close()


async def test_a_body_trickled_below_the_minimum_rate_is_408_on_the_auth_port(auth_url):
    reader, writer = await connect(auth_url)
    started = time.monotonic()
    writer.write(
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(10):
            response = await read_response(reader)
    finally:
        sender.cancel()
        writer.close()
    assert_refusal(response, 408, "request_body_too_slow")
    assert time.monotonic() - started < 3
