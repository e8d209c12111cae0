"""How the gateway is served: uvicorn with uvloop and httptools, one send() per response,
with the HTTP limits every process has (``shared.server``), refused as HTML pages on the
web client's paths.

uvicorn writes a response's status line and headers as soon as the application starts the
response, and the body in a second write: two system calls and two TCP segments for every
small JSON answer. Measured with py-spy under load, that first write alone was 12% of the
gateway's CPU (on loopback, the kernel delivers to the client inside the sender's call).
The gateway starts and finishes a sized response in one step, so here writes made in the
same event-loop step are joined and leave as one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.routes import is_web_target
from shared.server import BoundedHttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes in one event-loop step go out as one ``write``."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(BoundedHttpToolsProtocol):
    """The platform's bounded httptools protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence Any.
        coalescing: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)

    def _refusal_is_page(self) -> bool:
        # The target as far as it arrived: a browser asking for a page gets a page.
        url: bytes = getattr(self, "url", b"")  # set once a request has begun
        return is_web_target(url)
