"""Keyset pagination: opaque cursors and the ``Link``/``X-Total-Count`` headers.

A cursor is the sort key of the last row a client saw, so a page costs the same at any depth
and rows inserted meanwhile neither repeat nor vanish.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response

from shared.errors import BadRequest

T = TypeVar("T")

MAX_ID = 2**63 - 1  # PostgreSQL's bigint: every id a cursor can name


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    message = "The cursor is not valid; start again from the first page"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    next_cursor: str | None


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not isinstance(key, list) or len(key) != length:
        raise InvalidCursor()
    return key


def cursor_id(value: Any) -> int:
    """A row id read from a cursor: a JSON integer (not a bool, not a float) within bigint's
    positive range, as ``encode_cursor`` writes it; anything else is ``InvalidCursor``."""
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise InvalidCursor()
    return value


def set_page_headers(request: Request, response: Response, page: Page[Any]) -> None:
    """``X-Total-Count`` and, when there is more, a relative ``Link`` to the next page."""
    response.headers["X-Total-Count"] = str(page.total)
    if page.next_cursor is not None:
        query = request.query_params.multi_items()
        params = [(k, v) for k, v in query if k != "cursor"] + [("cursor", page.next_cursor)]
        response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
