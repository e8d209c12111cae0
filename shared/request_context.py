"""Per-request context (request id, user id) carried in context variables for logs and errors."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

# A client-supplied id is echoed into logs and headers, so only a short, plain one is kept.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    return request_id_var.get()


def accept_request_id(candidate: str | None) -> str:
    """The client's id when it is safe to echo, otherwise a fresh one."""
    if candidate and _SAFE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex
