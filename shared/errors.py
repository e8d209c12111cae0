"""Domain error hierarchy and the one envelope every service answers errors in.

Envelope: ``{"detail": <message or validation list>, "code": <stable code>, "request_id": <id>}``.
Service code raises these errors and never ``HTTPException``; one set of handlers renders them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.request_context import current_request_id

logger = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every error a client may see. Subclasses fix status and code."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "Bad request"
    # The failed request's database work is committed anyway (a recorded failed login,
    # a revoked token family): the error is the answer, the bookkeeping must stay.
    keep_changes: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"
    message = "The request is not valid"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Not authenticated"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "Not allowed"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflict"


class PreconditionFailed(AppError):
    status_code = 412
    code = "precondition_failed"
    message = "The resource has changed since it was read"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests"

    def __init__(
        self, message: str | None = None, *, retry_after: int, code: str | None = None
    ) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "A service this request needs is unavailable"


class BadGateway(AppError):
    status_code = 502
    code = "bad_gateway"
    message = "An upstream service answered badly"


class GatewayTimeout(AppError):
    status_code = 504
    code = "gateway_timeout"
    message = "An upstream service did not answer in time"


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


def error_body(detail: Any, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code, "request_id": current_request_id()}


def error_response(
    status_code: int, detail: Any, code: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(detail, code), status_code=status_code, headers=headers)


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


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.message, exc.code, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, _clean_validation_errors(exc.errors()), "validation_error")


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    return error_response(exc.status_code, exc.detail, code, exc.headers)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
