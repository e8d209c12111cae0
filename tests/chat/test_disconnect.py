"""A streamed turn whose client hangs up keeps running (so its reply is stored), but no longer
than the turn timeout: a slow model or a slow tool cannot keep it, or its calls, going.

Real HTTP on both sides (uvicorn), so the client's disconnect is a closed connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.chat.conftest import ChatAppFactory, User, stored_messages
from tests.support.fake_openai import FakeOpenAI, Step
from tests.support.raw_server import raw_server, read_request
from tests.support.serving import live_server

TURN_TIMEOUT = 1.0
# Time for the turn to notice its timeout and record the failure, on a busy machine.
MARGIN = 2.0


async def hang_up_during_the_turn(app: Any, user: User, message: str) -> float:
    """Start a streamed turn on ``app`` served over HTTP, close the connection once the stream
    has begun, and return how long the turn's task then ran, counted from the request."""
    async with live_server(app) as base, httpx.AsyncClient(base_url=base) as client:
        started = time.monotonic()
        async with client.stream(
            "POST",
            "/api/chat",
            json={"message": message},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            tasks: set[asyncio.Task[None]] = app.state.chat_tasks
            assert len(tasks) == 1
            (turn,) = tasks
        # The block closed the stream before reading it: the client is gone.
        await asyncio.wait_for(asyncio.shield(turn), TURN_TIMEOUT + MARGIN)
        return time.monotonic() - started


async def test_a_hung_up_turn_waiting_on_the_model_ends_at_the_turn_timeout(
    openai_app: Any,
    model: FakeOpenAI,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    model.script(Step(hang=True), Step(content="too late"))
    app = openai_app(openai_timeout_seconds=30.0, turn_timeout_seconds=TURN_TIMEOUT)
    ran = await hang_up_during_the_turn(app, alice, "What's pending?")
    assert TURN_TIMEOUT <= ran < TURN_TIMEOUT + MARGIN

    model.release()  # the model answers now: nobody is left to ask it again
    await asyncio.sleep(0.2)
    assert len(model.requests) == 1
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "What's pending?")]


async def test_a_hung_up_turn_waiting_on_a_tool_ends_at_the_turn_timeout(
    make_chat_app: ChatAppFactory,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    requests: list[bytes] = []

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        requests.append(head)
        await asyncio.Event().wait()  # the todo service is stuck: it never answers

    async with raw_server(never_answers) as todo:
        app = make_chat_app(
            todo_mcp_url=f"{todo}/api/mcp",
            todo_timeout_seconds=30.0,
            turn_timeout_seconds=TURN_TIMEOUT,
        )
        ran = await hang_up_during_the_turn(app, alice, "What's pending?")
        assert TURN_TIMEOUT <= ran < TURN_TIMEOUT + MARGIN
        await asyncio.sleep(0.2)
        assert len(requests) == 1  # one list_tasks call, never retried after the timeout
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "What's pending?")]
