"""Raw asyncio TCP peers for tests that control every byte an HTTP peer sends: a server on
127.0.0.1 that hangs up, answers garbage, streams slowly or never answers, and the client side
(a connection and a response reader) for clients that send too much or too slowly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve each connection with ``handler``; the connection is aborted when it returns, and
    handlers still running when the block ends (a stalling one) are cancelled."""
    running: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    bound = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.close()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head (up to and including the blank line) and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to ``http://host:port``."""
    host, _, port = url.removeprefix("http://").partition(":")
    return await asyncio.open_connection(host, int(port))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: its status, headers (lower-case names) and Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


Response = tuple[int, dict[str, str], bytes]


async def send_and_read(url: str, data: bytes) -> Response:
    """Send ``data`` on a fresh connection, read one response, and check the server then
    closes the connection."""
    reader, writer = await connect(url)
    try:
        async with asyncio.timeout(10):
            writer.write(data)
            response = await read_response(reader)
            assert await reader.read() == b"", "the connection should close after a refusal"
        return response
    finally:
        writer.close()


def assert_refusal(response: Response, status: int, code: str) -> None:
    """A refusal the HTTP server wrote itself: the envelope, then the connection closes."""
    got, headers, body = response
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    envelope = json.loads(body)
    assert envelope == {
        "detail": envelope["detail"],
        "code": code,
        "request_id": headers["x-request-id"],
    }


def many_headers(count: int, size: int = 8) -> bytes:
    """``count`` header lines, each with a value of ``size`` bytes."""
    return b"".join(b"x-filler-%d: %s\r\n" % (i, b"v" * size) for i in range(count))
