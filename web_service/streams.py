"""Server-sent events: a parser for the API's event stream. (The relay's own events are
written by ``shared.streams.sse``, as the chat service writes its own; the slots bounding how
many streams a process relays, per user and in all, are ``shared.streams.StreamSlots``, sized
by ``WEB_NOTIFICATION_STREAMS_PER_USER`` and ``WEB_NOTIFICATION_STREAMS_MAX``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

# An event larger than this is not one of the API's (a notification is well under 2 KB).
MAX_EVENT_BYTES = 64 * 1024


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None


class StreamTooLarge(ValueError):
    """An event (or a line) over ``MAX_EVENT_BYTES``: not the API's stream."""


@dataclass
class EventParser:
    """The events of a ``text/event-stream`` as its bytes arrive (the WHATWG rules: lines end
    at CR, LF or CRLF; ``field: value``; a blank line ends an event; comments are skipped)."""

    _buffer: bytes = b""
    _event: Event = field(default_factory=Event)
    _data: list[str] = field(default_factory=list)
    _size: int = 0

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, after = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[after:]
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) + self._size > MAX_EVENT_BYTES:
            raise StreamTooLarge
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            event, data = self._event, self._data
            self._event, self._data, self._size = Event(), [], 0
            if not data:
                return None
            event.data = "\n".join(data)
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._size += len(line)
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event.event = value
        elif name == "id" and "\0" not in value:
            self._event.id = value
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first line ends, and where the next begins (CRLF, LF or a lone CR)."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, lf + 1
    if cr + 1 == len(buffer):
        return None  # a CR at the end may be the first half of a CRLF
    return cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
