"""A task's reminders: what they are, when each fires, and the row's columns that say so.

A reminder is an instant (``at``) or minutes before the task's due date. The row keeps
``reminders`` exactly as clients read them (``fires_at`` included, so the list and a read
render the column as it is), a bit per reminder that has fired (``reminders_fired``), a
snoozed notification's one-off instant (``snoozed_until``) and the soonest of all that is
pending (``next_remind_at``), which the scheduler scans (todo_service/scheduler.py).

Rules, applied by ``refresh`` on every write of a task:
- a completed task fires nothing (``fires_at`` null, ``next_remind_at`` null); reopened, its
  reminders that have not fired are pending again, and one whose instant has passed fires
  at once (it was never delivered);
- a changed due date moves the offset reminders; one that moves into the future fires again;
- replacing the list keeps the fired state of a reminder given again unchanged, so a client
  that re-sends the list it read does not fire the past ones again;
- a recurring task's next occurrence carries the reminders forward (``carried_forward``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import ValidationFailed
from todo_service.models import Task
from todo_service.schemas import EARLIEST, LATEST, ReminderIn, utc_text

# Instants too far in the past for arithmetic fire as soon as they are pending, as of the
# first instant there is: the range's own end (``datetime.min``) is what the driver stores as
# PostgreSQL's -infinity, which a notification's ``remind_at`` would read back as no time.
_EARLIEST = EARLIEST + timedelta(microseconds=1)


@dataclass(frozen=True)
class Reminder:
    at: datetime | None = None
    before_due_minutes: int | None = None

    def instant(self, due_at: datetime | None) -> datetime | None:
        """When it fires for a task due at ``due_at`` (None: an offset without a due date)."""
        if self.at is not None:
            return self.at
        if due_at is None or self.before_due_minutes is None:
            return None
        try:
            # Not before the first instant: datetime.min itself is stored as -infinity.
            return max(due_at - timedelta(minutes=self.before_due_minutes), _EARLIEST)
        except OverflowError:
            return _EARLIEST


def from_input(items: Iterable[ReminderIn | dict[str, Any]]) -> list[Reminder]:
    """Validated input items (models, or their ``model_dump``) as reminders."""
    reminders = []
    for item in items:
        if isinstance(item, ReminderIn):
            item = item.model_dump()
        reminders.append(
            Reminder(at=item.get("at"), before_due_minutes=item.get("before_due_minutes"))
        )
    return reminders


def parse(column: Sequence[dict[str, Any]]) -> list[Reminder]:
    """Reminders read back from a task's ``reminders`` column."""
    return [
        Reminder(
            at=None if item["at"] is None else datetime.fromisoformat(item["at"]),
            before_due_minutes=item["before_due_minutes"],
        )
        for item in column
    ]


def of(task: Task) -> list[Reminder]:
    """The task's reminders."""
    return parse(task.reminders)


def _fired(mask: int, index: int) -> bool:
    return bool(mask >> index & 1)


def render(
    reminders: Sequence[Reminder],
    fired: int,
    *,
    due_at: datetime | None,
    completed: bool,
    snoozed_until: datetime | None,
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The column as clients read it, and the soonest pending instant."""
    items = []
    pending = []
    for index, reminder in enumerate(reminders):
        instant = reminder.instant(due_at)
        fires = None if completed or _fired(fired, index) else instant
        if fires is not None:
            pending.append(fires)
        items.append(
            {
                "at": None if reminder.at is None else utc_text(reminder.at),
                "before_due_minutes": reminder.before_due_minutes,
                "fires_at": None if fires is None else utc_text(fires),
            }
        )
    if snoozed_until is not None and not completed:
        pending.append(snoozed_until)
    return items, min(pending, default=None)


def check(reminders: Sequence[Reminder], due_at: datetime | None) -> None:
    """An offset reminder needs a due date (422 otherwise)."""
    if due_at is None and any(r.before_due_minutes is not None for r in reminders):
        raise ValidationFailed(
            "before_due_minutes needs a due date: give the task one, or clear those reminders",
            code="reminder_needs_due_date",
        )


def replace(task: Task, new: Sequence[Reminder]) -> bool:
    """Set the task's list (``refresh`` renders it); whether it changed. A reminder given
    again unchanged keeps its fired state; a new one is pending."""
    old = of(task)
    if list(new) == old:
        return False
    kept = 0
    for index, reminder in enumerate(new):
        if reminder in old and _fired(task.reminders_fired, old.index(reminder)):
            kept |= 1 << index
    task.reminders_fired = kept
    # Rendered by refresh; set here so that the ORM sees the column change.
    task.reminders = [
        {
            "at": None if r.at is None else utc_text(r.at),
            "before_due_minutes": r.before_due_minutes,
            "fires_at": None,
        }
        for r in new
    ]
    return True


def refresh(task: Task, *, old_due: datetime | None, now: datetime) -> None:
    """Render the task's reminder columns after a write (see the module's rules)."""
    reminders = of(task)
    check(reminders, task.due_at)
    fired = task.reminders_fired
    if old_due != task.due_at:
        for index, reminder in enumerate(reminders):
            instant = reminder.instant(task.due_at)
            if reminder.before_due_minutes is not None and instant is not None and instant > now:
                fired &= ~(1 << index)
    task.reminders_fired = fired
    task.reminders, task.next_remind_at = render(
        reminders,
        fired,
        due_at=task.due_at,
        completed=task.completed,
        snoozed_until=task.snoozed_until,
    )


def carried_forward(task: Task, due_at: datetime, now: datetime) -> dict[str, Any]:
    """The reminder columns of the next occurrence of ``task``, due at ``due_at``: absolute
    reminders shifted as far as the due date moved, offsets kept, all pending. An instant
    that cannot be shifted (to the end of the year 9999 or past it) is dropped with the
    series' end."""
    shift = due_at - (task.due_at or now)
    carried = []
    for reminder in of(task):
        if reminder.at is None:
            carried.append(reminder)
            continue
        try:
            shifted = reminder.at + shift
        except OverflowError:
            continue
        if shifted < LATEST:
            carried.append(Reminder(at=shifted))
    rendered, next_at = render(carried, 0, due_at=due_at, completed=False, snoozed_until=None)
    return {
        "reminders": rendered,
        "reminders_fired": 0,
        "snoozed_until": None,
        "next_remind_at": next_at,
    }


def snooze(task: Task, until: datetime) -> None:
    """A one-off reminder at ``until`` (replacing an earlier snooze of the task)."""
    task.snoozed_until = until
    _, task.next_remind_at = render(
        of(task),
        task.reminders_fired,
        due_at=task.due_at,
        completed=task.completed,
        snoozed_until=until,
    )
