"""Bounds on the long-lived streams one process serves (server-sent events).

A stream holds resources for minutes (an upstream connection in the web relay, a database
poll a second in the todo service), and a rate limit bounds how fast a user opens them, not
how many stay open. So each process serves at most ``total`` streams, and at most
``per_user`` for one user (a page open in a few tabs; not a loop opening thousands). The
counts are per process: N replicas serve up to N times as many.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterable, Iterable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def sse(event: str | None = None, data: Any = None, *, id: int | None = None) -> bytes:
    """One server-sent event as bytes: ``data`` as compact JSON on one line (a value JSON has
    no type for, such as a timestamp, as its text)."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    lines.append("data: " + payload)
    return ("\n".join(lines) + "\n\n").encode()


class StreamSlots:
    """Counts the streams this process serves, per user and in all."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open: Counter[str] = Counter()

    def acquire(self, user_id: str) -> bool:
        """Takes a slot for ``user_id``; False when the user or the process has no more."""
        if self._open[user_id] >= self.per_user or self._open.total() >= self.total:
            return False
        self._open[user_id] += 1
        return True

    def release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]

    def open_for(self, user_id: str) -> int:
        return self._open[user_id]

    def open_in_all(self) -> int:
        return self._open.total()


# Every event stream's headers: stored by no cache, and not buffered by a proxy in front
# (nginx reads X-Accel-Buffering), so each event leaves when it is written.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class EventStreamResponse(StreamingResponse):
    """The one way every process answers with server-sent events: ``text/event-stream`` with
    ``STREAM_HEADERS``."""

    media_type = "text/event-stream"

    # ``status_code`` with its default is what FastAPI reads to document a route that
    # declares this class (``response_class``); without it the OpenAPI document fails.
    def __init__(
        self, content: AsyncIterable[bytes] | Iterable[bytes], status_code: int = 200
    ) -> None:
        super().__init__(content, status_code=status_code, headers=STREAM_HEADERS)


class SlotStreamingResponse(EventStreamResponse):
    """An event stream that holds a slot already taken for ``user_id``, and gives it
    back when the response ends for any reason: its body's end, an error, the client gone,
    or cancellation. (The body's own ``finally`` would not do: a generator cancelled while
    suspended at a ``yield`` only runs it when it is garbage collected.)"""

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        slots: StreamSlots,
        user_id: str,
    ) -> None:
        super().__init__(content)
        self._slots: StreamSlots | None = slots
        self._user_id = user_id

    def release(self) -> None:
        """Gives the slot back (once; later calls do nothing)."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release(self._user_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                # A body stopped at a ``yield`` (the client gone while it was sent) runs its
                # own clean-up now, e.g. closes its upstream connection, not at collection.
                close = getattr(self.body_iterator, "aclose", None)
                if close is not None:
                    await close()
            finally:
                self.release()
