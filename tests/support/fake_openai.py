"""A tiny OpenAI-compatible chat-completions server for tests: scripted answers, recorded asks.

It serves ``POST /v1/chat/completions`` on 127.0.0.1 (a real HTTP server under uvicorn, in the
test's event loop). Each request takes the next scripted step: a tool call, a reply, an HTTP
error, a hang that only the client's timeout ends, or a body of the test's own (sent whole,
in chunks without a length, or a byte at a time). Every request body is recorded, so tests
can check the history and tools the model was shown.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.serving import live_server


@dataclass(frozen=True)
class Step:
    """One scripted answer."""

    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    content: str | None = None
    status: int = 200
    hang: bool = False  # wait for ``release()`` (or the client's timeout) before answering
    raw_arguments: str | None = None  # sent instead of the JSON of the first tool call's args
    body: bytes | None = None  # sent instead of the completion built from the fields above
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # the body in chunks, without a Content-Length
    trickle_seconds: float = 0.0  # the body a byte at a time, this long apart


def call(name: str, **arguments: Any) -> Step:
    return Step(tool_calls=((name, arguments),))


def reply(text: str) -> Step:
    return Step(content=text)


@dataclass
class FakeOpenAI:
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    base_url: str = ""
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """Let a hanging answer (``Step(hang=True)``) go ahead."""
        self._released.set()

    def script(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests.clear()

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        if not self.steps:
            return JSONResponse({"error": {"message": "no scripted step left"}}, status_code=500)
        step = self.steps.pop(0)
        if step.hang:
            await self._released.wait()
        if step.status != 200:
            error = {"error": {"message": "scripted failure", "type": "server_error"}}
            return JSONResponse(error, status_code=step.status, headers=step.headers)
        payload = step.body if step.body is not None else self._completion(step, body)
        if step.trickle_seconds:
            return StreamingResponse(_trickle(payload, step.trickle_seconds), headers=step.headers)
        if step.chunked:
            return StreamingResponse(_chunks(payload), headers=step.headers)
        return Response(payload, headers=step.headers, media_type="application/json")

    def _completion(self, step: Step, body: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        if step.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:8]}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": step.raw_arguments
                        if step.raw_arguments is not None and index == 0
                        else json.dumps(arguments),
                    },
                }
                for index, (name, arguments) in enumerate(step.tool_calls)
            ]
        return json.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if step.tool_calls else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeOpenAI]:
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        async with live_server(app, lifespan="off") as base:
            self.base_url = f"{base}/v1"
            try:
                yield self
            finally:
                self._released.set()  # a hung answer ends, so the server can stop


async def _chunks(payload: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def _trickle(payload: bytes, seconds: float) -> AsyncIterator[bytes]:
    for start in range(len(payload)):
        yield payload[start : start + 1]
        await asyncio.sleep(seconds)
