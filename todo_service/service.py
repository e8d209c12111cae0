"""Domain logic of the todo service, usable with or without HTTP.

Every function takes a session (or, for a page read, the ``Database``) and the acting user's
id (the token's subject) first, then keyword arguments; each flushes and never commits. A
caller outside a request (the MCP tools) wraps its calls in ``Database.unit_of_work()``, which
commits exactly like a request does. Every read or write of one task goes through
``_owned_task``: another user's task is indistinguishable from a task that does not exist.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import delete, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import Clock, utcnow
from shared.db import Database
from shared.errors import (
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidCursor,
    NotFound,
    PreconditionFailed,
)
from todo_service.listing import encode_cursor, page_statement
from todo_service.models import IDEMPOTENCY_KEYS, MAX_ID, IdempotencyKey, Recurrence, Task
from todo_service.schemas import (
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
    "TaskPageJSON",
    "TasksNotFound",
    "add_task",
    "delete_many",
    "delete_task",
    "get_task",
    "list_tasks",
    "list_tasks_json",
    "patch_task",
    "replace_task",
    "set_completed",
    "set_completed_many",
]

IDEMPOTENCY_TTL = timedelta(hours=24)
_TASK_LIST = TypeAdapter(list[TaskPublic])
# Expired idempotency keys removed per keyed create: bounded work, yet the table cannot grow
# faster than it is cleaned.
_PURGE_BATCH = 100


class TaskNotFound(NotFound):
    code = "task_not_found"
    message = "Task not found"


class StaleTask(PreconditionFailed):
    message = "The task has changed since it was read (If-Match does not match its ETag)"


def to_public(task: Task) -> TaskPublic:
    return TaskPublic.model_validate(task, from_attributes=True)


# --- one task -------------------------------------------------------------------------------


async def _owned_task(
    session: AsyncSession, user_id: str, task_id: int, *, for_update: bool = False
) -> Task:
    """The user's task, or ``TaskNotFound`` whether it is missing or someone else's.

    ``for_update`` locks the row until the unit of work ends, so a version check and the
    write that follows it are atomic against concurrent writers.
    """
    if not 1 <= task_id <= MAX_ID:
        raise TaskNotFound()
    statement = select(Task).where(col(Task.id) == task_id, col(Task.user_id) == user_id)
    if for_update:
        statement = statement.with_for_update()
    # A locked read must see the committed row, not a copy cached earlier in this session.
    result = await session.exec(statement.execution_options(populate_existing=True))
    task = result.first()
    if task is None:
        raise TaskNotFound()
    return task


async def _task_to_write(
    session: AsyncSession, user_id: str, task_id: int, if_match: Collection[int] | None
) -> Task:
    """The user's task, locked until the unit of work ends, at a version ``if_match`` accepts
    (None: any); ``StaleTask`` otherwise. The check and the write that follows are atomic
    against concurrent writers."""
    task = await _owned_task(session, user_id, task_id, for_update=True)
    if if_match is not None and task.version not in if_match:
        raise StaleTask()
    return task


async def get_task(session: AsyncSession, user_id: str, *, task_id: int) -> TaskPublic:
    return to_public(await _owned_task(session, user_id, task_id))


async def add_task(
    session: AsyncSession,
    user_id: str,
    *,
    data: TaskCreate,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = IDEMPOTENCY_TTL,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Create a task. With an idempotency key, a repeat of the same request within the TTL
    returns the first answer instead of creating another task; concurrent repeats wait for
    the first and then replay it."""
    now = clock()
    if idempotency_key is None:
        return to_public(await _insert_task(session, user_id, data, now))

    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    claimed = await _claim_idempotency_key(
        session, user_id, idempotency_key, request_hash, now, now + idempotency_ttl
    )
    if not claimed:
        return await _replay(session, user_id, idempotency_key, request_hash)

    public = to_public(await _insert_task(session, user_id, data, now))
    await session.exec(
        update(IdempotencyKey)
        .where(col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key) == idempotency_key)
        .values(task_id=public.id, response_status=201, response_body=public.model_dump_json())
    )
    await _purge_expired_keys(session, now)
    return public


async def _insert_task(
    session: AsyncSession, user_id: str, data: TaskCreate, now: datetime
) -> Task:
    task = Task(
        user_id=user_id,
        title=data.title,
        description=data.description,
        priority=data.priority,
        tags=list(data.tags),
        due_at=data.due_at,
        recurrence=data.recurrence,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(task)
    await session.flush()
    return task


async def _claim_idempotency_key(
    session: AsyncSession,
    user_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Insert the key's row, or take over an expired one. False when a live row exists.

    A concurrent claim of the same key blocks on the unique index until the first
    transaction ends, then sees its row: exactly one request creates the task.
    """
    table = IDEMPOTENCY_KEYS
    statement = (
        insert(table)
        .values(
            user_id=user_id,
            key=key,
            request_hash=request_hash,
            created_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_update(
            index_elements=[table.c.user_id, table.c.key],
            set_={
                "request_hash": request_hash,
                "created_at": now,
                "expires_at": expires_at,
                "task_id": None,
                "response_status": None,
                "response_body": None,
            },
            where=table.c.expires_at <= now,
        )
        .returning(table.c.id)
    )
    result = await session.exec(statement)
    return result.first() is not None


async def _replay(session: AsyncSession, user_id: str, key: str, request_hash: str) -> TaskPublic:
    result = await session.exec(
        select(IdempotencyKey).where(
            col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key) == key
        )
    )
    stored = result.one()
    if stored.request_hash != request_hash:
        raise IdempotencyKeyReused()
    if stored.response_body is None:
        raise IdempotentRequestInProgress(headers={"Retry-After": "1"})
    return TaskPublic.model_validate_json(stored.response_body)


async def _purge_expired_keys(session: AsyncSession, now: datetime) -> None:
    table = IDEMPOTENCY_KEYS
    expired = (
        sa_select(table.c.id)
        .where(table.c.expires_at <= now)
        .order_by(table.c.expires_at)
        .limit(_PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.exec(delete(table).where(table.c.id.in_(expired.scalar_subquery())))


async def replace_task(
    session: AsyncSession,
    user_id: str,
    *,
    task_id: int,
    data: TaskReplace,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Full replace (``PUT``): every writable field takes the given value or its default.

    ``if_match``: the versions the caller accepts; None means the last write wins.
    """
    task = await _task_to_write(session, user_id, task_id, if_match)
    await _apply(session, task, data.model_dump(), clock())
    return to_public(task)


async def patch_task(
    session: AsyncSession,
    user_id: str,
    *,
    task_id: int,
    changes: TaskPatch,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
) -> TaskPublic:
    """Merge patch: only the fields present change; ``null`` clears a nullable field."""
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
    task = await _task_to_write(session, user_id, task_id, if_match)
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
    recurring task that becomes completed schedules its next occurrence."""
    was_completed = task.completed
    changed = False
    for name, value in changes.items():
        if getattr(task, name) != value:
            setattr(task, name, value)
            changed = True
    if not changed:
        return
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
        following = await _schedule_next(session, task, now)
        if following is not None:
            task.next_occurrence_id = following.id
    await session.flush()


async def _schedule_next(session: AsyncSession, task: Task, now: datetime) -> Task | None:
    """The next occurrence: the same task, not completed, due one period later. A task
    without a due date gets one: a period after its completion. None when that date would
    fall after the year 9999 (the series ends there)."""
    try:
        due = next_due(task.due_at or now, task.recurrence)
    except (OverflowError, ValueError):
        return None
    following = Task(
        user_id=task.user_id,
        title=task.title,
        description=task.description,
        priority=task.priority,
        tags=list(task.tags),
        due_at=due,
        recurrence=task.recurrence,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(following)
    await session.flush()
    return following


def next_due(moment: datetime, recurrence: Recurrence) -> datetime:
    """One period later; monthly keeps the day of the month, clamped to the month's end."""
    if recurrence is Recurrence.DAILY:
        return moment + timedelta(days=1)
    if recurrence is Recurrence.WEEKLY:
        return moment + timedelta(weeks=1)
    if recurrence is Recurrence.MONTHLY:
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    raise ValueError("a task without recurrence has no next occurrence")


# --- several tasks at once -------------------------------------------------------------------


class TasksNotFound(TaskNotFound):
    """Some of the ids name no task of the user's (missing or someone else's); the whole
    operation is refused, so nothing changed."""

    def __init__(self, task_ids: Sequence[int]) -> None:
        self.task_ids = list(task_ids)
        super().__init__(f"Tasks not found: {', '.join(str(i) for i in self.task_ids)}")


async def _owned_tasks(session: AsyncSession, user_id: str, task_ids: Sequence[int]) -> list[Task]:
    """The user's tasks with these ids, in the order given, each locked until the unit of
    work ends; ``TasksNotFound`` naming every id that is missing or someone else's.

    The rows are locked in id order, the one order every multi-row writer uses, so two such
    writes over overlapping ids wait for each other instead of deadlocking.
    """
    wanted = [task_id for task_id in task_ids if 1 <= task_id <= MAX_ID]
    statement = (
        select(Task)
        .where(col(Task.id).in_(wanted), col(Task.user_id) == user_id)
        .order_by(col(Task.id))
        .with_for_update()
    )
    result = await session.exec(statement.execution_options(populate_existing=True))
    found = {task.id: task for task in result.all()}
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
    tasks = await _owned_tasks(session, user_id, task_ids)
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


@dataclass(frozen=True)
class TaskPageJSON:
    """A page as the HTTP route sends it: ``items_json`` is a JSON array of ``TaskPublic``."""

    items_json: str
    total: int
    next_cursor: str | None


async def list_tasks_json(
    db: Database, user_id: str, *, query: TaskQuery, clock: Clock = utcnow
) -> TaskPageJSON:
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
    return TaskPageJSON(items_json=items, total=total, next_cursor=next_cursor)


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
