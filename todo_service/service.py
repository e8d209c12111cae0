"""Domain logic of the todo service, usable with or without HTTP.

Every function takes where it runs and the acting user's id (the token's subject) first, then
keyword arguments. Writes that the ORM carries (updates: the recurrence rule is Python) take a
session, flush and never commit. Single statements (``get_task``, ``add_task``: see
``todo_service.statements``) take ``Statements``: the ``Database`` runs one alone, a unit of
work's session runs it inside its transaction. A caller outside a request (the MCP tools)
wraps its calls in ``Database.unit_of_work()``, which commits exactly like a request does.
Every statement about one task carries the user's id in its condition (``_locked_tasks`` for
the ORM): another user's task is indistinguishable from a task that does not exist.

Lock order: the user's subject lock (shared, ``shared.tombstones.lock_subject``), then the
user's task rows, in id order, all in one statement (``_locked_tasks``). A write that locks
tasks may then insert (a recurring task's next occurrence, the task counts' row: the insert
trigger takes the subject's lock) and touches the tasks' notifications after them, while the
account's purge holds the subject's lock exclusively and deletes the notifications, then the
tasks. Taken the other way round the two wait for each other until PostgreSQL aborts one
(the purge, as often as not); in this order the write finishes first, or waits for the purge
and finds nothing. Shared, the lock costs the user's concurrent writes nothing.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, delete, insert, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import Clock, utcnow
from shared.columns import MAX_ID
from shared.db import Database, Statements, statements
from shared.errors import (
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidCursor,
    NotFound,
    PreconditionFailed,
)
from shared.timezones import local_or_as_given
from shared.tombstones import lock_subject
from todo_service import reminders
from todo_service import statements as sql
from todo_service.listing import encode_cursor, page_statement
from todo_service.models import TASKS, Recurrence, Task
from todo_service.schemas import (
    LATEST,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskPublic,
    TaskQuery,
    TaskReplace,
)

__all__ = [
    "IdempotencyKeyReused",
    "InvalidCursor",
    "StaleTask",
    "TaskNotFound",
    "TasksNotFound",
    "add_task",
    "delete_many",
    "delete_task",
    "get_task",
    "list_tasks",
    "list_tasks_json",
    "set_completed",
    "set_completed_many",
    "update_task",
]

IDEMPOTENCY_TTL = timedelta(hours=24)
_TASK_LIST = TypeAdapter(list[TaskPublic])


class TaskNotFound(NotFound, code="task_not_found", message="Task not found"):
    """No such task, or another user's: the two are not told apart."""


class StaleTask(PreconditionFailed):
    message = "The task has changed since it was read (If-Match does not match its ETag)"


def to_public(task: Task) -> TaskPublic:
    return TaskPublic.model_validate(task, from_attributes=True)


# --- one task -------------------------------------------------------------------------------


async def _locked_tasks(
    session: AsyncSession, user_id: str, task_ids: Sequence[int], *, predecessors: bool = False
) -> list[Task]:
    """The user's tasks among these ids, each locked until the unit of work ends, so a
    check and the writes that follow it are atomic against concurrent writers; with
    ``predecessors``, also the tasks whose next occurrence they are (a deletion clears their
    link). Another user's task is not found, as a missing one.

    The user's subject lock comes first (the lock order in this module's docstring), then
    every row in one statement, in id order, before the caller writes anything: the one
    order every writer of tasks takes, so two writes over overlapping tasks wait for each
    other instead of deadlocking. A predecessor has a lower id than its next occurrence:
    locked after it (as a deletion's update of the link did), it would run against that order.
    """
    wanted = [task_id for task_id in task_ids if 1 <= task_id <= MAX_ID]
    await lock_subject(session, user_id)
    chosen: ColumnElement[bool] = col(Task.id).in_(wanted)
    if predecessors:
        chosen = or_(chosen, col(Task.next_occurrence_id).in_(wanted))
    statement = (
        select(Task)
        .where(chosen, col(Task.user_id) == user_id)
        .order_by(col(Task.id))
        .with_for_update()
    )
    # A locked read must see the committed row, not a copy cached earlier in this session.
    result = await session.exec(statement.execution_options(populate_existing=True))
    return list(result.all())


async def _task_to_write(
    session: AsyncSession,
    user_id: str,
    task_id: int,
    if_match: Collection[int] | None,
    *,
    predecessors: bool = False,
) -> Task:
    """The user's task, locked (with its predecessors if asked: ``_locked_tasks``), at a
    version ``if_match`` accepts (None: any); ``TaskNotFound`` whether it is missing or
    someone else's, ``StaleTask`` at another version."""
    locked = await _locked_tasks(session, user_id, [task_id], predecessors=predecessors)
    task = next((task for task in locked if task.id == task_id), None)
    if task is None:
        raise TaskNotFound()
    if if_match is not None and task.version not in if_match:
        raise StaleTask()
    return task


async def get_task(db: Statements, user_id: str, *, task_id: int) -> TaskPublic:
    """The user's task (one statement), or ``TaskNotFound`` whether missing or another's."""
    if not 1 <= task_id <= MAX_ID:
        raise TaskNotFound()
    row = await db.fetch_row(sql.GET_TASK, task_id, user_id)
    if row is None:
        raise TaskNotFound()
    return sql.task_from_row(row)


async def add_task(
    db: Statements | AsyncSession,
    user_id: str,
    *,
    data: TaskCreate,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = IDEMPOTENCY_TTL,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Create a task, in one statement. With an idempotency key, a repeat of the same request
    within the TTL returns the first answer instead of creating another task; concurrent
    repeats wait for the first and then replay it.

    ``db``: the ``Database`` (the statement alone) or a unit of work's session (typed as
    sqlmodel's ``AsyncSession`` by the MCP tools), whose transaction it joins.
    """
    run = statements(db)
    now = clock()
    rendered, next_remind_at = reminders.render(
        reminders.from_input(data.reminders),
        0,
        due_at=data.due_at,
        completed=False,
        snoozed_until=None,
    )
    arguments = (
        user_id,
        data.title,
        data.description,
        data.priority.value,
        list(data.tags),
        data.due_at,
        data.recurrence.value,
        now,
        # The driver's jsonb codec takes JSON text.
        json.dumps(rendered),
        next_remind_at,
        data.time_zone,
        recurrence_day(data.due_at, data.recurrence, data.time_zone),
    )
    if idempotency_key is None:
        row = await run.fetch_row(sql.CREATE_TASK, *arguments, write=True)
    else:
        request_hash = hashlib.sha256(_request_text(data).encode()).hexdigest()
        row = await run.fetch_row(
            sql.CREATE_TASK_ONCE,
            *arguments,
            idempotency_key,
            request_hash,
            now + idempotency_ttl,
            write=True,
        )
        assert row is not None  # the key's row, claimed or found
        created, stored_hash, body = row
        if not created:
            if stored_hash != request_hash:
                raise IdempotencyKeyReused()
            if body is None:
                raise IdempotentRequestInProgress(headers={"Retry-After": "1"})
    assert row is not None
    return TaskPublic.model_validate_json(row[2])


def _request_text(data: TaskCreate) -> str:
    """What an idempotent create's request hash covers. A request without a zone is hashed
    as it was before tasks had one (todo 0013), so a retry that spans that deploy (a
    rolling restart is when a create's outcome goes unknown) is still the same request."""
    return data.model_dump_json(exclude={"time_zone"} if data.time_zone is None else None)


async def update_task(
    session: AsyncSession,
    user_id: str,
    *,
    task_id: int,
    changes: TaskReplace | TaskPatch,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Write the fields ``changes`` sets: every writable one for a full replace (``PUT``: an
    absent field takes its default), those present for a merge patch (``null`` clears a
    nullable field).

    ``if_match``: the versions the caller accepts; None means the last write wins.
    """
    task = await _task_to_write(session, user_id, task_id, if_match)
    await _apply(session, task, changes.changes(), clock())
    return to_public(task)


async def set_completed(
    session: AsyncSession,
    user_id: str,
    *,
    task_id: int,
    completed: bool | None = None,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Mark the task completed or not; ``completed=None`` toggles it."""
    task = await _task_to_write(session, user_id, task_id, if_match)
    target = (not task.completed) if completed is None else completed
    await _apply(session, task, {"completed": target}, clock())
    return to_public(task)


async def delete_task(
    session: AsyncSession,
    user_id: str,
    *,
    task_id: int,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Delete the task; returns it as it was. A predecessor's link to it is cleared (and that
    predecessor's version bumped), so completing the predecessor again schedules anew."""
    task = await _task_to_write(session, user_id, task_id, if_match, predecessors=True)
    deleted = to_public(task)
    await session.exec(
        update(Task)
        .where(col(Task.next_occurrence_id) == task_id, col(Task.user_id) == user_id)
        .values(next_occurrence_id=None, updated_at=clock(), version=col(Task.version) + 1)
    )
    await session.delete(task)
    await session.flush()
    return deleted


async def _apply(session: AsyncSession, task: Task, changes: dict[str, Any], now: datetime) -> None:
    """Set the changed fields; a real change bumps ``version`` and ``updated_at``, and a
    recurring task that becomes completed schedules its next occurrence. The reminders'
    columns follow the task (todo_service/reminders.py).

    A change that makes the task monthly or moves its due date to another local date (a new
    ``due_at``, or a zone where it falls on another day) sets the series' day of the month
    anew; one that keeps the date (the time of day, a ``PUT`` of the values read) keeps it, so
    a series on the 31st stays on it from its 28 February occurrence.

    The task's row is written once (one UPDATE, hence one task event, migration 0004), after
    the next occurrence's row it links to."""
    was_completed = task.completed
    old_due = task.due_at
    old_series = _series(task)
    changes = dict(changes)
    wanted = changes.pop("reminders", None)
    changed = False
    for name, value in changes.items():
        if getattr(task, name) != value:
            setattr(task, name, value)
            changed = True
    if wanted is not None and reminders.replace(task, reminders.from_input(wanted)):
        changed = True
    if not changed:
        return
    reminders.refresh(task, old_due=old_due, now=now)
    if _series(task) != old_series:
        task.recurrence_day = recurrence_day(task.due_at, task.recurrence, task.time_zone)
    if task.completed and not was_completed:
        task.completed_at = now
    elif was_completed and not task.completed:
        task.completed_at = None
    task.updated_at = now
    task.version += 1
    if (
        task.completed
        and not was_completed
        and task.recurrence is not Recurrence.NONE
        and task.next_occurrence_id is None
    ):
        task.next_occurrence_id = await _schedule_next(session, task, now)
    await session.flush()


async def _schedule_next(session: AsyncSession, task: Task, now: datetime) -> int | None:
    """Insert the next occurrence (the same task, not completed, due one period later); its
    id. A task without a due date gets one: a period after its completion. None when that
    date would reach the end of the year 9999 (the series ends there).

    A monthly occurrence falls on the series' day of the month and remembers it; a series
    that has none (set before todo 0014, or without a due date) takes the local day it steps
    from, as before, and remembers that one.

    The row goes in on the session's connection, so the task's pending changes are not
    flushed before it: the task is then written once, already linked."""
    start = task.due_at or now
    zone = task_zone(task.time_zone)
    day = task.recurrence_day or recurrence_day(start, task.recurrence, task.time_zone)
    try:
        due = next_due(start, task.recurrence, zone, day=day)
    except (OverflowError, ValueError):
        return None
    if due >= LATEST:  # the last instant there is: stored, it would read as no due date
        return None
    connection = await session.connection()
    following = await connection.execute(
        insert(TASKS)
        .values(
            user_id=task.user_id,
            title=task.title,
            description=task.description,
            priority=task.priority,
            tags=list(task.tags),
            due_at=due,
            recurrence=task.recurrence,
            time_zone=task.time_zone,
            recurrence_day=day,
            created_at=now,
            updated_at=now,
            version=1,
            **reminders.carried_forward(task, due, now),
        )
        .returning(TASKS.c.id)
    )
    return int(following.scalar_one())


def task_zone(name: str | None) -> tzinfo:
    """The zone a task's recurrence is kept in: its own (a name the API validated), or UTC."""
    return UTC if name is None else ZoneInfo(name)


def recurrence_day(
    due_at: datetime | None, recurrence: Recurrence, time_zone: str | None
) -> int | None:
    """The day of the month a monthly series set now falls on: the due date's local day in
    the task's zone. None for another recurrence or without a due date."""
    if recurrence is not Recurrence.MONTHLY:
        return None
    local = _local_date(due_at, time_zone)
    return local.day if local is not None else None


def _local_date(due_at: datetime | None, time_zone: str | None) -> date | None:
    """The due date's date in the task's zone, as ``next_due`` reads it; None without one."""
    return None if due_at is None else local_or_as_given(due_at, task_zone(time_zone)).date()


def _series(task: Task) -> tuple[Recurrence, date | None]:
    """What a monthly series' day follows: the recurrence and, for a monthly task, the due
    date's local date (no other recurrence has a day to follow)."""
    if task.recurrence is not Recurrence.MONTHLY:
        return task.recurrence, None
    return task.recurrence, _local_date(task.due_at, task.time_zone)


def next_due(
    moment: datetime, recurrence: Recurrence, zone: tzinfo = UTC, *, day: int | None = None
) -> datetime:
    """One period after ``moment``, in UTC, stepped in ``zone``'s wall-clock time: the local
    time of day is kept across changes of daylight-saving time; daily and weekly add days to
    the local date, monthly goes to the next month's ``day`` (default: the local day of
    ``moment``), clamped to that month's end.

    A local time the new day skips (a spring-forward gap: 02:30 in Paris on the last Sunday
    of March) is read with the offset before the gap (``fold=0``), so it lands as much later
    as the gap is long (03:30 local); the series then keeps that time, as the due instant is
    all a task remembers of its time of day. A local time the new day has twice (the autumn's
    02:30) is the first of the two (``fold=0``). Where the zone's local time would leave the
    calendar (a year 0 or 10000) the step is taken in UTC. ``OverflowError`` or ``ValueError``
    when the result would leave it too.
    """
    local = local_or_as_given(moment, zone)
    wall = local.replace(tzinfo=None, fold=0)
    if recurrence is Recurrence.DAILY:
        wall += timedelta(days=1)
    elif recurrence is Recurrence.WEEKLY:
        wall += timedelta(weeks=1)
    elif recurrence is Recurrence.MONTHLY:
        year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
        last = calendar.monthrange(year, month)[1]
        wall = wall.replace(year=year, month=month, day=min(day or wall.day, last))
    else:
        raise ValueError("a task without recurrence has no next occurrence")
    return wall.replace(tzinfo=local.tzinfo).astimezone(UTC)


# --- several tasks at once -------------------------------------------------------------------


class TasksNotFound(TaskNotFound):
    """Some of the ids name no task of the user's (missing or someone else's); the whole
    operation is refused, so nothing changed."""

    def __init__(self, task_ids: Sequence[int]) -> None:
        self.task_ids = list(task_ids)
        super().__init__(f"Tasks not found: {', '.join(str(i) for i in self.task_ids)}")


async def _owned_tasks(
    session: AsyncSession, user_id: str, task_ids: Sequence[int], *, predecessors: bool = False
) -> list[Task]:
    """The user's tasks with these ids, in the order given, locked as ``_locked_tasks`` locks
    them; ``TasksNotFound`` naming every id that is missing or someone else's."""
    locked = await _locked_tasks(session, user_id, task_ids, predecessors=predecessors)
    found = {task.id: task for task in locked}
    missing = [task_id for task_id in task_ids if task_id not in found]
    if missing:
        raise TasksNotFound(missing)
    return [found[task_id] for task_id in task_ids]


async def set_completed_many(
    session: AsyncSession,
    user_id: str,
    *,
    task_ids: Sequence[int],
    completed: bool,
    clock: Clock = utcnow,
) -> list[TaskPublic]:
    """Mark every task completed or not, all or none: ``TasksNotFound`` (nothing changed)
    when any id is not the user's. Each task changes exactly as ``set_completed`` changes it
    (a recurring task that becomes completed schedules its next occurrence). The tasks come
    back in the order of ``task_ids``."""
    tasks = await _owned_tasks(session, user_id, task_ids)
    now = clock()
    for task in tasks:
        await _apply(session, task, {"completed": completed}, now)
    return [to_public(task) for task in tasks]


async def delete_many(
    session: AsyncSession, user_id: str, *, task_ids: Sequence[int], clock: Clock = utcnow
) -> list[TaskPublic]:
    """Delete every task, all or none (``TasksNotFound``, nothing changed, when any id is not
    the user's); returns them as they were, in the order of ``task_ids``. Predecessors'
    links are cleared as ``delete_task`` clears them."""
    tasks = await _owned_tasks(session, user_id, task_ids, predecessors=True)
    deleted = [to_public(task) for task in tasks]
    ids = [task.id for task in tasks]
    await session.exec(
        update(Task)
        .where(
            col(Task.next_occurrence_id).in_(ids),
            col(Task.user_id) == user_id,
            col(Task.id).not_in(ids),
        )
        .values(next_occurrence_id=None, updated_at=clock(), version=col(Task.version) + 1)
    )
    await session.exec(delete(Task).where(col(Task.id).in_(ids), col(Task.user_id) == user_id))
    return deleted


# --- lists ----------------------------------------------------------------------------------


async def list_tasks_json(
    db: Database, user_id: str, *, query: TaskQuery, clock: Clock = utcnow
) -> sql.PageJSON:
    """One page of the user's tasks (rendered by PostgreSQL), the total for the filters, and
    the cursor of the next page (None on the last). ``InvalidCursor`` for a bad cursor.

    A page is a single statement, hence a single consistent snapshot and a single round trip:
    it runs on its own pooled connection (``Database.fetch_row``), with no session around it.
    """
    statement = page_statement(user_id, query, clock())
    row = await db.fetch_row(statement.sql, *statement.args)
    assert row is not None  # an aggregate always returns its row
    total, items, fetched, last_key, last_id = row
    next_cursor = None
    if fetched > query.limit:
        next_cursor = encode_cursor(query.sort, query.direction, last_key, last_id)
    return sql.PageJSON(items_json=items, total=total, next_cursor=next_cursor)


async def list_tasks(
    db: Database, user_id: str, *, query: TaskQuery, clock: Clock = utcnow
) -> TaskPage:
    """``list_tasks_json`` with the items as ``TaskPublic`` objects."""
    page = await list_tasks_json(db, user_id, query=query, clock=clock)
    return TaskPage(
        items=_TASK_LIST.validate_json(page.items_json),
        total=page.total,
        next_cursor=page.next_cursor,
    )
