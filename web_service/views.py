"""Rendering: one Jinja2 environment (autoescaped), the pages' shared context, and the
friendly words for every refusal of the API."""

from __future__ import annotations

import math
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from shared.text import ascii_number
from shared.timezones import local_or_as_given
from web_service.context import Ctx
from web_service.gateway_client import ApiError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_utc(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def instant(value: str | None) -> datetime | None:
    """The instant ``value`` writes (ISO 8601 with an offset, as the API's), or None for
    anything else."""
    if not value or len(value) > 64:
        return None
    try:
        moment = parse_utc(value)
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def in_zone(value: str | datetime | None, tz: str) -> datetime | None:
    """The instant in the zone; as written (the API's: in UTC) when the zone's local time
    would leave the calendar (the API takes instants up to the end of 9999 in UTC: a local
    year 10000 in a zone ahead of UTC)."""
    moment = parse_utc(value) if isinstance(value, str) else value
    return local_or_as_given(moment, zone(tz)) if moment is not None else None


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# A due date entered without a time is due at the end of that day in the person's zone, and is
# shown (and edited) as the day alone.
END_OF_DAY = time(23, 59)


def at_end_of_day(local: datetime) -> bool:
    return (local.hour, local.minute) == (END_OF_DAY.hour, END_OF_DAY.minute)


def _day_text(local: datetime) -> str:
    return f"{WEEKDAYS[local.weekday()]} {local.day:02d} {MONTHS[local.month - 1]} {local.year}"


def _clock_text(local: datetime) -> str:
    return f"{local.hour:02d}:{local.minute:02d}"


def _moment_text(local: datetime) -> str:
    return f"{_day_text(local)}, {_clock_text(local)}"


def when_text(value: str | datetime | None, tz: str) -> str:
    """ "Fri 01 Jan 2027, 10:00" in the zone (by hand: a list page formats fifty of them, and
    strftime costs ten times as much)."""
    local = in_zone(value, tz)
    return _moment_text(local) if local is not None else ""


def due_text(value: str | datetime | None, tz: str) -> str:
    """A due date as ``when_text`` says it, or "Fri 01 Jan 2027" for the end of that day."""
    local = in_zone(value, tz)
    if local is None:
        return ""
    return _day_text(local) if at_end_of_day(local) else _moment_text(local)


def until_text(value: datetime, tz: str, now: datetime) -> str:
    """An instant soon to come: "14:01" when it is today in the zone, else as ``when_text``."""
    local, today = local_or_as_given(value, zone(tz)), local_or_as_given(now, zone(tz))
    return _clock_text(local) if local.date() == today.date() else _moment_text(local)


def plural(word: str, count: int) -> str:
    """``word`` as said of ``count`` things: "task" for 1, "tasks" for 0 or 2 (the words the
    pages count all take an "s"). In a template: ``{{ 'task' | plural(total) }}``;
    the scripts say it as ``plural`` of static/js/words.js."""
    return word if count == 1 else f"{word}s"


def reminder_text(token: str, tz: str) -> str:
    """A reminder of the task form (``before:<minutes>`` or ``at:<ISO instant>``) in words:
    "1 hour before", "At the due time", "At Fri 01 Jan 2027, 10:00"; "" for anything else."""
    kind, _, value = token.partition(":")
    if kind == "at":
        try:
            return f"At {when_text(value, tz)}" if parse_utc(value) else ""
        except ValueError:
            return ""
    minutes = ascii_number(value, digits=6) if kind == "before" else None
    if minutes is None:
        return ""
    if minutes == 0:
        return "At the due time"
    unit, size = next(
        (unit, size)
        for unit, size in (("day", 1440), ("hour", 60), ("minute", 1))
        if minutes % size == 0
    )
    count = minutes // size
    return f"{count} {plural(unit, count)} before"


def tool_words(call: dict[str, Any]) -> str:
    """What the assistant did, in words: the tool's name as a phrase ("add_task": "Add
    task"), the task's title when the tool answered with one, and "did not work" when it
    answered with an error. chat.js writes a streamed call the same way (``toolWords``)."""
    name = str(call.get("name") or "tool").replace("_", " ").strip()
    words = name[:1].upper() + name[1:]
    result = call.get("result")
    if isinstance(result, dict):
        if "error" in result:
            return f"{words}: did not work"
        if isinstance(result.get("title"), str) and result["title"]:
            return f"{words}: {result['title']}"
    return words


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["when"] = when_text
    env.filters["due"] = due_text
    env.filters["reminder"] = reminder_text
    env.filters["tool_words"] = tool_words
    env.filters["plural"] = plural
    return env


ENV = _environment()


def render_text(ctx: Ctx, template: str, **values: Any) -> str:
    session = ctx.session
    tz = session.timezone if session else "UTC"
    base = {
        "unread": None,
        "csrf_token": ctx.csrf_token,
        "session": session,
        "user_tz": tz,
        "path": ctx.request.url.path,
        "notice": _notice(ctx, tz),
        "problem": None,
    }
    base.update(values)
    return ENV.get_template(template).render(base)


async def render(ctx: Ctx, template: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A whole page (with the header's bell and its count). A page whose address names a
    refused form (``Ctx.recalled_form``) shows that refusal's ``problem`` above its content;
    one that is there to be shown (not a 404 of its own, which stays one) answers as the
    refusal was: its status (a 4xx, or the API's 5xx) and, until its wait has passed, a
    Retry-After of the seconds left. Logs and alerts see the refusal on the page, and a 4xx
    to a GET does not make Back or Forward send a form again."""
    unread = await ctx.unread()
    recalled = await ctx.recalled_form()
    problem = recalled.get("problem") if recalled else None
    refused = recalled if status_code == 200 else None
    text = render_text(
        ctx,
        template,
        unread=unread,
        problem=problem if isinstance(problem, str) else None,
        **values,
    )
    response = HTMLResponse(text, status_code=status_code)
    status = refused.get("status") if refused else None
    if isinstance(status, int) and 400 <= status < 600:
        response.status_code = status
        wait = _seconds_left(refused, ctx.web.clock())
        if wait:
            response.headers["Retry-After"] = str(wait)
    ctx.finish(response)
    return response


def _seconds_left(refused: dict[str, Any] | None, now: datetime) -> int | None:
    """The whole seconds left of a recalled refusal's wait (``retry_at``); None once it has
    passed, or when the refusal asked for none."""
    kept = refused.get("retry_at") if refused else None
    ends = instant(kept) if isinstance(kept, str) else None
    if ends is None or ends <= now:
        return None
    return math.ceil((ends - now).total_seconds())


# Success notes after a POST-redirect-GET, by a fixed code in the query: no text from the URL
# is ever shown.
NOTICES = {
    "created": "Task added.",
    "updated": "Task saved.",
    "deleted": "Task deleted.",
    "completed": "Task marked done.",
    "reopened": "Task reopened.",
    "profile": "Your profile is saved.",
    "password": "Your password is changed. Every other session has been signed out.",
    "signed_out": "You are signed out.",
    "signed_out_everywhere": "You are signed out everywhere.",
    "conversation_deleted": "Conversation deleted.",
    "session_ended": "Your session has ended. Please sign in again.",
    "registered": "Your account is ready.",
    "existing_account": "You already had an account: you are signed in.",
    "notification_read": "Notification marked read.",
    "notification_snoozed": "Snoozed: the reminder comes again in 10 minutes.",
    "account_deleted": "Your account and everything in it have been deleted.",
}


def completed_note(next_due: str | datetime | None, tz: str) -> str:
    """The note of a completion; of a repeating task's, when its next occurrence is due."""
    if next_due is None:
        return NOTICES["completed"]
    return f"Task marked done. The next one is due {due_text(next_due, tz)}."


def snoozed_note(until: datetime, tz: str, now: datetime) -> str:
    return f"Snoozed until {until_text(until, tz, now)}."


def _notice(ctx: Ctx, tz: str) -> str | None:
    """The note of ``?notice=``; a completion's and a snooze's say the instant of ``?at=``
    (read as an instant and written here: still no text from the URL is shown)."""
    code = ctx.request.query_params.get("notice", "")
    at = instant(ctx.request.query_params.get("at"))
    if at is not None and code == "completed":
        return completed_note(at, tz)
    if at is not None and code == "notification_snoozed":
        return snoozed_note(at, tz, ctx.web.clock())
    return NOTICES.get(code)


# Refusals whose status alone would say the wrong thing (a 409 is mostly a save in progress).
_BY_CODE = {
    "outcome_unknown": (
        "We could not confirm that this was saved. Submitting the same form again is "
        "safe: it will not be saved twice."
    ),
    "task_limit_reached": (
        "You have as many tasks as an account may keep. Delete some to add more; "
        "nothing was changed."
    ),
    "conversation_full": (
        "This conversation is as long as a conversation may get. Start a new conversation "
        "to go on; nothing was changed."
    ),
}


def friendly(error: ApiError) -> str:
    """What a person reads for a refusal; nothing was changed unless it says so."""
    seconds = error.retry_after
    wait = f" Please wait {seconds} {plural('second', seconds)} and try again." if seconds else ""
    if error.code in _BY_CODE:
        return _BY_CODE[error.code]
    messages = {
        400: "That request was not understood. Nothing was changed.",
        403: "That is not allowed. Nothing was changed.",
        404: "That task or conversation no longer exists. Nothing was changed.",
        409: "That is still being saved from an earlier attempt. Try again in a moment.",
        412: "It was changed since you opened it. Nothing was overwritten.",
        413: "That is too large to save. Nothing was changed.",
        422: "Some of what you entered is not valid. Nothing was changed.",
        429: "Too many requests just now. Nothing was changed." + (wait or " Try again soon."),
        502: "The service answered with an error. Nothing was changed; try again.",
        503: "The service is unavailable just now. Nothing was changed." + wait,
        504: "The service took too long to answer. Try again in a moment.",
    }
    return messages.get(error.status, "Something went wrong. Nothing was changed; try again.")
