"""The shared keyset cursor codec and page headers (``shared.pagination``)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.requests import Request

from shared.columns import MAX_ID
from shared.errors import BadRequest, InvalidCursor
from shared.pagination import (
    MAX_CURSOR_LENGTH,
    cursor_id,
    cursor_text,
    cursor_timestamp,
    decode_cursor_list,
    decode_cursor_object,
    encode_cursor,
    next_link,
    page_headers,
)
from todo_service import listing
from todo_service.models import TITLE_MAX
from todo_service.schemas import SortField

MOMENT = datetime(2026, 11, 27, 14, 30, 0, 123456, tzinfo=UTC)
TODO_KEYS = {"s", "o", "k", "i"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- cursors issued before the codec was shared: clients may still hold them ----------------

# Minted by main at f23752f (todo_service.listing.encode_cursor, chat_service.pagination).
ISSUED_TODO = [
    (
        "eyJzIjogImNyZWF0ZWQiLCAibyI6ICJkZXNjIiwgImsiOiAiMjAyNi0xMS0yN1QxNDozMDowMC4xMjM0NTYr"
        "MDA6MDAiLCAiaSI6IDQyfQ",
        SortField.CREATED,
        "desc",
        (MOMENT, 42),
    ),
    ("eyJzIjogImR1ZSIsICJvIjogImFzYyIsICJrIjogbnVsbCwgImkiOiA3fQ", SortField.DUE, "asc", (None, 7)),
    (
        "eyJzIjogInByaW9yaXR5IiwgIm8iOiAiZGVzYyIsICJrIjogImhpZ2giLCAiaSI6IDkyMjMzNzIwMzY4NTQ3"
        "NzU4MDd9",
        SortField.PRIORITY,
        "desc",
        ("high", MAX_ID),
    ),
    (  # a non-ASCII title, which the old encoder wrote as \u escapes
        "eyJzIjogInRpdGxlIiwgIm8iOiAiYXNjIiwgImsiOiAiY2FmXHUwMGU5IFx1ZDgzZFx1ZGUwMCIsICJpIjogM30",
        SortField.TITLE,
        "asc",
        ("café 😀", 3),
    ),
]


@pytest.mark.parametrize(("cursor", "sort", "order", "position"), ISSUED_TODO)
def test_a_todo_cursor_issued_before_still_decodes(
    cursor: str, sort: SortField, order: str, position: tuple[Any, int]
) -> None:
    assert listing.decode_cursor(cursor, sort, order) == position


def test_chat_cursors_issued_before_still_decode() -> None:
    conversations = "WyIyMDI2LTExLTI3VDE0OjMwOjAwLjEyMzQ1NiswMDowMCIsMTJd"
    updated_at, last_id = decode_cursor_list(conversations, length=2)
    assert (cursor_timestamp(updated_at), cursor_id(last_id)) == (MOMENT, 12)
    (message_id,) = decode_cursor_list("Wzld", length=1)
    assert cursor_id(message_id) == 9


def test_chat_cursors_are_written_as_before() -> None:
    # Same bytes as the old encoder: a client comparing cursors sees no change.
    assert encode_cursor([MOMENT, 12]) == "WyIyMDI2LTExLTI3VDE0OjMwOjAwLjEyMzQ1NiswMDowMCIsMTJd"
    assert encode_cursor([9]) == "Wzld"


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        (SortField.CREATED, MOMENT),
        (SortField.UPDATED, MOMENT.astimezone(timezone(timedelta(hours=-5)))),
        (SortField.DUE, None),
        (SortField.PRIORITY, "low"),
        (SortField.TITLE, '50% off: "quotes" & <angles> \\ é 😀'),
    ],
)
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("task_id", [1, MAX_ID])
def test_a_todo_cursor_round_trips(sort: SortField, key: Any, order: str, task_id: int) -> None:
    cursor = listing.encode_cursor(sort, order, key, task_id)
    assert listing.decode_cursor(cursor, sort, order) == (key, task_id)


def test_the_longest_todo_cursor_fits_the_limit() -> None:
    # A title of 4-byte UTF-8 characters only, after the largest id.
    title = "\U0010ffff" * TITLE_MAX
    cursor = listing.encode_cursor(SortField.TITLE, "desc", title, MAX_ID)
    assert len(cursor) <= MAX_CURSOR_LENGTH
    assert listing.decode_cursor(cursor, SortField.TITLE, "desc") == (title, MAX_ID)


def test_a_cursor_is_url_safe_and_unpadded() -> None:
    for payload in ([MOMENT, MAX_ID], ["??>>~~", 1], {"k": "é" * 7}):
        cursor = encode_cursor(payload)
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_invalid_cursor_is_the_400_invalid_cursor() -> None:
    error = InvalidCursor()
    assert isinstance(error, BadRequest)
    assert (error.status_code, error.code) == (400, "invalid_cursor")


# --- what is refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-base64!",  # a character outside base64url (the old decoder skipped it)
        "Wzld=",  # padding is never issued
        "Wz+d",  # standard base64, not base64url
        "Wz/d",
        "Wz d",
        "Wzl\nd",
        "A",  # a length no base64 has
        "Wzl",  # truncated
        b64(b"\xff\xfe[1]"),  # not UTF-8
        b64("[1]".encode("utf-16")),
        b64(b"[1"),  # not JSON
        b64(b"[1] [2]"),
        b64(b"[NaN]"),  # JavaScript's constants, which Python's json would read
        b64(b"[Infinity]"),
        b64(b"[-Infinity]"),
        b64(b"[" * 1500 + b"]" * 1500),  # nested deeper than the parser recurses
        "W" * (MAX_CURSOR_LENGTH + 1),  # over the length limit, even if it were valid
    ],
    ids=repr,
)
def test_a_malformed_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor_list(cursor, length=1)


@pytest.mark.parametrize(
    "payload",
    [b"[]", b"[1,2]", b"{}", b'{"0":1}', b"1", b'"[1]"', b"null", b"true"],
    ids=repr,
)
def test_a_cursor_of_another_shape_is_invalid_as_a_list(payload: bytes) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor_list(b64(payload), length=1)


@pytest.mark.parametrize(
    "payload",
    [
        b'["s","o","k","i"]',
        b'{"s":1,"o":1,"k":1}',  # a key missing
        b'{"s":1,"o":1,"k":1,"i":1,"x":1}',  # a key more
        b'{"s":1,"o":1,"k":1,"i":1,"i":2}',  # a key twice: which one would count?
        b"{}",
    ],
    ids=repr,
)
def test_a_cursor_of_another_shape_is_invalid_as_an_object(payload: bytes) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor_object(b64(payload), keys=TODO_KEYS)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        MAX_ID + 1,
        2**64,
        10**20,
        10**700,
        -(10**700),
        1.0,
        1.5,
        1e3,
        True,
        False,
        "7",
        None,
        [7],
        {"i": 7},
    ],
    ids=repr,
)
def test_an_id_outside_bigint_or_not_an_integer_is_invalid(value: Any) -> None:
    with pytest.raises(InvalidCursor):
        cursor_id(value)


@pytest.mark.parametrize("value", [1, 7, MAX_ID])
def test_an_id_in_bigint_range_is_read(value: int) -> None:
    assert cursor_id(value) == value


def test_a_huge_id_is_refused_through_the_whole_codec() -> None:
    (value,) = decode_cursor_list(b64(b"[" + b"9" * 700 + b"]"), length=1)
    with pytest.raises(InvalidCursor):
        cursor_id(value)


@pytest.mark.parametrize(
    "value",
    ["2026-11-27T14:30:00", "2026-11-27", "not a time", "", 12, 1.5, True, None, ["2026"]],
    ids=repr,
)
def test_a_timestamp_without_an_offset_or_not_a_timestamp_is_invalid(value: Any) -> None:
    with pytest.raises(InvalidCursor):
        cursor_timestamp(value)


@pytest.mark.parametrize(
    "value", ["a" * 11, "nul\x00", "\ud800", "lone \udfff", 5, None, ["a"]], ids=repr
)
def test_a_text_key_too_long_or_that_postgresql_cannot_store_is_invalid(value: Any) -> None:
    with pytest.raises(InvalidCursor):
        cursor_text(value, max_length=10)


def test_a_tampered_todo_cursor_is_invalid() -> None:
    cursor = listing.encode_cursor(SortField.CREATED, "desc", MOMENT, 42)
    # Another sort, another order, and a flipped character that breaks the JSON.
    for sort, order in ((SortField.UPDATED, "desc"), (SortField.CREATED, "asc")):
        with pytest.raises(InvalidCursor):
            listing.decode_cursor(cursor, sort, order)
    tampered = ("A" if cursor[0] != "A" else "B") + cursor[1:]
    with pytest.raises(InvalidCursor):
        listing.decode_cursor(tampered, SortField.CREATED, "desc")


# --- page headers -----------------------------------------------------------------------------


def request(path: str, query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "query_string": query})


def test_the_link_keeps_the_query_as_written_and_replaces_the_cursor() -> None:
    link = next_link(request("/api/x", b"limit=2&cursor=old&tag=a%20b&q=c+d&tag=z"), "new")
    assert link == '</api/x?limit=2&tag=a%20b&q=c+d&tag=z&cursor=new>; rel="next"'


def test_the_link_escapes_what_could_break_out_of_the_header() -> None:
    link = next_link(request("/api/x", b'q=a>;b"c\r\n<d\xc3\xa9'), "c")
    target = link[1 : link.index(">")]
    assert link == f'<{target}>; rel="next"'
    assert not set(target) & set('<>"\r\n ;')


def test_page_headers_give_the_total_and_a_link_only_when_there_is_more() -> None:
    last = page_headers(request("/api/x", b""), total=3, next_cursor=None)
    assert last == {"X-Total-Count": "3"}
    more = page_headers(request("/api/x", b""), total=4, next_cursor="Wzld")
    assert more == {"X-Total-Count": "4", "Link": '</api/x?cursor=Wzld>; rel="next"'}
