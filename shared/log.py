"""Structured logging: JSON lines in production, readable lines in development.

Every record carries the request id and user id of the request it was logged in.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from asyncpg import PostgresError

from shared.request_context import request_id_var, user_id_var


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.user_id = user_id_var.get()
        return True


# What a traceback shows instead of a database error's DETAIL line.
HIDDEN_DETAIL = "(hidden: it may hold the row's values)"


def _database_details(error: BaseException | None) -> set[str]:
    """The DETAIL texts of the PostgreSQL errors a traceback of ``error`` shows: its causes and
    contexts, and the errors of an exception group. The server writes the values there
    ("Failing row contains (...)", "Key (email)=(...) already exists"), and the driver's
    error text repeats it, past the engines' ``hide_parameters``."""
    details: set[str] = set()
    seen: set[int] = set()
    waiting = [error]
    while waiting:
        error = waiting.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, PostgresError) and error.detail:
            details.add(str(error.detail))
        waiting += [error.__cause__, error.__context__]
        if isinstance(error, BaseExceptionGroup):  # a task group's: each of its errors
            waiting += error.exceptions
    return details


class _HidingDetails(logging.Formatter):
    """A traceback without the values a database error's DETAIL repeats."""

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        for detail in _database_details(ei[1]):
            text = text.replace(detail, HIDDEN_DETAIL)
        return text

    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have kept the traceback as it formatted it: made again here.
        record.exc_text = None
        return super().format(record)


class JsonFormatter(_HidingDetails):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "user_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class DevFormatter(_HidingDetails):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s%(ctx)s", "%H:%M:%S")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        uid = getattr(record, "user_id", None)
        parts = [f"rid={rid}" if rid else "", f"uid={uid}" if uid else ""]
        ctx = " ".join(p for p in parts if p)
        record.ctx = f" [{ctx}]" if ctx else ""
        return super().format(record)


class _PlatformHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring twice replaces it."""


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Install our stderr handler on the root logger (once); uvicorn's loggers propagate to it.

    Other handlers already there (a test runner's capture) are left in place.
    """
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _PlatformHandler)]
    handler = _PlatformHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter(service) if json_lines else DevFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Access lines come from our own middleware, with request id and status.
    logging.getLogger("uvicorn.access").disabled = True
