"""an index on when events were applied, for the worker's retention

The chat worker forgets the ids of users-stream events it applied once they are older than
the retention, oldest first, in batches (shared/events.py ``forget_processed``); with this
index a round reads at most one batch of entries instead of the whole table.
"""

from alembic import op

revision = "0005"
down_revision = "0004"

SCHEMA = "chat"


def upgrade() -> None:
    op.create_index(
        "ix_processed_events_processed_at",
        "processed_events",
        ["processed_at"],
        unique=False,
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_processed_events_processed_at", table_name="processed_events", schema=SCHEMA)
