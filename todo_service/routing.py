"""What the todo service's JSON APIs (tasks, notifications, webhooks) have in common: the
router they start from, the user and clock dependencies, and
the answers made of JSON that the service (or PostgreSQL) already rendered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from shared.clock import Clock
from shared.deps import CurrentPrincipal
from shared.errors import WATCHED_401, error_responses
from shared.pagination import page_headers
from todo_service.statements import PageJSON

JSON = "application/json"


def api_router(prefix: str, tag: str) -> APIRouter:
    """The router of one API under ``prefix``. Any of its routes may answer 400 (a malformed
    header or cursor), 401 (no valid token), 413 (a body over the limit), 422 (invalid
    input) or 503 (the database unavailable, or a write's outcome unknown)."""
    responses = error_responses(400, 401, 413, 422, 503, descriptions={401: WATCHED_401})
    return APIRouter(prefix=prefix, tags=[tag], responses=responses)


# Dependencies are coroutines: FastAPI would run plain functions in a worker thread.
async def _user_id(principal: CurrentPrincipal) -> str:
    return principal.sub


async def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


UserId = Annotated[str, Depends(_user_id)]
ClockDep = Annotated[Clock, Depends(_clock)]


def json_response(
    body: str, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``body``, JSON text already rendered, sent as it is."""
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def page_response(request: Request, page: PageJSON) -> Response:
    """One page of a listing: the JSON array as the body, the total in ``X-Total-Count`` and
    the next page's ``Link`` (shared/pagination.py)."""
    headers = page_headers(request, total=page.total, next_cursor=page.next_cursor)
    return json_response(page.items_json, headers=headers)
