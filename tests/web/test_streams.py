"""The event-stream parser the notification relay reads the API with (the slots bounding
how many streams one process relays: tests/shared/test_streams.py)."""

from __future__ import annotations

import pytest

from shared.streams import sse
from web_service.notifications import valid_notification
from web_service.streams import MAX_EVENT_BYTES, EventParser, StreamTooLarge


def test_events_are_parsed_across_chunks_and_line_endings() -> None:
    parser = EventParser()
    stream = (
        b": keepalive\n\n"
        b'id: 7\nevent: notification\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"id: 8\revent: notification\rdata: x\r\r"
    )
    events = []
    for index in range(len(stream)):  # one byte at a time: every split point
        events += parser.feed(stream[index : index + 1])
    events += parser.feed(b"\n")  # the last lone CR is known to end a line only now
    assert [(e.id, e.event, e.data) for e in events] == [
        ("7", "notification", '{"a":\n1}'),
        ("8", "notification", "x"),
    ]


def test_comments_and_empty_events_are_not_events() -> None:
    parser = EventParser()
    assert parser.feed(b": keepalive\n\n\n\nevent: x\n\n") == []


def test_an_event_over_the_limit_ends_the_stream() -> None:
    parser = EventParser()
    with pytest.raises(StreamTooLarge):
        parser.feed(b"data: " + b"x" * MAX_EVENT_BYTES)
    parser = EventParser()
    lines = b"".join(b"data: " + b"y" * 1000 + b"\n" for _ in range(MAX_EVENT_BYTES // 1000 + 2))
    with pytest.raises(StreamTooLarge):
        parser.feed(lines)


def test_a_written_event_reads_back() -> None:
    written = sse("notification", {"title": "Tea\nat 5", "n": 1}, id=42)
    assert written.endswith(b"\n\n")
    [event] = EventParser().feed(written)
    assert (event.id, event.event, event.data) == (
        "42",
        "notification",
        '{"title":"Tea\\nat 5","n":1}',
    )


def test_only_notifications_of_the_contracts_shape_are_shown() -> None:
    good = {
        "id": 3,
        "kind": "reminder",
        "task_id": 9,
        "task_title": "Tea",
        "due_at": None,
        "remind_at": "2027-01-01T10:00:00Z",
        "created_at": "2027-01-01T10:00:01Z",
        "read_at": None,
    }
    assert valid_notification(good)
    for change in (
        {"id": "3"},
        {"id": True},
        {"id": 0},
        {"id": 2**63},
        {"task_id": None},
        {"task_title": 5},
        {"remind_at": None},
        {"remind_at": "tomorrow"},
        {"remind_at": "2027-01-01T10:00:00"},  # no offset
        {"due_at": 7},
        {"read_at": "x" * 100},
    ):
        assert not valid_notification({**good, **change}), change
    assert not valid_notification([good])
