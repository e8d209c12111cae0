"""The slots bounding how many streams one process serves (per user and in all), the
response that gives its slot back however it ends, and the one way every process answers with
server-sent events."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from shared.streams import STREAM_HEADERS, SlotStreamingResponse, StreamSlots
from tests.support.code import ROOT, sources


def test_slots_are_bounded_per_user_and_in_all() -> None:
    slots = StreamSlots(per_user=2, total=3)
    assert slots.acquire("ann")
    assert slots.acquire("ann")
    assert not slots.acquire("ann")
    assert slots.acquire("bob")
    assert not slots.acquire("cy")  # the process is full
    slots.release("ann")
    assert slots.open_for("ann") == 1
    assert slots.acquire("cy")
    slots.release("cy")
    slots.release("bob")
    slots.release("ann")
    assert slots.open_for("ann") == slots.open_for("bob") == slots.open_in_all() == 0
    assert slots.acquire("ann")


SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "GET", "path": "/"}


def _response(slots: StreamSlots, body: AsyncIterator[bytes]) -> SlotStreamingResponse:
    assert slots.acquire("ann")
    return SlotStreamingResponse(body, slots=slots, user_id="ann")


async def _never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _ignore(message: Message) -> None:
    return None


async def test_the_slot_is_released_when_the_body_ends() -> None:
    slots = StreamSlots(per_user=1, total=10)

    async def body() -> AsyncIterator[bytes]:
        yield b": one\n\n"

    response = _response(slots, body())
    await response(SCOPE, _never_disconnects, _ignore)
    assert slots.open_for("ann") == 0
    response.release()  # a second release changes nothing
    assert slots.open_for("ann") == 0
    assert slots.acquire("ann")


async def test_the_slot_is_released_when_the_body_fails() -> None:
    slots = StreamSlots(per_user=1, total=10)

    async def body() -> AsyncIterator[bytes]:
        yield b": one\n\n"
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError):
        await _response(slots, body())(SCOPE, _never_disconnects, _ignore)
    assert slots.open_for("ann") == 0


async def test_the_slot_is_released_when_the_client_goes_away() -> None:
    slots = StreamSlots(per_user=1, total=10)
    sent = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        while True:
            yield b": keepalive\n\n"
            await asyncio.sleep(0.01)

    async def send(message: Message) -> None:
        sent.set()

    async def receive() -> Message:
        await sent.wait()
        return {"type": "http.disconnect"}

    async with asyncio.timeout(5):
        await _response(slots, body())(SCOPE, receive, send)
    assert slots.open_for("ann") == 0


async def test_the_slot_is_released_when_the_response_is_cancelled() -> None:
    slots = StreamSlots(per_user=1, total=10)
    started = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        started.set()
        while True:
            yield b": keepalive\n\n"
            await asyncio.sleep(0.01)

    task = asyncio.create_task(_response(slots, body())(SCOPE, _never_disconnects, _ignore))
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slots.open_for("ann") == 0


async def test_a_body_stopped_at_a_yield_is_closed_when_the_client_goes_away() -> None:
    """The body's own clean-up (closing its upstream connection, say) runs when the response
    ends, not when the generator is collected."""
    slots = StreamSlots(per_user=1, total=10)
    first_sent = asyncio.Event()
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b": keepalive\n\n"
        finally:
            closed.set()

    async def send(message: Message) -> None:
        if message.get("body"):
            first_sent.set()
            await asyncio.Event().wait()  # a client that stopped reading

    async def receive() -> Message:
        await first_sent.wait()
        return {"type": "http.disconnect"}

    response = _response(slots, body())
    async with asyncio.timeout(5):
        await response(SCOPE, receive, send)
    assert closed.is_set()
    assert slots.open_for("ann") == 0


def test_every_event_stream_is_the_shared_response() -> None:
    """No module builds a streaming answer of its own, so every event stream has
    ``STREAM_HEADERS`` (not stored, not buffered by a proxy)."""
    builders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sources(but={ROOT / "shared" / "streams.py"})
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
        == "StreamingResponse"
    ]
    assert builders == []


async def test_an_event_stream_is_neither_stored_nor_buffered() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def body() -> AsyncIterator[bytes]:
        yield b": one\n\n"

    await _response(StreamSlots(per_user=1, total=1), body())(SCOPE, _never_disconnects, send)
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert {(k.lower().encode(), v.encode()) for k, v in STREAM_HEADERS.items()} <= headers.items()
