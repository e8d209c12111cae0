"""The events the todo service consumes (docs/events.md): ``user.deleted`` from the users
stream purges the user's tasks for good (shared/purge.py)."""

from __future__ import annotations

from shared.purge import UserPurge
from todo_service.models import (
    DELETED_SUBJECTS,
    IDEMPOTENCY_KEYS,
    NOTIFICATIONS,
    PROCESSED_EVENTS,
    TASK_COUNTS,
    TASKS,
)

PURGE = UserPurge(
    group="todo",
    deleted_subjects=DELETED_SUBJECTS,
    processed_events=PROCESSED_EVENTS,
    tables=(NOTIFICATIONS, TASKS, TASK_COUNTS, IDEMPOTENCY_KEYS),
)
