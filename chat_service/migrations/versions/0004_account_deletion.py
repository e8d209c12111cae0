"""account deletion: deleted subjects, applied events, and triggers refusing their rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 03:20:00.000000

The worker purges a deleted user's rows on ``user.deleted`` and records the subject; from
then on the triggers refuse any new row of it (shared/tombstones.py, docs/events.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.tombstones import refusal_function_sql, refusal_trigger_sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "chat"
# Every table with a user_id column that a request can insert into.
USER_TABLES = ("conversations", "messages", "turn_keys")


def upgrade() -> None:
    op.create_table(
        "deleted_subjects",
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_deleted_subjects")),
        schema=SCHEMA,
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
        schema=SCHEMA,
    )
    op.execute(refusal_function_sql(SCHEMA))
    for table in USER_TABLES:
        op.execute(refusal_trigger_sql(SCHEMA, table))


def downgrade() -> None:
    for table in USER_TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS refuse_deleted_subject ON "{SCHEMA}"."{table}"')
    op.execute(f'DROP FUNCTION IF EXISTS "{SCHEMA}".refuse_deleted_subject()')
    op.drop_table("processed_events", schema=SCHEMA)
    op.drop_table("deleted_subjects", schema=SCHEMA)
