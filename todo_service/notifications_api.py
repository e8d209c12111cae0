"""HTTP routes of the user's notifications (``/api/notifications``).

``GET /api/notifications/stream`` is a server-sent event stream of the user's new
notifications. Each stream checks for rows after the last id it sent every
``notifications_poll_seconds`` (one index probe of ``(user_id, id)``), so it needs no
session connection of its own and works behind a transaction pooler; a keepalive comment
goes out every ``notifications_keepalive_seconds`` (below the gateway's read timeout), and
the stream ends when the access token expires (the client reconnects with a fresh one and
``Last-Event-ID``). One process serves at most ``notifications_streams_per_user`` streams of
one user and ``notifications_streams_max`` in all; the next is a 429 before it starts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from shared.columns import MAX_ID
from shared.db import Database
from shared.deps import CurrentPrincipal, DatabaseDep, SessionDep, row_id
from shared.errors import AppError, BadRequest, TooManyRequests, error_event, error_responses
from shared.middleware import error_for
from shared.pagination import MAX_CURSOR_LENGTH, PAGE_HEADERS
from shared.request_context import current_request_id
from shared.streams import EventStreamResponse, SlotStreamingResponse, StreamSlots
from todo_service import notifications
from todo_service.routing import ClockDep, UserId, api_router, json_response, page_response
from todo_service.schemas import PAGE_MAX, NotificationPublic, NotificationQuery, SnoozeIn
from todo_service.settings import TodoSettings

logger = logging.getLogger(__name__)

router = api_router("/api/notifications", "notifications")
_ONE = error_responses(
    404,
    descriptions={
        404: "No such notification, or not the current user's (`notification_not_found`)"
    },
)
# Retry-After of a stream refused for want of a slot (one frees when a stream ends).
STREAM_BUSY_RETRY_SECONDS = 10

NotificationId = Annotated[int, row_id("notification")]


@router.get(
    "",
    response_model=list[NotificationPublic],
    responses={200: {"headers": PAGE_HEADERS}},
    summary="The user's notifications, newest first",
    description=(
        "A JSON array; `X-Total-Count` is the total for the filter, and "
        '`Link: <...>; rel="next"` the next page (absent on the last).'
    ),
)
async def list_notifications(
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description='From the previous page\'s Link: <...>; rel="next"',
            # Published, not enforced: anything else is the codec's 400 invalid_cursor.
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
        ),
    ] = None,
    unread: Annotated[bool, Query(description="true: only those not yet read")] = False,
) -> Response:
    query = NotificationQuery(limit=limit, cursor=cursor, unread=unread)
    page = await notifications.list_notifications_json(db, principal.sub, query=query)
    return page_response(request, page)


@router.post(
    "/{notification_id}/read",
    response_model=NotificationPublic,
    responses=_ONE,
    summary="Mark a notification read (dismiss it); idempotent",
)
async def read_notification(
    notification_id: NotificationId, db: DatabaseDep, user_id: UserId, clock: ClockDep
) -> Response:
    body = await notifications.mark_read(db, user_id, notification_id=notification_id, clock=clock)
    return json_response(body)


@router.post(
    "/{notification_id}/snooze",
    response_model=NotificationPublic,
    responses=_ONE,
    summary="Mark it read and remind again in `minutes` (1-1440)",
)
async def snooze_notification(
    notification_id: NotificationId,
    body: SnoozeIn,
    session: SessionDep,
    user_id: UserId,
    clock: ClockDep,
) -> Response:
    answer = await notifications.snooze(
        session, user_id, notification_id=notification_id, minutes=body.minutes, clock=clock
    )
    return json_response(answer)


_EVENT_ID = re.compile(r"[0-9]{1,19}")


def _last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not _EVENT_ID.fullmatch(value) or int(value) > MAX_ID:
        raise BadRequest("Last-Event-ID must be a notification id", code="invalid_last_event_id")
    return int(value)


@router.get(
    "/stream",
    # The stream's own media type is declared below: error answers stay JSON in the document.
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: notification` per new notification (`id:` its id), "
            "`: keepalive` comments; ends when the access token expires",
        },
        **error_responses(
            429, descriptions={429: "Too many open streams; retry after `Retry-After` seconds"}
        ),
    },
    summary="The user's new notifications as server-sent events",
    description=(
        "At most `notifications_streams_per_user` open streams per user (and "
        "`notifications_streams_max` in all) per server process: the next is a 429 "
        "`too_many_streams` with `Retry-After`."
    ),
)
async def stream_notifications(
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume: first the notifications after this id (the newest "
            "`notifications_backlog_max` of them), then the new ones",
        ),
    ] = None,
) -> EventStreamResponse:
    resume = _last_event_id(last_event_id)
    db: Database = request.app.state.db
    settings: TodoSettings = request.app.state.settings
    slots: StreamSlots = request.app.state.notification_streams
    # Before anything else (the database included): the user's or the process's streams are
    # full. The response gives the slot back however it ends.
    if not slots.acquire(principal.sub):
        raise TooManyRequests(
            "Too many notification streams are open; close one or try again later",
            retry_after=STREAM_BUSY_RETRY_SECONDS,
            code="too_many_streams",
        )
    try:
        # Where to start: given, or the newest now (read before the answer starts, so a
        # database outage is an ordinary 503 rather than a broken stream).
        start = resume if resume is not None else await notifications.latest_id(db, principal.sub)
    except BaseException:
        slots.release(principal.sub)
        raise
    return SlotStreamingResponse(
        _events(
            db,
            principal.sub,
            start=start,
            resume=resume is not None,
            deadline=principal.expires_at,
            settings=settings,
        ),
        slots=slots,
        user_id=principal.sub,
    )


def _event(notification_id: int, body: str) -> bytes:
    return f"id: {notification_id}\nevent: notification\ndata: {body}\n\n".encode()


async def _events(
    db: Database,
    user_id: str,
    *,
    start: int,
    resume: bool,
    deadline: float,
    settings: TodoSettings,
) -> AsyncIterator[bytes]:
    """The stream's bytes until the token's expiry (``deadline``, epoch seconds); a failure
    after the start is one ``error`` event, then the end."""
    last = start
    limit = settings.notifications_backlog_max
    # The reconnection delay a browser's EventSource uses after the stream ends.
    yield b"retry: 3000\n: open\n\n"
    sent_at = time.monotonic()
    try:
        if resume:
            for notification_id, body in await notifications.after(
                db, user_id, after_id=last, limit=limit, newest=True
            ):
                yield _event(notification_id, body)
                last = notification_id
                sent_at = time.monotonic()
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            # Shielded: a client that leaves cancels the stream, and the read it was waiting
            # on still runs to its end and returns its connection to the pool, rather than
            # being cut off mid-statement.
            rows = await asyncio.shield(
                notifications.after(db, user_id, after_id=last, limit=limit)
            )
            for notification_id, body in rows:
                yield _event(notification_id, body)
                last = notification_id
                sent_at = time.monotonic()
            if len(rows) == limit:
                continue  # more are waiting
            if time.monotonic() - sent_at >= settings.notifications_keepalive_seconds:
                yield b": keepalive\n\n"
                sent_at = time.monotonic()
            await asyncio.sleep(min(settings.notifications_poll_seconds, max(remaining, 0.01)))
    except Exception as exc:
        error: AppError = error_for(exc)
        logger.warning("notification stream ended by a failure: %r", exc)
        yield error_event(error, current_request_id())
