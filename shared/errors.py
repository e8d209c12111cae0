"""The one error hierarchy and the one writer of the envelope every process answers errors in.

Envelope: ``{"detail": <message or validation list>, "code": <stable code>, "request_id": <id>}``.
Service code raises these errors and never ``HTTPException``; one set of handlers renders them.
Below the apps, the HTTP server's protocol (``shared.server``), the request middleware and the
gateway's ``Edge`` raise the same errors and write them with the same :func:`error_json`, and
a stream that has started ends with :func:`error_event`.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Collection, Mapping
from http import HTTPStatus
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from asyncpg import PostgresError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.request_context import current_request_id

logger = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every error a client may see. Subclasses fix status and code.

    The service code, the request middleware, the HTTP server's protocol and the gateway all
    raise these; :func:`error_json` is the one writer of their envelope. A subclass declares
    what it changes in its class statement, e.g.
    ``class Forbidden(AppError, status_code=403, code="forbidden", message="Not allowed")``;
    what it leaves out it inherits.
    """

    status_code: int = 400
    code: str = "bad_request"
    message: str = "Bad request"
    # The failed request's database work is committed anyway (a recorded failed login,
    # a revoked token family): the error is the answer, the bookkeeping must stay.
    keep_changes: bool = False

    def __init_subclass__(
        cls,
        *,
        status_code: int | None = None,
        code: str | None = None,
        message: str | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init_subclass__()
        if status_code is not None:
            cls.status_code = status_code
        if code is not None:
            cls.code = code
        if message is not None:
            cls.message = message
        if keep_changes is not None:
            cls.keep_changes = keep_changes

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.headers = dict(headers or {})
        # The envelope's `detail`: the message, or structured detail (the validation
        # problems of a 422, a readiness report).
        self.detail: Any = self.message if detail is None else detail
        # Exception's own, not the next class's: PayloadTooLarge is an HTTPException too.
        Exception.__init__(self, self.message)


class BadRequest(AppError, status_code=400, code="bad_request"):
    """A request that cannot be understood: a body that cannot be parsed, a bad header."""


class InvalidCursor(
    BadRequest,
    code="invalid_cursor",
    message="The cursor is not valid for this listing; start again from the first page",
):
    """A ``cursor`` query parameter that no listing issued for this sort (see
    ``shared.pagination``)."""


class DuplicateAuthorization(
    BadRequest, code="duplicate_header", message="More than one Authorization header"
):
    """Which of two tokens counts would be up to each reader (Starlette takes the first, a
    proxy may take the last), so the gateway and a service could check different ones."""


class DuplicateHost(BadRequest, code="duplicate_header", message="More than one Host header"):
    """A proxy in front may route by one and the gateway name the other to the services
    (``X-Forwarded-Host``): RFC 9112 3.2 makes such a request a 400."""


class ValidationFailed(
    AppError, status_code=422, code="validation_error", message="The request is not valid"
):
    """Parameters or a body that break the API's rules; ``detail`` lists the problems."""


class Unauthorized(AppError, status_code=401, code="unauthorized", message="Not authenticated"):
    """No access token, or one that is invalid or expired: answered with a Bearer challenge."""

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError, status_code=403, code="forbidden", message="Not allowed"):
    """Authenticated, but not allowed to do this."""


class NotFound(AppError, status_code=404, code="not_found", message="Not found"):
    """No such resource, or not the current user's: the two are not told apart."""


class Conflict(AppError, status_code=409, code="conflict", message="Conflict"):
    """The request conflicts with the current state (a taken email, a limit reached)."""


class IdempotencyKeyReused(
    ValidationFailed,
    code="idempotency_key_reused",
    message="This Idempotency-Key was already used with a different request body",
):
    """An ``Idempotency-Key`` sent again with another request body (todo's create, a chat
    turn, MCP ``add_task``)."""


class IdempotentRequestInProgress(
    Conflict,
    code="idempotent_request_in_progress",
    message="A request with this Idempotency-Key is still being processed",
):
    """An ``Idempotency-Key`` whose first request is still being processed."""


class PreconditionFailed(
    AppError,
    status_code=412,
    code="precondition_failed",
    message="The resource has changed since it was read",
):
    """An ``If-Match`` that names a version which is no longer current."""


class UnsupportedMediaType(
    AppError,
    status_code=415,
    code="unsupported_media_type",
    message="The body must be JSON, sent with Content-Type: application/json",
):
    """A body whose ``Content-Type`` is not JSON (or is missing) on a route that reads JSON."""


# An AppError's headers are never None, an HTTPException's may be: mypy sees two types.
class PayloadTooLarge(  # type: ignore[misc]
    AppError,
    StarletteHTTPException,
    status_code=413,
    code="payload_too_large",
    message="The request body is too large",
):
    """Also an ``HTTPException``, so that FastAPI lets it through when the request middleware
    raises it while a body is read: any other exception there becomes a 400."""


class TooManyRequests(AppError, status_code=429, code="rate_limited", message="Too many requests"):
    """A limit on requests or attempts was reached: ``Retry-After`` says when to try again."""

    def __init__(
        self, message: str | None = None, *, retry_after: int, code: str | None = None
    ) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class InternalError(
    AppError, status_code=500, code="internal_error", message="Internal server error"
):
    """A bug: the client learns nothing more than this (the log has the traceback)."""


class ServiceUnavailable(
    AppError,
    status_code=503,
    code="service_unavailable",
    message="A service this request needs is unavailable",
):
    """Something this request needs (the database, another service) cannot be reached."""


class NotReady(ServiceUnavailable, code="not_ready", message="Not ready"):
    """A readiness probe's failure: what this process needs itself is not reachable."""

    def __init__(self, checks: Mapping[str, bool]) -> None:
        super().__init__(detail={"checks": dict(checks)})


class DatabaseUnavailable(
    ServiceUnavailable,
    code="database_unavailable",
    message="The database is unavailable; please retry shortly",
):
    """The database is down, restarting, out of connections or too slow to answer in time
    (a statement past its time bound): not a bug, worth a retry."""

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class TransactionConflict(
    ServiceUnavailable,
    code="transaction_conflict",
    message="This request collided with a concurrent one and nothing was saved; please retry",
):
    """PostgreSQL aborted the request's transaction to break a deadlock or a serialization
    conflict with another one (``shared.db.is_transaction_conflict``): nothing of it was
    committed, and the same request again goes through."""

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class OutcomeUnknown(
    ServiceUnavailable,
    code="outcome_unknown",
    message=(
        "The database connection was lost while this change was being saved: it may or may "
        "not have been saved. Check before retrying, or retry with the same Idempotency-Key"
    ),
):
    """The database connection was lost while a unit of work was being committed: the
    server may have committed it or not, and nobody can tell from here. No ``Retry-After``:
    a blind retry of a create could make a duplicate; the client reads the resource back, or
    retries with the same ``Idempotency-Key``."""


class BadGateway(
    AppError,
    status_code=502,
    code="bad_gateway",
    message="An upstream service answered badly",
):
    """A service this request needs answered with something that cannot be used."""


class GatewayTimeout(
    AppError,
    status_code=504,
    code="gateway_timeout",
    message="An upstream service did not answer in time",
):
    """A service this request needs did not answer within its deadline."""


HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class HttpError(AppError):
    """An ``HTTPException`` of the framework (no such route, method not allowed, a body
    FastAPI cannot parse), as an error of this hierarchy."""

    def __init__(
        self, status_code: int, detail: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        code = HTTP_CODES.get(status_code, "error" if status_code < 500 else "internal_error")
        super().__init__(str(detail), code=code, headers=headers, detail=detail)


class ValidationIssue(BaseModel):
    """One problem with the request, as FastAPI reports it (the offending input left out)."""

    type: str
    loc: list[str | int]
    msg: str
    ctx: dict[str, str] | None = None


class ErrorEnvelope(BaseModel):
    """The body of every error answer, whichever service or the gateway gives it."""

    detail: str | list[ValidationIssue] | dict[str, Any] = Field(
        description="A message, the list of validation problems (422), or structured detail"
    )
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`")
    request_id: str = Field(description="Also in the `X-Request-ID` header and the logs")


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: a body that cannot be parsed, or a bad header or cursor",
    401: "No access token (`not_authenticated`), or an invalid or expired one (`invalid_token`)",
    403: "Authenticated but not allowed",
    404: "Not found, or not the current user's",
    409: "Conflicts with the current state",
    412: "`If-Match` names a version that is no longer current",
    413: "The request body is larger than the limit",
    415: "The body is not declared as JSON (`Content-Type: application/json`)",
    422: "Invalid parameters or body",
    429: "Too many requests; retry after `Retry-After` seconds",
    502: "A service this request needs answered badly",
    503: "Unavailable for now: `database_unavailable`, or `transaction_conflict` (nothing was "
    "saved); retry after `Retry-After`. A write cut off while it was being saved is "
    "`outcome_unknown`, without `Retry-After`: it may have been saved, so read it back or "
    "retry with the same `Idempotency-Key`",
    504: "A service this request needs did not answer in time",
}
# The 401 of a service that watches deleted accounts (``shared.tombstones``): a token issued
# before its account was deleted is refused with a code of its own.
WATCHED_401 = ERROR_DESCRIPTIONS[401] + "; `account_deleted` once its account is deleted"
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
}


def error_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting error answers in the envelope, for a route or router.

    A route's own entry for a status replaces its router's, so a route that overrides one
    builds it with this helper too.
    """
    chosen = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": chosen[status]}
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        responses[status] = entry
    return responses


# Compact and ASCII-only: valid bytes whatever text the detail holds (a lone surrogate
# cannot make encoding fail). A string goes through the C escaper alone: the whole envelope
# through an encoder costs four times as much, on every refusal of the gateway.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _json(value: Any) -> str:
    return _json_string(value) if type(value) is str else _ENCODER.encode(value)


def error_json(error: AppError, request_id: str | None, *, with_status: bool = False) -> bytes:
    """The envelope of ``error`` as JSON: the one writer of every error body, in every process.

    ``with_status`` adds the HTTP status the answer would have had, for a server-sent
    ``error`` event (its stream's status, 200, was sent before the failure).
    """
    body = (
        f'{{"detail":{_json(error.detail)},"code":{_json(error.code)},'
        f'"request_id":{_json(request_id)}'
    )
    if with_status:
        body += f',"status":{error.status_code:d}'
    return (body + "}").encode("ascii")


def error_response(error: AppError) -> Response:
    """``error`` as the answer of an app's exception handler."""
    return Response(
        error_json(error, current_request_id()),
        status_code=error.status_code,
        headers=error.headers,
        media_type="application/json",
    )


def error_headers(
    error: AppError, body: bytes, *, content_type: bytes = b"application/json"
) -> list[tuple[bytes, bytes]]:
    """The headers of ``error``'s answer written below the app (raw ASGI or HTTP/1.1): the
    body's type and length, then the error's own (``WWW-Authenticate``, ``Retry-After``)."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    for name, value in error.headers.items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


def error_page(error: AppError, request_id: str | None) -> bytes:
    """``error`` as a small HTML page: the gateway's answer on the web client's paths, where
    a browser shows it to a person. No style, no script, nothing loaded: it stands alone."""
    try:
        title = HTTPStatus(error.status_code).phrase
    except ValueError:
        title = "Error"
    message = error.message
    retry_after = error.headers.get("Retry-After")
    if retry_after is not None:
        message += f". Please try again in {retry_after} seconds."
    reference = f"<p>Reference: <code>{html.escape(request_id)}</code></p>" if request_id else ""
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{error.status_code} {html.escape(title)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{reference}"
        '<p><a href="/">Back to the start page</a></p></main></body></html>\n'
    )
    return page.encode("utf-8", "replace")


def error_answer(
    error: AppError, request_id: str | None, *, page: bool = False
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of ``error`` answered below the app (raw ASGI or HTTP/1.1): the
    envelope, or with ``page`` the HTML page of :func:`error_page`. Every refusal of the
    gateway and of the HTTP server's protocol is built here."""
    if not page:
        body = error_json(error, request_id)
        return body, error_headers(error, body)
    body = error_page(error, request_id)
    return body, error_headers(error, body, content_type=b"text/html; charset=utf-8")


def error_event(error: AppError, request_id: str | None) -> bytes:
    """``error`` as the server-sent event that ends a stream which has already started."""
    return b"event: error\ndata: " + error_json(error, request_id, with_status=True) + b"\n\n"


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Drop the offending input (it may be a password) and keep what a client can act on."""
    cleaned = []
    for error in errors:
        item = {key: error[key] for key in ("type", "loc", "msg") if key in error}
        ctx = error.get("ctx")
        if ctx:
            item["ctx"] = {k: str(v) for k, v in ctx.items()}
        cleaned.append(item)
    encoded: list[dict[str, Any]] = jsonable_encoder(cleaned)
    return encoded


async def _app_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes):
        # FastAPI parses a body as JSON only when its Content-Type is JSON (``application/json``
        # or ``+json``); any other, or none, reaches validation as bytes, and the 422 would
        # say "not an object" of a body that may well be one.
        return error_response(UnsupportedMediaType())
    return error_response(ValidationFailed(detail=_clean_validation_errors(exc.errors())))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(HttpError(exc.status_code, exc.detail, headers))


# Methods a 405's Allow can name. Each is tried against the app's routes: FastAPI keeps an
# included router's routes inside it, so they cannot simply be listed.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allow_header(methods: Collection[str]) -> str:
    """A 405's ``Allow`` for the methods routes serve at a path. HEAD goes with GET: the
    request middleware answers it wherever GET is served (``shared.middleware.head_as_get``)."""
    served = {*methods, "HEAD"} if "GET" in methods else set(methods)
    return ", ".join(method for method in _METHODS if method in served)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette names only the first route's,
    and a path often has one route per method (RFC 9110 requires the whole set)."""
    routes = request.app.router.routes
    return allow_header(
        [
            method
            for method in _METHODS
            if any(
                route.matches({**request.scope, "method": method})[0] is Match.FULL
                for route in routes
            )
        ]
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(InternalError())


# SQLSTATEs of text PostgreSQL cannot store: U+0000 in text (22021) or in JSON (22P05). JSON
# and Python strings may carry it, so every text a client sends could; one answer here
# covers every field, parameter and service.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
# Raised by the trigger that refuses rows of a deleted account (shared/tombstones.py): a write
# that passed the token check just before the account's purge.
DELETED_SUBJECT_SQLSTATE = "P0401"
# Raised by a trigger that refuses a row past a bound of the account (todo's tasks per user):
# its message is the client's and its detail the error's code, both written by the migration.
LIMIT_SQLSTATE = "P0402"


class LimitReached(Conflict, code="limit_reached", message="A limit of the account was reached"):
    """A write past a bound of the account, refused by the database (``LIMIT_SQLSTATE``)."""


def database_refusal(exc: BaseException) -> AppError | None:
    """The client's error behind a query's failure, through SQLAlchemy (``DBAPIError``) or
    straight from the driver: text PostgreSQL cannot store, a write of a deleted account, or
    one past a bound of the account.
    None for anything else (an outage, a bug). For callers outside a route's handlers too
    (the MCP tools), so both answer the same input the same way."""
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(driver_error, "sqlstate", None)
    if sqlstate == LIMIT_SQLSTATE:
        # SQLAlchemy's adapter keeps the driver's error, with the trigger's fields, as cause.
        raised = getattr(driver_error, "__cause__", None)
        raised = driver_error if isinstance(driver_error, PostgresError) else raised
        if isinstance(raised, PostgresError) and raised.detail:
            return LimitReached(raised.message, code=raised.detail)
        return LimitReached()
    if sqlstate in _UNSTORABLE_TEXT:
        return ValidationFailed(
            "Text may not contain the NUL character (U+0000)", code="invalid_character"
        )
    if sqlstate == DELETED_SUBJECT_SQLSTATE:
        return Unauthorized("The account of this access token was deleted", code="account_deleted")
    return None


def violated_constraint(exc: DBAPIError) -> str | None:
    """The name of the constraint a statement broke, as PostgreSQL reports it (None when it
    broke none, or the server did not name it)."""
    raised = getattr(exc.orig, "__cause__", None)
    name = getattr(raised, "constraint_name", None) if isinstance(raised, PostgresError) else None
    return name if isinstance(name, str) else None


async def _database_error(_: Request, exc: Exception) -> Response:
    """A query's error, through SQLAlchemy (``DBAPIError``) or straight from the driver (a
    hot path that reads with asyncpg itself)."""
    refusal = database_refusal(exc)
    if refusal is not None:
        return error_response(refusal)
    # Anything else goes on to the request middleware: a 503 for an outage, else a 500.
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PostgresError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
