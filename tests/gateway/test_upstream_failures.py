"""Upstream trouble becomes 503, 502 or 504 in the envelope; streams pass through as produced.

The misbehaving upstreams are tiny raw asyncio servers on 127.0.0.1: one that is not there,
one that hangs up, one that answers garbage, one that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from scripts.processes import free_port
from tests.gateway.conftest import Echo
from tests.support.errors import assert_error
from tests.support.raw_server import raw_server
from tests.support.serving import live_server


async def _read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


def errors(upstream: str, kind: str) -> float:
    labels = {"upstream": upstream, "kind": kind}
    return REGISTRY.get_sample_value("gateway_upstream_errors_total", labels) or 0.0


async def test_refused_connection_is_503_at_once(start_gateway, issuer):
    before = errors("todo", "refused")
    async with start_gateway(todo_url=f"http://127.0.0.1:{free_port()}") as (_, client):
        started = time.monotonic()
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert time.monotonic() - started < 5
    assert_error(response, 503, "service_unavailable")
    assert "todo" in response.json()["detail"]
    assert errors("todo", "refused") == before + 1


async def test_connection_closed_without_an_answer_is_502(start_gateway, issuer):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.transport.abort()

    before = errors("todo", "reset")
    async with raw_server(hang_up) as url, start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert_error(response, 502, "bad_gateway")
    assert errors("todo", "reset") > before


async def test_garbage_answer_is_502(start_gateway, issuer):
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"SPEAK FRIEND AND ENTER\r\n\r\n")
        await writer.drain()
        writer.close()

    before = errors("chat", "invalid") + errors("chat", "reset")
    async with raw_server(garbage) as url, start_gateway(chat_url=url) as (_, client):
        response = await client.post("/api/chat", json={}, headers=issuer.auth("ann"))
    assert_error(response, 502, "bad_gateway")
    assert errors("chat", "invalid") + errors("chat", "reset") == before + 1


async def test_answer_without_its_body_is_502(start_gateway, issuer):
    async def no_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        await writer.drain()
        writer.transport.abort()

    async with raw_server(no_body) as url, start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert_error(response, 502, "bad_gateway")


async def test_body_cut_short_after_it_started_never_looks_complete(start_gateway, issuer):
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.transport.abort()

    async with raw_server(short) as url, start_gateway(todo_url=url) as (_, client):
        # The status line is already out: the connection is closed mid-body instead.
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/api/tasks", headers=issuer.auth("ann"))
        after = await client.get("/healthz")
    assert after.status_code == 200


async def test_service_that_never_answers_is_504_after_its_read_timeout(start_gateway, issuer):
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        await asyncio.Event().wait()

    before = errors("todo", "timeout")
    async with (
        raw_server(stall) as url,
        start_gateway(todo_url=url, todo_read_timeout=0.3) as (_, client),
    ):
        started = time.monotonic()
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
        elapsed = time.monotonic() - started
    assert_error(response, 504, "gateway_timeout")
    assert 0.3 <= elapsed < 5
    assert errors("todo", "timeout") == before + 1


async def test_service_not_accepting_connections_is_503_after_its_connect_timeout(
    start_gateway, issuer
):
    # A listener that never accepts, its backlog already full: a new connection gets no answer.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        before = errors("todo", "connect_timeout")
        async with start_gateway(todo_url=f"http://127.0.0.1:{port}", todo_connect_timeout=0.3) as (
            _,
            client,
        ):
            started = time.monotonic()
            response = await client.get("/api/tasks", headers=issuer.auth("ann"))
            elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert_error(response, 503, "service_unavailable")
    assert 0.3 <= elapsed < 5
    assert errors("todo", "connect_timeout") == before + 1


async def test_each_upstream_has_its_own_timeout(start_gateway, issuer):
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        await asyncio.sleep(0.5)  # the upstream's own pace, not the test's clock
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    settings = {"todo_read_timeout": 0.1, "chat_read_timeout": 5.0}
    async with (
        raw_server(slow) as url,
        start_gateway(todo_url=url, chat_url=url, **settings) as (
            _,
            client,
        ),
    ):
        todo = await client.get("/api/tasks", headers=issuer.auth("ann"))
        chat = await client.post("/api/chat", json={}, headers=issuer.auth("ann"))
    assert todo.status_code == 504
    assert chat.status_code == 200


async def test_a_service_that_comes_back_is_used_again(start_gateway, issuer):
    port = free_port()
    upstream = Echo()
    async with start_gateway(todo_url=f"http://127.0.0.1:{port}") as (_, client):
        down = await client.get("/api/tasks", headers=issuer.auth("ann"))
        async with live_server(upstream, lifespan="off", port=port):
            up = await client.get("/api/tasks", headers=issuer.auth("ann"))
        down_again = await client.get("/api/tasks", headers=issuer.auth("ann"))
        async with live_server(upstream, lifespan="off", port=port):
            back = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert [r.status_code for r in (down, up, down_again, back)] == [503, 200, 503, 200]
    assert len(upstream.requests) == 2


async def test_server_sent_events_arrive_as_they_are_produced(echo, start_gateway, issuer):
    upstream, url = echo
    async with (
        start_gateway(todo_url=url) as (_, client),
        client.stream("GET", "/api/tasks/stream", headers=issuer.auth("ann")) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.aiter_lines()
        # The upstream is still holding the second event back: the first came through alone.
        assert await anext(lines) == "data: first"
        assert not upstream.release.is_set()
        upstream.release.set()
        rest = [line async for line in lines]
    assert "data: second" in rest


async def test_stream_cut_by_the_service_ends_with_an_error_event(start_gateway, issuer):
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            b"e\r\ndata: first\n\n\r\n"
        )
        await writer.drain()
        writer.transport.abort()

    async with (
        raw_server(cut) as url,
        start_gateway(chat_url=url) as (_, client),
        client.stream("POST", "/api/chat", json={}, headers=issuer.auth("ann")) as response,
    ):
        text = (await response.aread()).decode()
    assert response.status_code == 200
    assert text.startswith("data: first\n\n")
    assert "event: error\ndata: " in text
    error = json.loads(text.split("event: error\ndata: ", 1)[1].split("\n\n", 1)[0])
    # The envelope, and the status the answer would have had: as a service's own error event.
    assert error == {
        "detail": error["detail"],
        "code": "bad_gateway",
        "request_id": response.headers["x-request-id"],
        "status": 502,
    }


async def test_client_that_leaves_a_stream_closes_the_upstream_connection(start_gateway, issuer):
    upstream_closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\ne\r\ndata: first\n\n\r\n"
        )
        await writer.drain()
        # Never ends by itself: only the gateway closing the connection ends it.
        await reader.read()
        upstream_closed.set()

    async with (
        raw_server(endless) as url,
        start_gateway(chat_url=url) as (_, client),
    ):
        async with client.stream("POST", "/api/chat", json={}, headers=issuer.auth("a")) as r:
            assert await anext(r.aiter_lines()) == "data: first"
        async with asyncio.timeout(10):
            await upstream_closed.wait()


async def test_client_that_leaves_mid_upload_sends_nothing_upstream(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        host, port = client.base_url.host, client.base_url.port
        _, writer = await asyncio.open_connection(host, port)
        token = issuer.mint("ann")
        writer.write(
            b"POST /api/tasks HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
            + b"only the beginning"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        # The gateway is still answering, and nothing half-sent reached the service.
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert [r["method"] for r in upstream.requests] == ["GET"]


async def test_event_streams_beyond_the_upstreams_bound_are_refused_and_requests_go_on(
    start_gateway, issuer
):
    """Each relayed stream holds one of the upstream's connections for its life: enough of
    them (a few accounts' notification streams) once took every connection, and every
    request to that service waited for one, then failed."""
    streams_closed = 0
    closed = asyncio.Event()

    async def service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal streams_closed
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/stream" not in head.split(b"\r\n", 1)[0]:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: 2\r\n\r\n[]")  # fmt: skip
            await writer.drain()
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\ne\r\ndata: first\n\n\r\n"
        )
        await writer.drain()
        await reader.read()  # until the gateway closes it
        streams_closed += 1
        closed.set()

    stream = "/api/notifications/stream"
    async with (
        raw_server(service) as url,
        start_gateway(todo_url=url, upstream_max_streams=1, upstream_max_connections=2) as (
            _,
            client,
        ),
    ):
        async with client.stream("GET", stream, headers=issuer.auth("a")) as first:
            lines = first.aiter_lines()  # kept: a collected iterator closes its stream
            assert await anext(lines) == "data: first"
            refused = await client.get(stream, headers=issuer.auth("b"))
            error = assert_error(refused, 429, "too_many_streams")
            assert refused.headers["retry-after"] == "5", error
            async with asyncio.timeout(10):
                await closed.wait()  # the refused stream's connection, closed at once
            assert streams_closed == 1
            # Requests still find a connection.
            for _ in range(3):
                assert (await client.get("/api/tasks", headers=issuer.auth("b"))).json() == []
        async with client.stream("GET", stream, headers=issuer.auth("b")) as again:
            assert await anext(again.aiter_lines()) == "data: first"


def test_the_stream_bound_must_leave_connections_for_requests(gateway_settings):
    with pytest.raises(ValueError, match="GATEWAY_UPSTREAM_MAX_STREAMS must be below"):
        gateway_settings(upstream_max_streams=512, upstream_max_connections=512)
