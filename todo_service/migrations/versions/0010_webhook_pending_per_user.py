"""index on each user's pending webhook deliveries

The fan-out counts a user's pending deliveries against ``TODO_WEBHOOK_PENDING_PER_USER``
before it queues an event's (todo_service/webhooks/fanout.py); with this index the count
reads that user's pending rows, at most the bound, not the table. Built in the migration's
transaction, not CONCURRENTLY: the table's writers (the todo worker, and a webhook's
deletion through its cascade) wait out the build; task and list requests never touch it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

SCHEMA = "todo"


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_pending_user",
        "webhook_deliveries",
        ["user_id"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_webhook_deliveries_pending_user", table_name="webhook_deliveries", schema=SCHEMA
    )
