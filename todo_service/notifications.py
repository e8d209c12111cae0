"""The user's notifications: a page, read (dismiss), snooze, and the rows a stream sends.

Every statement carries the user's id in its condition: another user's notification is
indistinguishable from one that does not exist. Notifications are rendered by PostgreSQL
(``statements.NOTIFICATION_JSON``), as tasks are. Ids of one user's notifications increase
in commit order (todo_service/scheduler.py), so a page or a stream continues "after id n".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlmodel import col, select

from shared import pagination
from shared.clock import Clock, utcnow
from shared.columns import MAX_ID
from shared.db import Database, Session, Statements
from shared.errors import NotFound
from shared.tombstones import lock_subject
from todo_service import reminders
from todo_service.models import Task
from todo_service.schemas import NotificationPublic, NotificationQuery
from todo_service.statements import NOTIFICATION_JSON, PageJSON


class NotificationNotFound(
    NotFound, code="notification_not_found", message="Notification not found"
):
    """No such notification, or another user's."""


def _page_sql(*, unread: bool, after_cursor: bool) -> str:
    where = "user_id = $1" + (" AND read_at IS NULL" if unread else "")
    page_where = where + (" AND id < $3" if after_cursor else "")
    return f"""
WITH page AS (
    SELECT *, row_number() OVER (ORDER BY id DESC) AS rn
    FROM todo.notifications
    WHERE {page_where}
    ORDER BY id DESC
    LIMIT $2::int + 1
)
SELECT (SELECT count(*) FROM todo.notifications WHERE {where}) AS total,
       coalesce(json_agg({NOTIFICATION_JSON} ORDER BY rn) FILTER (WHERE rn <= $2::int),
                '[]'::json)::text AS items,
       count(*) AS fetched,
       max(id) FILTER (WHERE rn = $2::int) AS last_id
FROM page"""  # noqa: S608 - constants only; every value is a bound parameter


# Newest first, each page one index range scan of (user_id, id) (the unread one's partial
# index for unread=true), by filter and by whether a cursor continues a walk.
_PAGES = {
    (unread, cursor): _page_sql(unread=unread, after_cursor=cursor)
    for unread in (False, True)
    for cursor in (False, True)
}


def encode_cursor(last_id: int) -> str:
    return pagination.encode_cursor({"i": last_id})


def decode_cursor(cursor: str) -> int:
    return pagination.cursor_id(pagination.decode_cursor_object(cursor, keys={"i"})["i"])


async def list_notifications_json(
    db: Database, user_id: str, *, query: NotificationQuery
) -> PageJSON:
    """One page of the user's notifications, newest first; ``InvalidCursor`` for a bad cursor."""
    args: list[object] = [user_id, query.limit]
    if query.cursor is not None:
        args.append(decode_cursor(query.cursor))
    row = await db.fetch_row(_PAGES[(query.unread, query.cursor is not None)], *args)
    assert row is not None  # an aggregate always returns its row
    total, items, fetched, last_id = row
    next_cursor = encode_cursor(last_id) if fetched > query.limit else None
    return PageJSON(items_json=items, total=total, next_cursor=next_cursor)


_MARK_READ = f"""
UPDATE todo.notifications SET read_at = coalesce(read_at, $3)
WHERE id = $1 AND user_id = $2
RETURNING task_id, {NOTIFICATION_JSON}::text"""  # noqa: S608

_TASK_OF = "SELECT task_id FROM todo.notifications WHERE id = $1 AND user_id = $2"


async def mark_read(
    db: Statements, user_id: str, *, notification_id: int, clock: Clock = utcnow
) -> str:
    """Mark it read (again: unchanged); its JSON. ``NotificationNotFound`` if not the user's."""
    if not 1 <= notification_id <= MAX_ID:
        raise NotificationNotFound()
    row = await db.fetch_row(_MARK_READ, notification_id, user_id, clock(), write=True)
    if row is None:
        raise NotificationNotFound()
    body: str = row[1]
    return body


async def snooze(
    session: Session,
    user_id: str,
    *,
    notification_id: int,
    minutes: int,
    clock: Clock = utcnow,
) -> str:
    """Mark it read and remind again in ``minutes`` (a one-off reminder on its task, which
    fires a new notification); its JSON. The user's subject lock is taken first, then the
    task, then the notification, in the order a task's deletion takes them (the purge takes
    the notifications before the tasks, but it holds the subject's lock exclusively, so it
    never interleaves with this: shared/tombstones.py)."""
    if not 1 <= notification_id <= MAX_ID:
        raise NotificationNotFound()
    await lock_subject(session, user_id)
    found = await session.fetch_row(_TASK_OF, notification_id, user_id)
    if found is None:
        raise NotificationNotFound()
    now = clock()
    result = await session.exec(
        select(Task)
        .where(col(Task.id) == found[0], col(Task.user_id) == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    task = result.first()
    if task is None:  # deleted since, with its notifications
        raise NotificationNotFound()
    reminders.snooze(task, now + timedelta(minutes=minutes))
    await session.flush()
    return await mark_read(session, user_id, notification_id=notification_id, clock=lambda: now)


# --- streams --------------------------------------------------------------------------------

_AFTER = f"""
SELECT coalesce(array_agg(id ORDER BY id), '{{}}'), coalesce(array_agg(body ORDER BY id), '{{}}')
FROM (
    SELECT id, {NOTIFICATION_JSON}::text AS body
    FROM todo.notifications
    WHERE user_id = $1 AND id > $2
    ORDER BY id ORDER_PLACEHOLDER
    LIMIT $3
) AS rows"""  # noqa: S608
# The oldest after a position (live: nothing skipped), or the newest (a resume's backlog).
_OLDEST_AFTER = _AFTER.replace("ORDER_PLACEHOLDER", "ASC")
_NEWEST_AFTER = _AFTER.replace("ORDER_PLACEHOLDER", "DESC")
_LATEST = "SELECT coalesce(max(id), 0) FROM todo.notifications WHERE user_id = $1"


async def latest_id(db: Database, user_id: str) -> int:
    """The user's newest notification id (0: none): where a fresh stream starts."""
    row = await db.fetch_row(_LATEST, user_id)
    return int(row[0]) if row is not None else 0


async def after(
    db: Database, user_id: str, *, after_id: int, limit: int, newest: bool = False
) -> list[tuple[int, str]]:
    """The user's notifications after ``after_id`` in id order, at most ``limit``: the
    oldest of them, or with ``newest`` the newest (a bounded backlog)."""
    row = await db.fetch_row(_NEWEST_AFTER if newest else _OLDEST_AFTER, user_id, after_id, limit)
    assert row is not None
    return list(zip(row[0], row[1], strict=True))


_FORGET_READ = (
    "WITH gone AS (DELETE FROM todo.notifications WHERE id IN ("
    "SELECT id FROM todo.notifications WHERE read_at < $1 ORDER BY read_at, id LIMIT $2) "
    "RETURNING 1) SELECT count(*) FROM gone"
)


async def forget_read(db: Database, *, before: datetime, batch: int) -> int:
    """Delete at most ``batch`` notifications read before ``before``, oldest first; how many
    were deleted. Unread ones stay whatever their age."""
    row = await db.fetch_row(_FORGET_READ, before, batch, write=True)
    return int(row[0]) if row is not None else 0


def parse(body: str) -> NotificationPublic:
    return NotificationPublic.model_validate(json.loads(body))
