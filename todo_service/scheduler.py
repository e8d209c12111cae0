"""The reminder scheduler: due reminders become notifications and ``reminder.due`` events.

One round (``fire_due``) is one transaction: it locks up to a batch of tasks whose
``next_remind_at`` has passed (``FOR UPDATE SKIP LOCKED``: any number of worker replicas run
it, each takes other tasks, none fires a reminder twice), and for each due reminder or
snooze creates the notification and writes its event to the outbox, then marks the reminder
fired and moves the task's ``next_remind_at`` on. Everything commits together or not at
all, so a crash fires nothing twice and loses nothing: the due state is the row itself, and
a scheduler started after a stop fires what fell due meanwhile, late but once. A task of a
user whose account is being purged is passed over (its subject's lock is tried in the query,
``shared.tombstones.try_lock_subject``): the purge deletes it, and the round would otherwise
hold its row while waiting for the purge, which waits for that row.

The notification ids of one user are drawn under that user's outbox lock
(``shared.outbox.lock_keys``), held to the commit: they increase in commit order, which is
what lets a resumed stream ask for "after id n" (todo_service/notifications.py).

Under the same lock, in the same transaction, each of those users keeps at most
``unread_max`` unread notifications: the oldest beyond them are deleted. Reminders written
with instants already past fire at once (a reminder for 9:00 written at 9:00:00.4 must still
fire), so one task re-sent with new past instants fires on every request; the bound is what
keeps that, or anything else that fires reminders, from growing the table without end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text

from shared.db import Database
from shared.events import TASKS_STREAM, utc_text
from shared.outbox import add_event, lock_keys
from shared.tombstones import try_lock_subject
from todo_service import reminders
from todo_service.models import NOTIFICATIONS, OUTBOX, TASKS
from todo_service.settings import NOTIFICATIONS_UNREAD_MAX

REMINDER_DUE = "reminder.due"
REMINDER_DUE_VERSION = 1


@dataclass(frozen=True)
class _Due:
    user_id: str
    task_id: int
    title: str
    due_at: datetime | None
    remind_at: datetime


_SELECT_DUE = (
    select(
        TASKS.c.id,
        TASKS.c.user_id,
        TASKS.c.title,
        TASKS.c.due_at,
        TASKS.c.completed,
        TASKS.c.reminders,
        TASKS.c.reminders_fired,
        TASKS.c.snoozed_until,
    )
    # A user being purged is left to the purge (shared/tombstones.py: its lock order).
    .where(TASKS.c.next_remind_at <= bindparam("now"), try_lock_subject(TASKS.c.user_id))
    .order_by(TASKS.c.next_remind_at)
    .limit(bindparam("batch"))
    .with_for_update(skip_locked=True)
)

_UPDATE_TASK = (
    TASKS.update()
    .where(TASKS.c.id == bindparam("task_id"))
    .values(
        reminders=bindparam("rendered"),
        reminders_fired=bindparam("fired"),
        snoozed_until=bindparam("snoozed"),
        next_remind_at=bindparam("next_at"),
        # The task's representation changed (fires_at): a new ETag, not a user's update.
        version=TASKS.c.version + 1,
    )
)

_NEW_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('todo.notifications', 'id')) FROM generate_series(1, :n)"
)

# Each user's unread notifications beyond the newest ``keep`` (ids increase in commit order),
# at most ``most`` of them: one backward walk of the partial index of unread ones,
# ``(user_id, id) WHERE read_at IS NULL``, reading at most ``keep + most`` entries per user.
# They are locked after they are picked (a locking read would lock the ``keep`` it skips
# too), and those another transaction has locked are skipped: a task's deletion or the
# account's purge may hold them and wait for the user's outbox lock this round holds, and a
# read or snooze takes them out of the unread anyway. So the bound may be passed by such
# rows until the user's next round.
_DELETE_UNREAD_BEYOND = text(
    """
    WITH beyond AS (
        SELECT newest.id FROM unnest(CAST(:users AS text[])) AS u(user_id)
        CROSS JOIN LATERAL (
            SELECT id FROM todo.notifications
            WHERE user_id = u.user_id AND read_at IS NULL
            ORDER BY id DESC
            OFFSET :keep LIMIT :most
        ) AS newest
    ), doomed AS (
        SELECT id FROM todo.notifications
        WHERE id = ANY(ARRAY(SELECT id FROM beyond)) AND read_at IS NULL
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM todo.notifications WHERE id IN (SELECT id FROM doomed)
    """
)
# Beyond what a round adds, at most this many more of one user's unread notifications over
# the bound go per round: a backlog from before the bound shrinks by a batch each time the
# user's reminders fire, never in one long transaction holding the round's tasks.
_UNREAD_BACKLOG_BATCH = 1000


async def fire_due(
    db: Database, *, now: datetime, batch: int, unread_max: int = NOTIFICATIONS_UNREAD_MAX
) -> int:
    """One round at ``now``: the number of tasks handled (0: nothing was due). The users it
    notifies keep at most ``unread_max`` unread notifications each, the newest."""
    async with db.unit_of_work() as session:
        connection = await session.connection()
        rows = (await connection.execute(_SELECT_DUE, {"now": now, "batch": batch})).all()
        if not rows:
            return 0
        due: list[_Due] = []
        updates: list[dict[str, Any]] = []
        for row in rows:
            task_due, update = _fire(row, now)
            due += task_due
            updates.append(update)
        if due:
            # Users in one order, their notifications in time order within each.
            due.sort(key=lambda d: (d.user_id, d.remind_at, d.task_id))
            await lock_keys(session, OUTBOX, {d.user_id for d in due})
            ids = (await connection.execute(_NEW_IDS, {"n": len(due)})).scalars().all()
            await connection.execute(
                NOTIFICATIONS.insert(),
                [
                    {
                        "id": notification_id,
                        "user_id": d.user_id,
                        "kind": "reminder",
                        "task_id": d.task_id,
                        "task_title": d.title,
                        "due_at": d.due_at,
                        "remind_at": d.remind_at,
                        "created_at": now,
                    }
                    for notification_id, d in zip(ids, due, strict=True)
                ],
            )
            await connection.execute(
                _DELETE_UNREAD_BEYOND,
                {
                    "users": sorted({d.user_id for d in due}),
                    "keep": unread_max,
                    "most": len(due) + _UNREAD_BACKLOG_BATCH,
                },
            )
            for notification_id, d in zip(ids, due, strict=True):
                await add_event(
                    session,
                    OUTBOX,
                    stream=TASKS_STREAM,
                    key=d.user_id,
                    type=REMINDER_DUE,
                    version=REMINDER_DUE_VERSION,
                    data={
                        "user_id": d.user_id,
                        "notification_id": notification_id,
                        "task_id": d.task_id,
                        "title": d.title,
                        "due_at": None if d.due_at is None else utc_text(d.due_at),
                        "remind_at": utc_text(d.remind_at),
                    },
                )
        await connection.execute(_UPDATE_TASK, updates)
        return len(rows)


def _fire(row: Any, now: datetime) -> tuple[list[_Due], dict[str, Any]]:
    """What falls due on this task at ``now``, and its columns once those have fired."""
    items = reminders.parse(row.reminders)
    fired = row.reminders_fired
    due = []
    for index, reminder in enumerate(items):
        instant = reminder.instant(row.due_at)
        if fired >> index & 1 or instant is None or instant > now:
            continue
        fired |= 1 << index
        due.append(_Due(row.user_id, row.id, row.title, row.due_at, instant))
    snoozed = row.snoozed_until
    if snoozed is not None and snoozed <= now:
        due.append(_Due(row.user_id, row.id, row.title, row.due_at, snoozed))
        snoozed = None
    rendered, next_at = reminders.render(
        items, fired, due_at=row.due_at, completed=row.completed, snoozed_until=snoozed
    )
    update = {
        "task_id": row.id,
        "rendered": rendered,
        "fired": fired,
        "snoozed": snoozed,
        "next_at": next_at,
    }
    return due, update


async def pending_count(db: Database) -> int:
    """Tasks with a reminder or snooze still to fire (a gauge for operators and the bench)."""
    row = await db.fetch_row("SELECT count(*) FROM todo.tasks WHERE next_remind_at IS NOT NULL")
    return int(row[0]) if row is not None else 0
