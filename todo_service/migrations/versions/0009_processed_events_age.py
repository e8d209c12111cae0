"""indexes on when events were applied, for the workers' retention

The todo worker forgets the ids of users-stream events it applied (``processed_events``) and of
task events the webhook fan-out handled (``webhook_events``) once they are older than their
retention, oldest first, in batches (shared/events.py ``forget_processed``,
todo_service/webhooks/delivery.py). With these indexes a round reads at most one batch of
entries instead of the whole table.
"""

from alembic import op

revision = "0009"
down_revision = "0008"

SCHEMA = "todo"
TABLES = ("processed_events", "webhook_events")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(
            f"ix_{table}_processed_at", table, ["processed_at"], unique=False, schema=SCHEMA
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_index(f"ix_{table}_processed_at", table_name=table, schema=SCHEMA)
