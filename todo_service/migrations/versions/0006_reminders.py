"""reminders on tasks, their scheduler's index, and notifications

A task's reminders live on its row (rendered with it, no other table read by the list);
``next_remind_at`` is what the scheduler scans. Notifications are the user's, refused for a
deleted subject like every other user table (shared/tombstones.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migration_ops import create_refusal_triggers_v1, drop_refusal_triggers_v1

revision = "0006"
down_revision = "0005"

SCHEMA = "todo"


def upgrade() -> None:
    for column in (
        sa.Column(
            "reminders",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "reminders_fired", sa.SmallInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_remind_at", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column("tasks", column, schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_tasks_reminders_count"),
        "tasks",
        "jsonb_typeof(reminders) = 'array' AND jsonb_array_length(reminders) <= 5",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_tasks_no_remind_done"),
        "tasks",
        "NOT (completed AND next_remind_at IS NOT NULL)",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tasks_next_remind_at",
        "tasks",
        ["next_remind_at"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("next_remind_at IS NOT NULL"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("task_title", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('reminder')", name=op.f("ck_notifications_kind_known")),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["todo.tasks.id"],
            name=op.f("fk_notifications_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifications_user_id", "notifications", ["user_id", "id"], unique=False, schema=SCHEMA
    )
    op.create_index(
        "ix_notifications_user_unread",
        "notifications",
        ["user_id", "id"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_index(
        "ix_notifications_task_id", "notifications", ["task_id"], unique=False, schema=SCHEMA
    )
    create_refusal_triggers_v1(SCHEMA, ["notifications"])


def downgrade() -> None:
    drop_refusal_triggers_v1(SCHEMA, ["notifications"])
    op.drop_index("ix_notifications_task_id", table_name="notifications", schema=SCHEMA)
    op.drop_index("ix_notifications_user_unread", table_name="notifications", schema=SCHEMA)
    op.drop_index("ix_notifications_user_id", table_name="notifications", schema=SCHEMA)
    op.drop_table("notifications", schema=SCHEMA)
    op.drop_index("ix_tasks_next_remind_at", table_name="tasks", schema=SCHEMA)
    op.drop_constraint(op.f("ck_tasks_no_remind_done"), "tasks", schema=SCHEMA)
    op.drop_constraint(op.f("ck_tasks_reminders_count"), "tasks", schema=SCHEMA)
    for column in ("next_remind_at", "snoozed_until", "reminders_fired", "reminders"):
        op.drop_column("tasks", column, schema=SCHEMA)
