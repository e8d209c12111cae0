"""Keyset pagination for every listing: the cursor codec and the page headers.

A cursor is the sort key and id of the last row a client saw, and the next page continues
strictly after them: one index range scan at any depth, and rows inserted during a walk
neither repeat nor vanish. A listing answers the page as a body, its total in
``X-Total-Count`` and, when there is more, ``Link: <path?query&cursor=...>; rel="next"``.

On the wire a cursor is opaque: base64url (unpadded) of compact JSON, a list or an object
whose shape each listing fixes. Cursors are not signed: every listing is scoped to the
token's user, so a forged cursor can only name a position among the user's own rows. What
the codec guarantees is that anything else, from bad base64 to an id outside PostgreSQL's
bigint, is ``InvalidCursor`` (400) before it reaches a query.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NoReturn, TypeVar
from urllib.parse import quote

from starlette.requests import HTTPConnection

from shared.columns import MAX_ID
from shared.errors import InvalidCursor

T = TypeVar("T")

# The longest cursor accepted. The longest one issued is a title sort's: 200 characters of
# up to 4 UTF-8 bytes each, plus the sort, the order and an id, about 1,150 characters.
MAX_CURSOR_LENGTH = 2048

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    next_cursor: str | None  # None on the last page


def encode_cursor(payload: list[Any] | dict[str, Any]) -> str:
    """The opaque cursor for ``payload`` (JSON values; a datetime is written as ISO 8601)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_iso)
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def decode_cursor_list(cursor: str, *, length: int) -> list[Any]:
    """The JSON list of ``length`` items that ``cursor`` encodes; else ``InvalidCursor``."""
    payload = _decode(cursor)
    if not isinstance(payload, list) or len(payload) != length:
        raise InvalidCursor()
    return payload


def decode_cursor_object(cursor: str, *, keys: Collection[str]) -> dict[str, Any]:
    """The JSON object with exactly ``keys`` that ``cursor`` encodes; else ``InvalidCursor``."""
    payload = _decode(cursor)
    if not isinstance(payload, dict) or payload.keys() != set(keys):
        raise InvalidCursor()
    return payload


def cursor_id(value: Any) -> int:
    """A row id read from a cursor: a JSON integer (not a bool, not a float) in 1..MAX_ID."""
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise InvalidCursor()
    return value


def cursor_timestamp(value: Any) -> datetime:
    """A timestamp read from a cursor: ISO 8601 text with a UTC offset."""
    if not isinstance(value, str):
        raise InvalidCursor()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCursor() from None
    if moment.tzinfo is None:
        raise InvalidCursor()
    try:
        # The driver sends it in UTC: an offset that carries it past the year 1 or 9999
        # ("0001-01-01T00:00:00+01:00") is no position of any row.
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidCursor() from None


def cursor_text(value: Any, *, max_length: int) -> str:
    """A text key read from a cursor: at most ``max_length`` characters that PostgreSQL can
    store (no NUL, no lone surrogate)."""
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise InvalidCursor()
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidCursor() from None
    return value


# What ``page_headers`` sends, as an OpenAPI response's ``headers``.
PAGE_HEADERS: dict[str, Any] = {
    "X-Total-Count": {
        "description": "How many items the listing holds, every page together",
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
    },
    "Link": {
        "description": 'The next page, `<relative URL with cursor>; rel="next"`: the same query '
        "with `cursor` set. Absent on the last page",
        "schema": {"type": "string"},
    },
}


def page_headers(request: HTTPConnection, *, total: int, next_cursor: str | None) -> dict[str, str]:
    """``X-Total-Count`` and, when another page follows, its ``Link``."""
    headers = {"X-Total-Count": str(total)}
    if next_cursor is not None:
        headers["Link"] = next_link(request, next_cursor)
    return headers


# Kept as the client wrote them: separators, existing %-escapes and '+' (a space).
_QUERY_SAFE = "=%+-._~:,/"


def next_link(request: HTTPConnection, cursor: str) -> str:
    """A ``Link`` to this same path and query with ``cursor`` in place of the one given: a
    relative reference, so it stays right behind any proxy. The client's parameters keep their
    order and spelling; any other byte is %-escaped, so the header cannot be broken out of. The
    path is the decoded one, which may hold what the client escaped (a route's integer takes
    ``%0A1`` as 1): it is escaped again, or a line feed would make a header no server sends."""
    query: str = request.scope["query_string"].decode("latin-1")
    kept = [
        quote(part, safe=_QUERY_SAFE)
        for part in query.split("&")
        if part and part.partition("=")[0] != "cursor"
    ]
    kept.append(f"cursor={cursor}")
    return f'<{quote(request.scope["path"])}?{"&".join(kept)}>; rel="next"'


def _decode(cursor: str) -> Any:
    if len(cursor) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(cursor):
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_object
        )
    # ValueError covers bad base64, UTF-8 and JSON; deep nesting is a RecursionError.
    except (ValueError, RecursionError):
        raise InvalidCursor() from None


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a cursor cannot hold {type(value).__name__}")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity, which json accepts


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    payload = dict(pairs)
    if len(payload) != len(pairs):
        raise ValueError("a key given twice")
    return payload
