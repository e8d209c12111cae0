"""One pure-ASGI middleware for what every request needs: request id, body limit, metrics, logs,
and the refusal of a request whose token would be ambiguous (two ``Authorization`` headers).

Pure ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not a task per request, and
streamed responses pass through untouched.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import errors
from shared.db import is_database_outage, is_statement_cancelled, is_transaction_conflict
from shared.metrics import LATENCY, REQUESTS
from shared.request_context import accept_request_id, request_id_var, user_id_var
from shared.text import ascii_number

logger = logging.getLogger("access")
error_logger = logging.getLogger(__name__)

_QUIET_PATHS = frozenset({"/healthz", "/readyz"})

# The methods a metric names. Any other (the HTTP parser also takes WebDAV's and a few more, 25
# in all, and the app answers them a 405) is counted as "other", so an anonymous client cannot
# multiply every route's series by them.
_COUNTED_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def head_as_get(scope: Scope, send: Send) -> tuple[Scope, Send]:
    """A HEAD request as the app is to see it, and the ``send`` that answers it.

    HEAD is GET without the content (RFC 9110 9.3.2), and a server must answer it wherever
    it answers GET; FastAPI's routes take only the methods they name. So the app sees a GET,
    the client gets that answer's status and headers (``Content-Length`` included) and an
    empty body, and the response ends there: a stream's body is never produced, since its
    response sees the client gone once the answer is complete. Any other request passes as
    it is.
    """
    if scope["method"] != "HEAD":
        return scope, send
    ended = False

    async def send_head(message: Message) -> None:
        nonlocal ended
        if ended:
            return
        if message["type"] == "http.response.start":
            await send(message)
            await send({"type": "http.response.body", "body": b""})
            ended = True
            return
        await send(message)

    return {**scope, "method": "GET"}, send_head


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, service: str, max_body_bytes: int, pages: bool = False
    ) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        # An app that serves people (the web client) answers its refusals as HTML pages.
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = accept_request_id(_header(scope, b"x-request-id"))
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes
        app_scope, app_send = head_as_get(scope, send)

        refusal = _refusal(scope, limit)
        if refusal is not None:
            await _send_error(app_send, refusal, request_id, page=self.pages)
            self._observe(scope, refusal.status_code, started)
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise errors.PayloadTooLarge()
            return message

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await app_send(message)

        try:
            await self.app(app_scope, limited_receive, send_with_id)
        except Exception as exc:
            if response_started:
                raise  # too late for an envelope: the server drops the connection
            error = error_for(exc)
            if isinstance(error, errors.DatabaseUnavailable | errors.TransactionConflict):
                # Not a bug: the database is down or restarting, or broke a deadlock. One
                # line, and an answer that tells the client to retry.
                error_logger.warning(
                    "%s on %s %s: %r", error.code, scope["method"], scope["path"], exc
                )
            elif not isinstance(exc, errors.AppError):
                # Starlette's last-resort handler runs outside this middleware, after the
                # request id is gone; answering here keeps the id in the envelope, the header
                # and the log.
                error_logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            status = error.status_code
            await _send_error(app_send, error, request_id, page=self.pages)
        finally:
            self._observe(scope, status, started, route=app_scope.get("route"))
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)

    def _observe(self, scope: Scope, status: int, started: float, *, route: object = None) -> None:
        elapsed = time.perf_counter() - started
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in _COUNTED_METHODS else "other"
        REQUESTS.labels(self.service, method, template, str(status)).inc()
        LATENCY.labels(self.service, method, template).observe(elapsed)
        path = scope["path"]
        if path not in _QUIET_PATHS:
            logger.info("%s %s %d %.1fms", scope["method"], path, status, elapsed * 1000)


def error_for(exc: BaseException) -> errors.AppError:
    """The error a client is answered for ``exc``, an exception no handler of the app took:
    itself if it is one of ours, a 503 for a database outage, a statement the server
    cancelled (its time bound) or a transaction it aborted for a concurrent one, otherwise
    a 500."""
    if isinstance(exc, errors.AppError):
        return exc
    if is_database_outage(exc) or is_statement_cancelled(exc):
        return errors.DatabaseUnavailable()
    if is_transaction_conflict(exc):
        return errors.TransactionConflict()
    return errors.InternalError()


def _refusal(scope: Scope, max_body_bytes: int) -> errors.AppError | None:
    """What is answered before the app sees the request: a declared body over the limit, or
    more than one ``Authorization`` header."""
    declared = _header(scope, b"content-length")
    size = ascii_number(declared, digits=20)
    if size is not None and size > max_body_bytes:
        return errors.PayloadTooLarge()
    if sum(1 for name, _ in scope["headers"] if name == b"authorization") > 1:
        return errors.DuplicateAuthorization()
    return None


async def _send_error(
    send: Send, error: errors.AppError, request_id: str, *, page: bool = False
) -> None:
    """Answer ``error`` below the app (the envelope, or with ``page`` an HTML page), and close
    the connection after it."""
    body, headers = errors.error_answer(error, request_id, page=page)
    headers += [(b"x-request-id", request_id.encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
