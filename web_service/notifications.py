"""The notification area: the header's bell (its count comes with every page, see
``Ctx.unread``), the notifications page, "Mark read" and "Snooze 10 min", and the live stream
the page's script listens to.

The browser holds only the session cookie and ``/api/*`` takes bearer tokens only, so the
live stream is this service's own: ``GET /notifications/stream`` relays the user's
``GET /api/notifications/stream`` through the gateway with the session's access token
(refreshed when due at each connect), passes ``Last-Event-ID`` on, lasts no longer than the
token (or ``WEB_NOTIFICATION_STREAM_SECONDS``), and ends when the session does. Each
notification is re-written as this service's event: the text a desktop notification shows,
the task's address, and the item's HTML rendered here (the script inserts nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.columns import MAX_ID
from shared.streams import EventStreamResponse, SlotStreamingResponse, sse
from shared.text import ascii_number
from web_service.context import UNREAD_QUERY, CsrfRefused, Ctx, CtxDep, Unread, unread_of
from web_service.gateway_client import ApiError, next_cursor, page_cursor
from web_service.responses import not_found, redirect, refused, resource_id, without_notes
from web_service.security import page_before, safe_next
from web_service.sessions import WebSession
from web_service.streams import Event, EventParser, StreamTooLarge
from web_service.views import (
    NOTICES,
    due_text,
    instant,
    render,
    render_text,
    snoozed_note,
    until_text,
)

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# "Snooze 10 min" by default; the API takes 1..1440 minutes.
SNOOZE_MINUTES = 10
SNOOZE_RANGE = range(1, 1441)
UPSTREAM = "/api/notifications/stream"


@router.get("/notifications")
async def notifications_page(ctx: CtxDep) -> Response:
    ctx.require_session()
    unread_only = ctx.request.query_params.get("show") == "unread"
    params: list[tuple[str, str]] = [("limit", str(ctx.settings.notifications_page_size))]
    if unread_only:
        params.append(("unread", "true"))
    cursor = page_cursor(ctx.request.query_params)
    if cursor:
        params.append(("cursor", cursor))
    answer = await ctx.api("GET", "/api/notifications", params=params)
    if answer.status == 400 and cursor:
        return redirect("/notifications" + ("?show=unread" if unread_only else ""))
    if answer.status != 200:
        raise ApiError.from_response(answer)
    more = next_cursor(answer.headers.get("Link"))
    show = "&show=unread" if unread_only else ""
    return await render(
        ctx,
        "notifications.html",
        notifications=[n for n in answer.json() if valid_notification(n)],
        total=int(answer.headers.get("X-Total-Count", 0)),
        unread_only=unread_only,
        more_href=f"/notifications?cursor={more}{show}" if more else None,
    )


@router.post("/notifications/{raw_id}/read")
async def mark_read(ctx: CtxDep, raw_id: str) -> Response:
    return await _act(ctx, raw_id, "read", "notification_read")


@router.post("/notifications/{raw_id}/snooze")
async def snooze(ctx: CtxDep, raw_id: str) -> Response:
    ctx.require_session()
    form = await ctx.form()
    raw = form.get("minutes", str(SNOOZE_MINUTES))
    minutes = ascii_number(raw, digits=4)
    if minutes not in SNOOZE_RANGE:
        return await refused(ctx, ApiError(422, "invalid_minutes"), _way_back(ctx))
    return await _act(ctx, raw_id, "snooze", "notification_snoozed", minutes)


async def _act(
    ctx: Ctx, raw_id: str, action: str, notice: str, minutes: int | None = None
) -> Response:
    session = ctx.require_session()
    notification_id = resource_id(raw_id)
    if notification_id is None:
        return await _missing(ctx)
    body = {"minutes": minutes} if minutes else None
    path = f"/api/notifications/{notification_id}/{action}"
    try:
        answer = (await ctx.api("POST", path, json_body=body)).expected()
    except ApiError as error:
        if error.status == 404:
            return await _missing(ctx)
        return await refused(ctx, error, _way_back(ctx))
    notification = answer.json()
    # The API's answer is the notification, read; a snooze reminds again ``minutes`` from now.
    now = ctx.web.clock()
    until = now + timedelta(minutes=minutes) if minutes else None
    if not ctx.wants_json:
        at = f"&{urlencode({'at': until.isoformat()})}" if until else ""
        back = _way_back(ctx)
        return redirect(f"{back}{'&' if '?' in back else '?'}notice={notice}{at}")
    unread = await _count(ctx)
    html = (
        render_text(
            ctx,
            "_notification.html",
            n=notification,
            snoozed=until_text(until, session.timezone, now) if until else None,
        )
        if valid_notification(notification)
        else ""
    )
    return JSONResponse(
        {
            "id": notification_id,
            "read": True,
            "html": html,
            "unread": unread.count if unread else None,
            "notice": snoozed_note(until, session.timezone, now) if until else NOTICES[notice],
        }
    )


async def _count(ctx: Ctx) -> Unread | None:
    """The unread count after an action (a fresh call: the action changed it)."""
    try:
        answer = await ctx.api("GET", "/api/notifications", params=UNREAD_QUERY)
    except ApiError:
        return None
    return unread_of(answer)


def _way_back(ctx: Ctx) -> str:
    """Where a notification's action leads, done or refused: the notifications page it was
    sent from as it was shown (all or the unread, and which page of them), without the note
    of its last action or the refused form it showed; the first page of all otherwise."""
    sent_from = page_before(ctx.request, ctx.settings)
    page = safe_next(without_notes(sent_from), "") if sent_from else ""
    return page if page.partition("?")[0] == "/notifications" else "/notifications"


async def _missing(ctx: Ctx) -> Response:
    return await not_found(ctx, "notification", _way_back(ctx))


def _moment(value: Any, *, optional: bool) -> bool:
    if value is None:
        return optional
    return isinstance(value, str) and instant(value) is not None


def valid_notification(value: Any) -> bool:
    """A notification as the contract shapes it (anything else is not shown)."""
    if not isinstance(value, dict):
        return False

    def an_id(key: str) -> bool:
        item = value.get(key)
        return type(item) is int and 0 < item <= MAX_ID

    return (
        an_id("id")
        and an_id("task_id")
        and isinstance(value.get("task_title"), str)
        and _moment(value.get("due_at"), optional=True)
        and _moment(value.get("remind_at"), optional=False)
        and _moment(value.get("read_at"), optional=True)
    )


# --- The live stream --------------------------------------------------------------------


def _last_event_id(request: Request) -> int | None:
    """Where the stream resumes: the browser's ``Last-Event-ID`` on a reconnect, else the
    page's ``after`` (the newest notification it was rendered with)."""
    for raw in (request.headers.get("last-event-id"), request.query_params.get("after")):
        value = resource_id(raw.strip() if raw else None)
        if value is not None:
            return value
    return None


@router.get("/notifications/stream")
async def notification_stream(ctx: CtxDep) -> Response:
    """Server-sent events: ``unread`` (``{count}``) at the start and after every new
    notification, ``notification`` (``{id, read, title, body, url, html}``, with the
    notification's id as the event id), ``signed_out`` when the session has ended, and
    ``unavailable`` (then a later retry) when the API cannot be reached. Without a session:
    401, which ends the browser's ``EventSource`` for good."""
    session = ctx.require_session()
    if ctx.request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        raise CsrfRefused
    last_id = _last_event_id(ctx.request)
    token = await ctx.token()
    if not ctx.web.streams.acquire(session.user_id):
        return EventStreamResponse(_busy(ctx))
    # The response gives the slot back however the stream ends.
    return SlotStreamingResponse(
        _relay(ctx, session, token, last_id),
        slots=ctx.web.streams,
        user_id=session.user_id,
    )


async def _busy(ctx: Ctx) -> AsyncIterator[bytes]:
    yield _unavailable(ctx, "busy")


def _retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


def _unavailable(ctx: Ctx, reason: str) -> bytes:
    """The browser's ``EventSource`` reconnects after the longer wait."""
    return _retry(ctx.settings.notification_busy_retry_ms) + sse("unavailable", {"reason": reason})


async def _relay(
    ctx: Ctx, session: WebSession, token: str, last_id: int | None
) -> AsyncIterator[bytes]:
    web, settings = ctx.web, ctx.settings
    loop = asyncio.get_running_loop()
    lifetime = min(
        float(settings.notification_stream_seconds),
        (session.access_expires_at - web.clock()).total_seconds(),
    )
    deadline = loop.time() + max(lifetime, 1.0)
    try:
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        async with web.gateway.event_stream(
            UPSTREAM, token=token, client_ip=ctx.client_ip, headers=headers
        ) as upstream:
            if upstream.status == 401:
                # The API refused the session's token: the session is over, as for a page.
                await web.store.end(session)
                yield sse("signed_out", {"message": "Your session has ended."})
                return
            kind = upstream.headers.get("Content-Type", "")
            if upstream.status != 200 or not kind.startswith("text/event-stream"):
                logger.info("notification stream refused upstream: %s", upstream.status)
                yield _unavailable(ctx, "unavailable")
                return
            yield _retry(settings.notification_retry_ms)
            relay = _relay_open(ctx, session, token, upstream.content, deadline)
            async with contextlib.aclosing(relay) as parts:
                async for part in parts:
                    yield part
    except ApiError as error:
        logger.info("notification stream interrupted: %s", error)
        yield _unavailable(ctx, "unavailable")
    except StreamTooLarge:
        logger.warning("notification stream: an event over the size limit; stream ended")
        yield _unavailable(ctx, "unavailable")


async def _relay_open(
    ctx: Ctx, session: WebSession, token: str, content: Any, deadline: float
) -> AsyncGenerator[bytes]:
    """The open stream's events until ``deadline`` (the event loop's clock), the API's end,
    or the session's."""
    web, loop = ctx.web, asyncio.get_running_loop()
    parser = EventParser()
    count_due = True
    check_every = ctx.settings.notification_stream_check_seconds
    next_check = loop.time() + check_every
    sent = False
    # One read of the upstream at a time, kept across the waits for the session's check.
    read: asyncio.Future[bytes] | None = None
    try:
        while True:
            if count_due:
                count_due = False
                unread = await _stream_count(ctx, token)
                if unread is not None:
                    yield sse("unread", {"count": unread.count})
                    sent = True
            now = loop.time()
            if now >= deadline:
                return  # the browser reconnects with a fresh token
            if now >= next_check:
                if not await web.store.alive(session):
                    yield sse("signed_out", {"message": "Your session has ended."})
                    return
                if not sent:
                    yield b": keepalive\n\n"
                sent = False
                next_check = now + check_every
            if read is None:
                read = asyncio.ensure_future(content.readany())
            done, _ = await asyncio.wait({read}, timeout=min(deadline, next_check) - now)
            if not done:
                continue
            chunk, read = read.result(), None
            if not chunk:
                return  # the API ended it (its token's expiry): the browser reconnects
            for event in parser.feed(chunk):
                if event.event == "error":
                    # The API's stream failed and ends: reconnect later, not at once.
                    yield _unavailable(ctx, "unavailable")
                    return
                relayed = _relayed(ctx, session, event)
                if relayed is not None:
                    yield relayed
                    sent = count_due = True
    finally:
        if read is not None:
            # Cancelled and waited for before the upstream connection is released; its
            # outcome is of no interest (a cancellation of this stream still propagates).
            read.cancel()
            await asyncio.wait({read})
            if not read.cancelled():
                read.exception()


async def _stream_count(ctx: Ctx, token: str) -> Unread | None:
    try:
        return await ctx.count_unread(token)
    except ApiError:
        return None


def _relayed(ctx: Ctx, session: WebSession, event: Event) -> bytes | None:
    """The browser's event for one of the API's, or None for anything that is not a
    notification of the contract's shape."""
    if event.event != "notification":
        return None
    try:
        notification = json.loads(event.data)
    except ValueError:
        notification = None
    if not valid_notification(notification) or event.id != str(notification["id"]):
        logger.warning("notification stream: an event not of the expected shape was dropped")
        return None
    due = notification["due_at"]
    payload = {
        "id": notification["id"],
        "read": notification["read_at"] is not None,
        "title": notification["task_title"],
        "body": f"Due {due_text(due, session.timezone)}" if due else "Reminder",
        "url": f"/tasks/{notification['task_id']}/edit",
        "html": render_text(ctx, "_notification.html", n=notification),
    }
    return sse("notification", payload, id=notification["id"])
