"""One write per response: the transport wrapper under the gateway's uvicorn protocol."""

from __future__ import annotations

import asyncio

import httpx

from gateway.server import CoalescingHttpToolsProtocol, CoalescingTransport
from tests.support.serving import live_server


class RecordingTransport:
    """Stands in for the socket's transport: records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_in_one_loop_step_leave_as_one():
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next"


async def test_close_sends_what_is_pending_first_and_nothing_after():
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"]
    assert transport.is_closing()
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]
    assert transport.get_extra_info("peername") == "info:peername"


async def test_shutting_the_sending_side_sends_what_is_pending_first():
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
    transport.write_eof()
    assert inner.writes == [b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n", b"<eof>"]


async def test_streamed_chunks_still_leave_as_they_come():
    release = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"second\n"})

    async with (
        live_server(app, lifespan="off", http=CoalescingHttpToolsProtocol) as url,
        httpx.AsyncClient() as client,
        client.stream("GET", url) as response,
    ):
        lines = response.aiter_lines()
        assert await anext(lines) == "first"
        release.set()
        assert [line async for line in lines] == ["second"]
