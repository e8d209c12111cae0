"""Tables of the todo service, all in schema ``todo``.

Every list query is "one user's tasks, filtered, in one order, after a keyset position", so each
sort has a composite ``(user_id, <sort key>, id)`` b-tree index: a page is one index range scan,
as cheap 150 pages deep as on the first page.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from shared.columns import time_zone, timestamp
from shared.db import schema_metadata
from shared.events import processed_events_table
from shared.outbox import outbox_table
from shared.tombstones import tombstone_table

SCHEMA = "todo"

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
TAG_MAX = 30
TAGS_MAX = 10
# Tasks one user keeps: an insert past it is refused by the database (migration 0012's
# trigger, as a 409 ``task_limit_reached``), whichever path adds the task.
TASKS_PER_USER_MAX = 100_000
# The largest task event on the stream, in bytes: its title, description and tags hold at
# most 1,500 characters, each at most 6 bytes of compact UTF-8 JSON (an emoji takes 4, a
# control character's escape 6), and the rest of the task and the envelope well under 1 KiB.
# Redis's memory is sized for EVENTS_STREAM_MAXLEN of these (docs/deploy.md, "Redis's memory").
TASK_EVENT_MAX_BYTES = 10 * 1024


# The order of each sort of the list, by sort name, spelled exactly as its index
# (ix_tasks_user_<sort>) and the list's ORDER BY both use it; the id breaks ties.
SORT_KEYS = {
    "created": "created_at",
    "updated": "updated_at",
    # Undated tasks sort after dated ones ascending (before them descending), as PostgreSQL
    # places NULLs; the sentinel keeps the row comparison total.
    "due": "coalesce(due_at, 'infinity'::timestamptz)",
    "priority": "priority",
    # Alphabetical means case-insensitive to people.
    "title": "lower(title)",
}
IDEMPOTENCY_KEY_MAX = 255
# Reminders per task, and the furthest an offset reminder may be before the due date (30 days).
REMINDERS_MAX = 5
REMINDER_OFFSET_MAX_MINUTES = 43_200
# A snoozed notification comes back after 1 minute to 1 day.
SNOOZE_MAX_MINUTES = 1440
NOTIFICATION_KINDS = ("reminder",)


class Priority(enum.StrEnum):
    # Declaration order is the sort order of the PostgreSQL enum: low < medium < high.
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Recurrence(enum.StrEnum):
    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class TodoBase(SQLModel):
    metadata = schema_metadata(SCHEMA)


def _enum(enum_class: type[enum.StrEnum], name: str, default: enum.StrEnum) -> Column[str]:
    return Column(
        Enum(
            enum_class,
            name=name,
            schema=SCHEMA,
            values_callable=lambda members: [member.value for member in members],
        ),
        nullable=False,
        server_default=default.value,
    )


class Task(TodoBase, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"char_length(title) BETWEEN 1 AND {TITLE_MAX}", name="title_length"),
        CheckConstraint(
            f"description IS NULL OR char_length(description) <= {DESCRIPTION_MAX}",
            name="description_length",
        ),
        CheckConstraint(f"cardinality(tags) <= {TAGS_MAX}", name="tags_count"),
        CheckConstraint("completed = (completed_at IS NOT NULL)", name="completed_at_set"),
        CheckConstraint(
            "jsonb_typeof(reminders) = 'array' "
            f"AND jsonb_array_length(reminders) <= {REMINDERS_MAX}",
            name="reminders_count",
        ),
        CheckConstraint("recurrence_day BETWEEN 1 AND 31", name="recurrence_day_range"),
        # A completed task has nothing to fire (todo_service/reminders.py keeps it so).
        CheckConstraint("NOT (completed AND next_remind_at IS NOT NULL)", name="no_remind_done"),
        # A task spawns at most one next occurrence, and an occurrence has one predecessor.
        UniqueConstraint("next_occurrence_id"),
        # Keyset pagination: one index per sort, the id breaking ties.
        *(
            Index(f"ix_tasks_user_{sort}", "user_id", text(key) if "(" in key else key, "id")
            for sort, key in SORT_KEYS.items()
        ),
        # `q`: case-insensitive substring search (ILIKE) in title and description.
        Index(
            "ix_tasks_search_trgm",
            "title",
            "description",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
        ),
        # The scheduler's scan: only tasks with something to fire, soonest first.
        Index(
            "ix_tasks_next_remind_at",
            "next_remind_at",
            postgresql_where=text("next_remind_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True),
    )
    # The token's subject, opaque: our own user ids or another trusted issuer's.
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(String(TITLE_MAX), nullable=False))
    description: str | None = Field(
        default=None, sa_column=Column(String(DESCRIPTION_MAX), nullable=True)
    )
    completed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    completed_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    priority: Priority = Field(
        default=Priority.MEDIUM, sa_column=_enum(Priority, "task_priority", Priority.MEDIUM)
    )
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    due_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    recurrence: Recurrence = Field(
        default=Recurrence.NONE,
        sa_column=_enum(Recurrence, "task_recurrence", Recurrence.NONE),
    )
    # The IANA zone whose wall-clock time the recurrence keeps (service.next_due); None: UTC.
    time_zone: str | None = Field(default=None, sa_column=time_zone(nullable=True))
    # The day of the month a monthly series falls on, clamped to each month's end: the due
    # date's local day when the series was set (service.recurrence_day). Internal, never in the
    # API. None: not monthly, no due date, or a series set before todo 0014 (its due date's day).
    recurrence_day: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))
    # The occurrence this task spawned when it was completed; cleared if that one is deleted,
    # so completing again can never create a second one while the first exists.
    next_occurrence_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.tasks.id", ondelete="SET NULL"), nullable=True
        ),
    )
    created_at: datetime = Field(sa_column=timestamp())
    updated_at: datetime = Field(sa_column=timestamp())
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    # The reminders exactly as clients read them (TaskPublic.reminders, rendered with the
    # task, no other table read), kept by todo_service/reminders.py on every write.
    reminders: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    # Bit i set: reminder i has fired (a reopened task fires the others, not these again).
    reminders_fired: int = Field(
        default=0, sa_column=Column(SmallInteger, nullable=False, server_default=text("0"))
    )
    # A snoozed notification's one-off reminder (one per task: a later snooze replaces it).
    snoozed_until: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    # The soonest pending reminder or snooze; None when there is none or the task is done.
    next_remind_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


class TaskCount(TodoBase, table=True):
    """Per-user task totals, kept exact by triggers on ``tasks`` (migration 0001), so the
    unfiltered and status-only ``X-Total-Count`` is one primary-key read instead of a
    count over every one of the user's rows."""

    __tablename__ = "task_counts"

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    total: int = Field(sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    completed: int = Field(sa_column=Column(BigInteger, nullable=False, server_default=text("0")))


class IdempotencyKey(TodoBase, table=True):
    """The first answer to a ``POST /api/tasks`` carrying an ``Idempotency-Key``, per user.

    The row is claimed with the answer in the statement that creates the task
    (``todo_service.statements``): a concurrent retry with the same key waits on it and then
    replays the stored answer.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True),
    )
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    key: str = Field(sa_column=Column(String(IDEMPOTENCY_KEY_MAX), nullable=False))
    # SHA-256 of the validated request body: the same key with another body is refused.
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    task_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    response_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # The task as first answered, replayed byte for byte.
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=timestamp())
    expires_at: datetime = Field(sa_column=timestamp())


class Notification(TodoBase, table=True):
    """Something the user is told: a reminder that fell due. The task's title and due date
    are kept as they were when it fired; the row goes with its task.

    Ids of one user's notifications increase in commit order (the scheduler inserts them
    under the user's outbox lock), so "after id n" is exact for a resumed stream.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in NOTIFICATION_KINDS) + ")",
            name="kind_known",
        ),
        # Newest-first keyset pages (and a stream's "after id n") of one user.
        Index("ix_notifications_user_id", "user_id", "id"),
        Index(
            "ix_notifications_user_unread",
            "user_id",
            "id",
            postgresql_where=text("read_at IS NULL"),
        ),
        # The cascade from a deleted task.
        Index("ix_notifications_task_id", "task_id"),
        # The worker's retention: read ones, oldest first.
        Index(
            "ix_notifications_read_at",
            "read_at",
            "id",
            postgresql_where=text("read_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True),
    )
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    task_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.tasks.id", ondelete="CASCADE"), nullable=False
        )
    )
    task_title: str = Field(sa_column=Column(String(TITLE_MAX), nullable=False))
    due_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    # When the reminder was meant to fire (created_at is when it did).
    remind_at: datetime = Field(sa_column=timestamp())
    created_at: datetime = Field(sa_column=timestamp())
    read_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


# The tables as Core objects, for the list queries that need no ORM instances.
TASKS = TodoBase.metadata.tables[f"{SCHEMA}.tasks"]
NOTIFICATIONS = TodoBase.metadata.tables[f"{SCHEMA}.notifications"]
TASK_COUNTS = TodoBase.metadata.tables[f"{SCHEMA}.task_counts"]
IDEMPOTENCY_KEYS = TodoBase.metadata.tables[f"{SCHEMA}.idempotency_keys"]


# Account deletion (docs/events.md): the subjects whose rows were purged on ``user.deleted``,
# and the events already applied (a redelivered one changes nothing).
DELETED_SUBJECTS = tombstone_table(TodoBase.metadata)
PROCESSED_EVENTS = processed_events_table(TodoBase.metadata)
# Events of task changes and due reminders, written in the change's transaction and published
# to the tasks stream by the worker (shared/outbox.py, docs/events.md).
OUTBOX = outbox_table(TodoBase.metadata)
# Tables refusing rows of a deleted subject (a trigger each, shared/tombstones.py).
USER_TABLES = ("tasks", "idempotency_keys", "notifications", "webhooks", "webhook_deliveries")


# --- webhooks (todo_service/webhooks, docs/webhooks.md) ---------------------------------

WEBHOOK_URL_MAX = 2048
WEBHOOKS_PER_USER = 10
DELIVERY_STATUSES = ("pending", "delivered", "failed")
DELIVERY_ERROR_MAX = 500

# A user's HTTPS endpoints; ``events`` the types it receives. The signing secret is stored
# sealed (shared/sealing.py), never in clear. ``failures`` counts the attempts in a row that
# failed or answered slowly, and ``held_until`` is when the webhook's deliveries may be
# attempted again after the last of them (todo_service/webhooks/delivery.py).
WEBHOOKS = Table(
    "webhooks",
    TodoBase.metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("held_until", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"char_length(url) <= {WEBHOOK_URL_MAX}", name="url_length"),
    CheckConstraint("cardinality(events) >= 1", name="events_count"),
    CheckConstraint("failures >= 0", name="failures_count"),
    Index("ix_webhooks_user_id", "user_id", "id"),
)

# One event to one webhook: pending until a 2xx (delivered) or until the retry window ends
# (failed). ``payload`` is the envelope JSON exactly as it is signed and sent.
WEBHOOK_DELIVERIES = Table(
    "webhook_deliveries",
    TodoBase.metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "webhook_id",
        BigInteger,
        ForeignKey(f"{SCHEMA}.webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in DELIVERY_STATUSES) + ")", name="status_known"
    ),
    CheckConstraint(
        "(status = 'pending') = (next_attempt_at IS NOT NULL)", name="pending_has_next_attempt"
    ),
    # A redelivered event never makes a second delivery to the same webhook.
    UniqueConstraint("webhook_id", "event_id"),
    # The delivery loop's scan: due pending deliveries, soonest first.
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    # A webhook's deliveries, newest first (keyset pages).
    Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    # A webhook's pending deliveries, moved together when a failure holds the webhook.
    Index(
        "ix_webhook_deliveries_pending_webhook",
        "webhook_id",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    # A user's pending deliveries, counted against TODO_WEBHOOK_PENDING_PER_USER at fan-out.
    Index(
        "ix_webhook_deliveries_pending_user",
        "user_id",
        postgresql_where=text("status = 'pending'"),
    ),
    # Finished deliveries are deleted after the retention, oldest first.
    Index(
        "ix_webhook_deliveries_finished",
        "finished_at",
        postgresql_where=text("finished_at IS NOT NULL"),
    ),
)
# The tasks-stream events the webhooks consumer group has fanned out (dropped when delivered
# again); the users stream's ids are another sequence, in PROCESSED_EVENTS.
WEBHOOK_EVENTS = processed_events_table(TodoBase.metadata, "webhook_events")
