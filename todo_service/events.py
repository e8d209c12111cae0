"""The events the todo service consumes (docs/events.md): ``user.deleted`` from the users
stream purges the user's tasks, notifications and webhooks for good (shared/purge.py); the
tasks stream feeds the webhooks (todo_service/webhooks/fanout.py)."""

from __future__ import annotations

from shared.purge import UserPurge
from todo_service import models

PURGE = UserPurge(
    group="todo",
    deleted_subjects=models.DELETED_SUBJECTS,
    processed_events=models.PROCESSED_EVENTS,
    # The user's rows, children before parents.
    tables=(
        models.NOTIFICATIONS,
        models.TASKS,
        models.TASK_COUNTS,
        models.IDEMPOTENCY_KEYS,
        models.WEBHOOK_DELIVERIES,
        models.WEBHOOKS,
    ),
)
