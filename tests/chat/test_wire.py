"""The MCP client's wire (``chat_service.wire``): httpx2 requests carried by aiohttp.

The servers here are raw asyncio sockets on 127.0.0.1, so every byte on the wire is the
test's own: what arrives, how an answer is framed, when it stops answering.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx2
import pytest

from chat_service.wire import AiohttpTransport
from scripts.processes import free_port
from tests.chat.conftest import ChatAppFactory, User
from tests.support.raw_server import raw_server, read_request
from tests.support.serving import serve


def answer(status: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    transport = AiohttpTransport()
    async with httpx2.AsyncClient(transport=transport, timeout=2.0) as http:
        yield http


async def test_a_request_and_its_answer_cross_unchanged(client: httpx2.AsyncClient) -> None:
    seen: dict[str, bytes] = {}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["head"], seen["body"] = await read_request(reader)
        writer.write(answer("201 Created", {"Content-Type": "application/json"}, b'{"ok":1}'))
        await writer.drain()

    async with raw_server(echo) as base:
        response = await client.post(
            f"{base}/api/mcp?x=1",
            json={"message": "héllo"},
            headers={"Authorization": "Bearer abc", "Mcp-Method": "tools/call"},
        )
    assert response.status_code == 201
    assert response.json() == {"ok": 1}
    assert response.headers["content-type"] == "application/json"
    request_line, *header_lines = seen["head"].decode().split("\r\n")
    assert request_line == "POST /api/mcp?x=1 HTTP/1.1"
    headers = {
        name.lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    assert headers["authorization"] == "Bearer abc"
    assert headers["mcp-method"] == "tools/call"
    assert headers["content-type"] == "application/json"
    assert json.loads(seen["body"]) == {"message": "héllo"}
    assert int(headers["content-length"]) == len(seen["body"])


async def test_a_redirect_is_handed_to_the_caller_not_followed(
    client: httpx2.AsyncClient,
) -> None:
    # The request carries the user's token: the wire never takes it where a Location points.
    elsewhere: list[bytes] = []

    async def collector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        elsewhere.append(head)
        writer.write(answer("200 OK", {}, b"{}"))
        await writer.drain()

    async with raw_server(collector) as other:

        async def redirecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(answer("307 Temporary Redirect", {"Location": f"{other}/stolen"}, b""))
            await writer.drain()

        async with raw_server(redirecting) as base:
            response = await client.post(
                f"{base}/api/mcp", json={}, headers={"Authorization": "Bearer abc"}
            )
    assert response.status_code == 307
    assert response.headers["location"].endswith("/stolen")
    assert elsewhere == []


async def test_a_compressed_answer_is_decoded_once(client: httpx2.AsyncClient) -> None:
    async def compressed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        payload = gzip.compress(b'{"tasks":[]}')
        writer.write(answer("200 OK", {"Content-Encoding": "gzip"}, payload))
        await writer.drain()

    async with raw_server(compressed) as base:
        response = await client.get(base)
    assert response.json() == {"tasks": []}


async def test_a_streamed_answer_arrives_while_it_is_still_being_written(
    client: httpx2.AsyncClient,
) -> None:
    first_read = asyncio.Event()

    async def events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        chunk = b"event: one\ndata: 1\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        # The second event is written only once the client has read the first.
        await asyncio.wait_for(first_read.wait(), timeout=2.0)
        chunk = b"event: two\ndata: 2\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
        await writer.drain()

    received = []
    async with raw_server(events) as base, client.stream("GET", base) as response:
        async for chunk in response.aiter_bytes():
            received.append(chunk)
            first_read.set()
    assert b"".join(received) == b"event: one\ndata: 1\n\nevent: two\ndata: 2\n\n"


async def test_an_unanswered_request_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    transport = AiohttpTransport()
    async with (
        raw_server(silent) as base,
        httpx2.AsyncClient(transport=transport, timeout=0.3) as http,
    ):
        with pytest.raises(httpx2.ReadTimeout):
            await http.get(base)


async def test_a_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.ConnectError):
        await client.get(f"http://127.0.0.1:{free_port()}/api/mcp")


async def test_a_todo_service_that_never_answers_is_a_504_and_the_message_is_kept(
    make_chat_app: ChatAppFactory, alice: User
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with raw_server(silent) as base:
        chat = make_chat_app(todo_mcp_url=f"{base}/api/mcp", todo_timeout_seconds=0.3)
        async with serve(chat) as http:
            response = await http.post(
                "/api/chat", json={"message": "What's pending?"}, headers=alice.headers
            )
            assert response.status_code == 504
            assert response.json()["code"] == "todo_timeout"
            conversations = await http.get("/api/conversations", headers=alice.headers)
    assert [c["title"] for c in conversations.json()] == ["What's pending?"]
