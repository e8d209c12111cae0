"""What a page handler answers besides a page of its own: a redirect, a 404 for what is not
(or not the user's), a refusal of the API for a form or for the page's scripts; and the ids
the pages' paths and forms carry."""

from __future__ import annotations

import re

from starlette.responses import JSONResponse, RedirectResponse, Response

from web_service.context import Ctx
from web_service.gateway_client import ApiError
from web_service.views import friendly, problem_code, render

# An id of the API's (task, conversation, notification) in a page's path or form: a positive
# BIGINT, written without a sign or leading zeros.
RESOURCE_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_ID = 2**63 - 1


def resource_id(raw: str | None) -> int | None:
    """The id ``raw`` writes, or None for anything else (the page is then a 404, no call made)."""
    if raw and RESOURCE_ID.fullmatch(raw) and int(raw) <= MAX_ID:
        return int(raw)
    return None


def redirect(location: str) -> RedirectResponse:
    """See other: the POST-redirect-GET of every form."""
    return RedirectResponse(location, status_code=303)


async def not_found(ctx: Ctx, thing: str, back: str, *, code: str = "not_found") -> Response:
    """A ``thing`` that no longer exists (or never was the user's): the 404 page with a link
    ``back``, or for the page's scripts (``ctx.wants_json``) its message and ``code``."""
    message = f"That {thing} no longer exists. Nothing was changed."
    if ctx.wants_json:
        return JSONResponse({"message": message, "code": code}, status_code=404)
    return await render(
        ctx,
        "error.html",
        status_code=404,
        heading=f"{thing.capitalize()} not found",
        message=message,
        back=back,
    )


def json_problem(error: ApiError) -> JSONResponse:
    """A refusal as the page's scripts read it: its words, its code, and when to try again."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return JSONResponse(
        {"message": friendly(error), "code": error.code}, status_code=error.status, headers=headers
    )


def refused(ctx: Ctx, error: ApiError, back: str) -> Response:
    """A refused action: for the page's scripts, ``json_problem``; for a plain form, back to
    the page ``back`` with the refusal's code (and wait) in its query for it to explain."""
    if ctx.wants_json:
        return json_problem(error)
    wait = f"&wait={error.retry_after}" if error.retry_after else ""
    return redirect(f"{back}?problem={problem_code(error)}{wait}")
