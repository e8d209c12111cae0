"""The task pages: list with filters and the chat beside it, create, complete, edit, delete.

Every action is a plain form and a POST-redirect-GET; the page's modules (static/js/tasks.js)
send the same forms with ``fetch`` and update the page in place.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.responses import HTMLResponse, JSONResponse, Response

from shared.text import ascii_number, composed, label_key
from web_service.account import timezones, valid_timezone
from web_service.context import Ctx, CtxDep
from web_service.gateway_client import ApiError, next_cursor, page_cursor
from web_service.responses import (
    form_again,
    not_found,
    redirect,
    refused,
    resource_id,
    without_notes,
)
from web_service.security import page_before, safe_next
from web_service.views import (
    END_OF_DAY,
    at_end_of_day,
    completed_note,
    friendly,
    in_zone,
    parse_utc,
    render,
    render_text,
    zone,
)

router = APIRouter(include_in_schema=False)

STATUSES = {"all": "all", "pending": "pending", "done": "completed"}
PRIORITIES = ("low", "medium", "high")
RECURRENCES = ("none", "daily", "weekly", "monthly")
# The reminders the task form offers (``before:<minutes>``); one set elsewhere (another
# offset, or an instant: ``at:<ISO>``) is shown beside them, ticked, and kept unless unticked.
REMINDER_CHOICES = ("before:0", "before:15", "before:60", "before:1440")
# The todo API's bounds on a task's reminders.
REMINDERS_MAX = 5
REMINDER_OFFSET_MAX_MINUTES = 43_200
# The filter form's lists (value -> label, in the order offered; "" is no filter).
FILTER_CHOICES: dict[str, dict[str, str]] = {
    "priority": {"": "Any", **{p: p.capitalize() for p in PRIORITIES}},
    "due": {
        "": "Any time",
        "overdue": "Overdue",
        "today": "Today",
        "week": "This week",
        "none": "No due date",
    },
    "sort": {
        "created": "Newest",
        "updated": "Last changed",
        "due": "Due date",
        "priority": "Priority",
        "title": "Title",
    },
    "order": {"": "Default", "asc": "Ascending", "desc": "Descending"},
}
# The todo API's "has no due date" filter.
NO_DUE_PARAM = ("has_due", "false")
# The filters at their default, which the page's address leaves out (as ``Filters.query``).
DEFAULT_FILTERS = {"status": "all", "sort": "created"}


def _one(
    params: Any, name: str, allowed: tuple[str, ...] | dict[str, str], limit: int = 200
) -> str:
    value = params.get(name) or ""
    value = value[:limit]
    return value if (not allowed or value in allowed) else ""


def _tag(text: str) -> str:
    """A tag as typed, without the "#" the list writes before it ("#work" is "work")."""
    return text.strip().lstrip("#").strip()


class Filters:
    """The list's state as the page's query holds it (every value checked against its set)."""

    def __init__(self, params: Any) -> None:
        self.status = _one(params, "status", STATUSES) or "all"
        self.priority = _one(params, "priority", FILTER_CHOICES["priority"])
        self.tag = _tag(params.get("tag") or "")[:30]
        self.due = _one(params, "due", FILTER_CHOICES["due"])
        self.q = (params.get("q") or "").strip()[:200]
        self.sort = _one(params, "sort", FILTER_CHOICES["sort"]) or "created"
        self.order = _one(params, "order", FILTER_CHOICES["order"])
        self.cursor = page_cursor(params) or ""

    def query(self, **changes: str) -> str:
        """This page's query string, with ``changes`` (empty values left out)."""
        values = {
            "status": self.status if self.status != "all" else "",
            "priority": self.priority,
            "tag": self.tag,
            "due": self.due,
            "q": self.q,
            "sort": self.sort if self.sort != "created" else "",
            "order": self.order,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})

    def href(self, **changes: str) -> str:
        """This list's address with ``changes``: ``/tasks`` alone when no filter is left."""
        query = self.query(**changes)
        return f"/tasks?{query}" if query else "/tasks"

    def api_params(self, tz: str, now: datetime, limit: int) -> list[tuple[str, str]]:
        params = [("status", STATUSES[self.status]), ("sort", self.sort), ("limit", str(limit))]
        if self.order:
            params.append(("order", self.order))
        if self.priority:
            params.append(("priority", self.priority))
        if self.tag:
            params.append(("tag", self.tag))
        if self.q:
            params.append(("q", self.q))
        if self.cursor:
            params.append(("cursor", self.cursor))
        # Forward from now, as the overview counts them: what is already late is "overdue".
        local = zone(tz)
        today = now.astimezone(local).date()
        tomorrow = datetime.combine(today + timedelta(days=1), time(), tzinfo=local)
        next_monday = datetime.combine(
            today + timedelta(days=7 - today.weekday()), time(), tzinfo=local
        )
        if self.due == "overdue":
            params.append(("overdue", "true"))
        elif self.due in ("today", "week"):
            end = tomorrow if self.due == "today" else next_monday
            params.append(("due_after", now.astimezone(UTC).isoformat()))
            params.append(("due_before", end.astimezone(UTC).isoformat()))
        elif self.due == "none":
            params.append(NO_DUE_PARAM)
        return params

    @property
    def active(self) -> bool:
        return bool(self.priority or self.tag or self.due or self.q)


def canonical_query(params: Any) -> str | None:
    """The list's query without the fields that say nothing (empty, or a filter at its
    default), as the filter form sends them all; None when it has none of those."""
    items = params.multi_items()
    kept = [(k, v) for k, v in items if v.strip() and DEFAULT_FILTERS.get(k) != v]
    return None if len(kept) == len(items) else urlencode(kept)


def back_to(path: str | None) -> str:
    """The way back from a task's page (its edit form, its 404) to ``path``, the page the
    person came from: the list as it was filtered, the notifications...; without the note of
    that page's last action or the refused form it showed (``without_notes``). The list when
    ``path`` is not one of this site's paths (``safe_next``) or is itself a task's page."""
    path = safe_next(path, "/tasks")
    if path.startswith("/tasks/"):
        return "/tasks"
    return safe_next(without_notes(path), "/tasks")


def _way_back(ctx: Ctx, form: Any) -> str:
    """Where an action sent from a page leads back to (``back_to``): the ``back`` a task's
    page carries in its form, else the page the form was sent from (the list as filtered)."""
    sent = form.get("back")
    return back_to(sent[:2000] if isinstance(sent, str) else page_before(ctx.request, ctx.settings))


def _the_list(back: str) -> str:
    """The list as ``back`` (from ``back_to``) had it, its filters kept; the plain list when
    ``back`` is another page. Where a row's action leads, done or refused."""
    path, _, query = back.partition("?")
    return back if path == "/tasks" and query else "/tasks"


def _list_with_note(back: str, note: str, at: str | None = None) -> str:
    """The list as ``back`` had it (``_the_list``), with the note of the action just done
    (and the instant it says, ``at``)."""
    if at is not None:
        note = f"{note}&{urlencode({'at': at})}"
    listed = _the_list(back)
    return f"{listed}{'&' if '?' in listed else '?'}notice={note}"


def _task_view(task: dict[str, Any], now: datetime) -> dict[str, Any]:
    due = parse_utc(task.get("due_at"))
    return {
        **task,
        "overdue": due is not None and not task["completed"] and due < now,
        "reminder_tokens": [_reminder_token(r) for r in task.get("reminders") or []],
    }


async def _list(ctx: Ctx, filters: Filters) -> dict[str, Any]:
    session = ctx.require_session()
    now = ctx.web.clock()
    answer = await ctx.expect(
        "GET",
        "/api/tasks",
        params=filters.api_params(session.timezone, now, ctx.settings.page_size),
    )
    tasks = [_task_view(task, now) for task in answer.json()]
    total = int(answer.headers.get("X-Total-Count", len(tasks)))
    cursor = next_cursor(answer.headers.get("Link"))
    return {
        "tasks": tasks,
        "total": total,
        "more_href": f"/tasks?{filters.query(cursor=cursor)}" if cursor else None,
        "more_rows_href": f"/tasks?{filters.query(cursor=cursor, fragment='rows')}"
        if cursor
        else None,
    }


# The key a rendered form (the task form, the chat form) carries.
FORM_KEY = re.compile(r"[0-9a-f-]{36}")


def form_key(form: Any) -> str:
    """The key the form sent carries; a new one when it carries none of ours."""
    key = form.get("idempotency_key")
    return key if isinstance(key, str) and FORM_KEY.fullmatch(key) else str(uuid.uuid4())


def request_key(key: str, body: dict[str, Any]) -> str:
    """The API's ``Idempotency-Key`` for a form with ``key`` sending ``body``: the form's key
    and a short hash of the body, so the form sent twice as it was replays the first answer
    (a double click), and sent again with other values (changed before the page reloaded, or
    gone back to) is another request, not a key reused with another body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{key}.{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def new_chat_form(conversation_id: int | None = None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "idempotency_key": str(uuid.uuid4()), "message": ""}


def _new_form(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "title": "",
        "description": "",
        "priority": "medium",
        "tags": "",
        "due_date": "",
        "due_time": "",
        "recurrence": "none",
        "reminders": [],
        # Generated with the form: resubmitting this form as it was never makes a second
        # task (``request_key``).
        "idempotency_key": str(uuid.uuid4()),
        **(values or {}),
    }


async def _tasks_page(ctx: Ctx) -> Response:
    filters = Filters(ctx.request.query_params)
    fragment = ctx.request.query_params.get("fragment")
    refused = None if fragment == "rows" else await ctx.recalled_form()
    errors: dict[str, str] = refused.get("errors", {}) if refused else {}
    if refused is None or "values" not in refused:
        listing = await _list(ctx, filters)
    else:
        # The task form sent back with its errors: kept (with its Idempotency-Key) even when
        # the list cannot be read just now, so sending it again is safe.
        try:
            listing = await _list(ctx, filters)
        except ApiError as error:
            listing = {"tasks": [], "total": 0, "more_href": None, "more_rows_href": None}
            errors = {"_form": friendly(error), **errors}
    if fragment == "rows":
        rows = render_text(ctx, "_task_list.html", filters=filters, **listing)
        return HTMLResponse(rows, headers={"X-Total-Count": str(listing["total"])})
    return await render(
        ctx,
        "tasks.html",
        filters=filters,
        filter_choices=FILTER_CHOICES,
        form=_new_form(refused.get("values") if refused else None),
        errors=errors,
        priorities=PRIORITIES,
        recurrences=RECURRENCES,
        reminder_choices=REMINDER_CHOICES,
        messages=[],
        chat_form=new_chat_form(),
        chat_error=None,
        # Just added one: the form stays open with the focus in its title, for the next.
        adding_again=ctx.request.query_params.get("notice") == "created" and not errors,
        **listing,
    )


@router.get("/tasks")
async def tasks_page(ctx: CtxDep) -> Response:
    ctx.require_session()
    # The filter form (a GET, with or without JavaScript) sends every field: the list's
    # address carries only the filters that are set, so it reads (and bookmarks) as the list.
    canonical = canonical_query(ctx.request.query_params)
    if canonical is not None:
        return redirect(f"/tasks?{canonical}" if canonical else "/tasks")
    try:
        return await _tasks_page(ctx)
    except ApiError as error:
        if error.status == 400 and error.code == "invalid_cursor":
            return redirect("/tasks")
        raise


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _form_values(form: Any) -> dict[str, Any]:
    return {
        "title": _field(form, "title", 400),
        "description": _field(form, "description", 2000),
        "priority": _field(form, "priority", 10),
        "tags": _field(form, "tags", 1000),
        "due_date": _field(form, "due_date", 10),
        "due_time": _field(form, "due_time", 5),
        "recurrence": _field(form, "recurrence", 10),
        # Each as ``_reminder_token`` writes it (an unreadable one as sent, to be refused),
        # once, in the order sent; a form has a bounded number of fields.
        "reminders": list(
            dict.fromkeys(
                _canonical_reminder(value[:64])
                for value in form.getlist("reminders")
                if isinstance(value, str)
            )
        ),
    }


def _canonical_reminder(token: str) -> str:
    reminder = _reminder(token)
    return _reminder_token(reminder) if reminder is not None else token


def _reminder(token: str) -> dict[str, Any] | None:
    """The API's reminder for a form's ``before:<minutes>`` or ``at:<ISO instant>``; None
    when it is neither."""
    kind, _, value = token.partition(":")
    minutes = ascii_number(value, digits=6) if kind == "before" else None
    if minutes is not None and minutes <= REMINDER_OFFSET_MAX_MINUTES:
        return {"before_due_minutes": minutes}
    if kind == "at":
        try:
            at = parse_utc(value)
        except ValueError:
            return None
        if at is not None and at.tzinfo is not None:
            try:
                return {"at": at.astimezone(UTC).isoformat()}
            except OverflowError:  # outside the calendar in UTC
                return None
    return None


def _reminder_token(reminder: dict[str, Any]) -> str:
    """The task form's value of one of the API's reminders (``_reminder`` read back)."""
    if reminder.get("before_due_minutes") is not None:
        return f"before:{reminder['before_due_minutes']}"
    return f"at:{reminder['at']}"


def task_body(values: dict[str, Any], tz: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body of a task form, or the fields' errors."""
    errors: dict[str, str] = {}
    # Measured in the form the API stores (``shared.text``), so the bounds are the API's.
    title = composed(values["title"]).strip()
    if not title:
        errors["title"] = "Enter a title"
    elif len(title) > 200:
        errors["title"] = "The title can be at most 200 characters"
    if len(composed(values["description"])) > 1000:
        errors["description"] = "The description can be at most 1000 characters"
    priority = values["priority"] or "medium"
    if priority not in PRIORITIES:
        errors["priority"] = "Choose a priority"
    recurrence = values["recurrence"] or "none"
    if recurrence not in RECURRENCES:
        errors["recurrence"] = "Choose how the task repeats"
    # The list shows a tag as "#work" and the assistant reads "#work" as one: a "#" typed
    # in front of a tag is not part of it.
    tags = [tag for tag in (_tag(part) for part in values["tags"].split(",")) if tag]
    if len(tags) > 10:
        errors["tags"] = "At most 10 tags"
    elif any(len(label_key(tag)) > 30 for tag in tags):
        errors["tags"] = "Each tag can be at most 30 characters"
    due_at = None
    if values["due_date"]:
        try:
            day = datetime.strptime(values["due_date"], "%Y-%m-%d").date()
            at = (
                datetime.strptime(values["due_time"], "%H:%M").time()
                if values["due_time"]
                else END_OF_DAY
            )
            due_at = datetime.combine(day, at, tzinfo=zone(tz)).astimezone(UTC).isoformat()
        except (ValueError, OverflowError):  # OverflowError: outside the calendar in UTC
            errors["due_date"] = "Enter a real date, such as 2027-03-31, and a time such as 17:30"
    elif values["due_time"]:
        errors["due_date"] = "Enter the date the task is due, or clear the time"
    if recurrence != "none" and due_at is None and "due_date" not in errors:
        errors["due_date"] = "A repeating task needs a due date"
    reminders = [_reminder(token) for token in values["reminders"]]
    if None in reminders:
        errors["reminders"] = "Choose reminders from the list"
    elif len(reminders) > REMINDERS_MAX:
        errors["reminders"] = f"At most {REMINDERS_MAX} reminders"
    elif (
        due_at is None
        and "due_date" not in errors
        and any(r is not None and "before_due_minutes" in r for r in reminders)
    ):
        errors["reminders"] = "A reminder before the due time needs a due date"
    # The due time was read in the user's zone. A repeating task keeps its time of day in a
    # zone of its own: the user's when it is created; on an edit, the one its form shows (the
    # task's own, "" for UTC), so that an unrelated change does not move the series. An edit
    # without a recurrence leaves the task's zone as it was.
    series_zone = values.get("time_zone", tz)
    if series_zone and not valid_timezone(series_zone):
        errors["time_zone"] = "Choose a time zone from the list, such as Europe/London"
    body = {
        "title": title,
        "description": values["description"] or None,
        "priority": priority,
        "tags": tags,
        "due_at": due_at,
        "recurrence": recurrence,
        "reminders": reminders,
    }
    if recurrence != "none":
        body["time_zone"] = series_zone or None
    return body, errors


def _api_field_errors(error: ApiError) -> dict[str, str]:
    fields = error.field_errors()
    if "due_at" in fields:
        fields["due_date"] = fields.pop("due_at")
    known = {
        "title",
        "description",
        "priority",
        "tags",
        "due_date",
        "recurrence",
        "reminders",
        "time_zone",
    }
    return {k: v for k, v in fields.items() if k in known} or {"_form": friendly(error)}


@router.post("/tasks")
async def create_task(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    form = await ctx.form()
    values = _form_values(form)
    values["idempotency_key"] = key = form_key(form)
    body, errors = task_body(values, session.timezone)
    if errors:
        return await form_again(ctx, "/tasks", {"errors": errors, "values": values}, status=422)
    try:
        await ctx.expect(
            "POST",
            "/api/tasks",
            ok=(201,),
            json_body=body,
            headers={"Idempotency-Key": request_key(key, body)},
        )
    except ApiError as error:
        state = {"errors": _api_field_errors(error), "values": values}
        return await form_again(ctx, "/tasks", state, error=error)
    if ctx.wants_json:
        return JSONResponse({"ok": True}, status_code=201)
    return redirect("/tasks?notice=created")


async def _missing_task(ctx: Ctx, back: str | None = None) -> Response:
    """The task's 404, its "Go back" to ``back`` or else the page the request came from."""
    way = back or back_to(page_before(ctx.request, ctx.settings))
    return await not_found(ctx, "task", way, code="task_not_found")


async def _read_task(ctx: Ctx, raw_id: str) -> dict[str, Any] | None:
    """The task ``raw_id`` names, or None when the id is malformed or the API has no such
    task of this user; any other refusal is raised."""
    task_id = resource_id(raw_id)
    if task_id is None:
        return None
    answer = await ctx.api("GET", f"/api/tasks/{task_id}")
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise ApiError.from_response(answer)
    task: dict[str, Any] = answer.json()
    return task


@router.post("/tasks/{raw_id}/complete")
async def complete_task(ctx: CtxDep, raw_id: str) -> Response:
    session = ctx.require_session()
    task_id = resource_id(raw_id)
    form = await ctx.form()
    completed = _field(form, "completed", 5) == "true"
    if task_id is None:
        return await _missing_task(ctx)
    try:
        answer = await ctx.expect(
            "PATCH", f"/api/tasks/{task_id}/complete", json_body={"completed": completed}
        )
    except ApiError as error:
        return await refused(ctx, error, _the_list(_way_back(ctx, form)))
    task = _task_view(answer.json(), ctx.web.clock())
    # Completing a repeating task made its next occurrence (reopening keeps the id).
    next_id = task.get("next_occurrence_id") if task["completed"] else None
    next_due = await _due_of(ctx, next_id) if next_id else None
    if ctx.wants_json:
        return JSONResponse(
            {
                "completed": task["completed"],
                "html": render_text(ctx, "_task_one.html", task=task),
                "next_occurrence_id": next_id,
                "notice": completed_note(next_due, session.timezone) if next_id else None,
            }
        )
    note = "completed" if completed else "reopened"
    return redirect(_list_with_note(_way_back(ctx, form), note, next_due))


async def _due_of(ctx: Ctx, task_id: int) -> str | None:
    """When the task is due; None when it cannot be read just now (the completion that made
    it is done all the same, and its note says less)."""
    try:
        task = await _read_task(ctx, str(task_id))
    except ApiError:
        return None
    due = task.get("due_at") if task is not None else None
    return due if isinstance(due, str) else None


@router.get("/tasks/{raw_id}/delete")
async def delete_confirmation(ctx: CtxDep, raw_id: str) -> Response:
    ctx.require_session()
    task = await _read_task(ctx, raw_id)
    if task is None:
        return await _missing_task(ctx)
    return await render(
        ctx, "task_delete.html", task=task, back=back_to(page_before(ctx.request, ctx.settings))
    )


@router.post("/tasks/{raw_id}/delete")
async def delete_task(ctx: CtxDep, raw_id: str) -> Response:
    ctx.require_session()
    task_id = resource_id(raw_id)
    back = _way_back(ctx, await ctx.form())
    if task_id is None:
        return await _missing_task(ctx, back)
    try:
        await ctx.expect("DELETE", f"/api/tasks/{task_id}", ok=(204,))
    except ApiError as error:
        return await refused(ctx, error, _the_list(back))
    if ctx.wants_json:
        return Response(status_code=204)
    return redirect(_list_with_note(back, "deleted"))


def _reminder_set(reminders: list[dict[str, Any]] | None) -> set[tuple[Any, Any]]:
    """A task's reminders (as sent, or as the API answers them) in a form that compares."""
    return {(r.get("before_due_minutes"), parse_utc(r.get("at"))) for r in reminders or []}


def _tag_keys(tags: list[str] | None) -> list[str]:
    """Tags as the API stores them (``shared.text.label_key``, each once, in order)."""
    return list(dict.fromkeys(label_key(tag) for tag in tags or []))


def _holds(task: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether ``task`` already holds what ``body`` (``task_body``'s) would save, compared in
    the forms the API stores (the body's tags as typed: "Home" is saved as "home")."""
    return (
        task["title"] == body["title"]
        and task.get("description") == composed(body["description"])
        and task["priority"] == body["priority"]
        and _tag_keys(task.get("tags")) == _tag_keys(body["tags"])
        and parse_utc(task.get("due_at")) == parse_utc(body["due_at"])
        and task["recurrence"] == body["recurrence"]
        and _reminder_set(task.get("reminders")) == _reminder_set(body["reminders"])
        and task.get("time_zone") == body.get("time_zone", task.get("time_zone"))
    )


def _edit_values(task: dict[str, Any], tz: str) -> dict[str, Any]:
    local = in_zone(task.get("due_at"), tz)
    return {
        "title": task["title"],
        "description": task.get("description") or "",
        "priority": task["priority"],
        "tags": ", ".join(task.get("tags") or []),
        "due_date": local.strftime("%Y-%m-%d") if local else "",
        "due_time": local.strftime("%H:%M") if local and not at_end_of_day(local) else "",
        "recurrence": task["recurrence"],
        "reminders": [_reminder_token(r) for r in task.get("reminders") or []],
        # The zone the task repeats in: its own ("" for a repeating task without one: UTC);
        # the user's for a task that does not repeat yet, should the edit make it repeat.
        "time_zone": task.get("time_zone") or ("" if task["recurrence"] != "none" else tz),
    }


@router.get("/tasks/{raw_id}/edit")
async def edit_page(ctx: CtxDep, raw_id: str) -> Response:
    session = ctx.require_session()
    back = _way_back(ctx, ctx.request.query_params)
    task = await _read_task(ctx, raw_id)
    if task is None:
        return await _missing_task(ctx, back)
    form, version = _edit_values(task, session.timezone), task["version"]
    errors: dict[str, str] = {}
    conflict = None
    refused = await ctx.recalled_form()
    if refused is not None:
        errors = refused.get("errors", {})
        if refused.get("conflict"):
            # Changed elsewhere since the form was opened: the version as it is now beside
            # the one sent, and saving again replaces it.
            conflict = {"current": task, "current_form": _edit_values(task, session.timezone)}
        # What was typed, with the version it was typed over (a state without it: the task
        # as it is now).
        if isinstance(refused.get("values"), dict):
            form = {**form, **refused["values"]}
            if not conflict:
                version = refused.get("version", version)
    return await render(
        ctx,
        "task_edit.html",
        task=task,
        form=form,
        back=back,
        version=str(version),
        errors=errors,
        conflict=conflict,
        priorities=PRIORITIES,
        recurrences=RECURRENCES,
        reminder_choices=REMINDER_CHOICES,
        timezones=timezones(),
    )


@router.post("/tasks/{raw_id}/edit")
async def save_task(ctx: CtxDep, raw_id: str) -> Response:
    session = ctx.require_session()
    task_id = resource_id(raw_id)
    form = await ctx.form()
    # Where Cancel leads, as the form was opened with (the list as it was filtered).
    back = _way_back(ctx, form)
    if task_id is None:
        return await _missing_task(ctx, back)
    # The edit page, leading back where it did: a refusal is shown there again, and a task
    # gone meanwhile is its 404.
    page = f"/tasks/{task_id}/edit?{urlencode({'back': back})}"
    values = _form_values(form)
    if "time_zone" in form:
        values["time_zone"] = _field(form, "time_zone", 64).strip()
    version = _field(form, "version", 20)
    if ascii_number(version, digits=20) is None:
        version = "0"
    body, errors = task_body(values, session.timezone)

    async def again(
        errors: dict[str, str], *, error: ApiError | None = None, status: int | None = None
    ) -> Response:
        conflict = (error.status if error else status) == 409
        state = {"errors": errors, "values": values, "version": version, "conflict": conflict}
        return await form_again(ctx, page, state, error=error, status=status)

    if errors:
        return await again(errors, status=422)
    try:
        answer = await ctx.api(
            "PATCH", f"/api/tasks/{task_id}", json_body=body, headers={"If-Match": f'"{version}"'}
        )
        if answer.status == 200:
            return redirect(_list_with_note(back, "updated"))
        error = ApiError.from_response(answer)
        if error.status == 412:
            current = await _read_task(ctx, str(task_id))
            if current is None:
                return redirect(page)
            # The same form sent twice (a double click on Save): the first send saved it.
            if _holds(current, body):
                return redirect(_list_with_note(back, "updated"))
            return await again({}, status=409)
    except ApiError as unanswered:
        # The API could not be reached (or not say what the task is now): the form again,
        # as typed.
        error = unanswered
    if error.status == 404:
        return redirect(page)
    if error.status == 422:
        return await again(_api_field_errors(error), error=error)
    return await again({"_form": friendly(error)}, error=error)
