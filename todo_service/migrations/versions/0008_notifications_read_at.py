"""an index on when notifications were read, for the worker's retention

The todo worker deletes notifications read more than the retention ago, oldest first, in
batches (todo_service/notifications.py, ``forget_read``). Without an index that statement
reads the whole table every round, whether or not anything is old enough; with this partial
index (unread notifications have no entry) a round reads at most one batch of entries.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

SCHEMA = "todo"


def upgrade() -> None:
    op.create_index(
        "ix_notifications_read_at",
        "notifications",
        ["read_at", "id"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("read_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_read_at", table_name="notifications", schema=SCHEMA)
