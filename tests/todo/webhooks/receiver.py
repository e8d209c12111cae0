"""A real webhook receiver for the tests: a Starlette app served by uvicorn on 127.0.0.1
that checks each request with the verifier published in docs/webhooks.md (the very code,
read from the page) and answers as the test planned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"

Verifier = Callable[..., bool]


def documented_verifier() -> Verifier:
    """``verify_webhook`` exactly as docs/webhooks.md shows it (the block after the
    ``<!-- verifier -->`` marker)."""
    page = DOCS.read_text(encoding="utf-8")
    block = page.split("<!-- verifier -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    verifier: Verifier = namespace["verify_webhook"]
    return verifier


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """Answers each request with the next planned answer (200 once the plan is spent):
    a status code, ``"redirect"``, ``"slow"`` (sleeps past any test timeout), ``"flood"``
    (an endless body) or ``"hold"`` (waits for the test to set the status code in ``held``),
    each after ``delay`` seconds (a receiver that takes its time but answers)."""

    secret: str = ""
    plan: list[int | str] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    held: list[asyncio.Future[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.verify = documented_verifier()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append(
            Received(request.url.path, headers, body, self.verify(self.secret, headers, body))
        )
        answer = self.plan.pop(0) if self.plan else 200
        await asyncio.sleep(self.delay)
        if answer == "redirect":
            return Response(status_code=302, headers={"Location": "/elsewhere"})
        if answer == "slow":
            await asyncio.sleep(30)
            return Response(status_code=200)
        if answer == "hold":
            status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.held.append(status)
            return Response(status_code=await status)
        if answer == "flood":
            return StreamingResponse(self._flood(), status_code=200)
        return Response(status_code=int(answer))

    async def _flood(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(100_000):  # 1,000 s at most: far longer than any attempt
            yield chunk
            await asyncio.sleep(0.01)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])
