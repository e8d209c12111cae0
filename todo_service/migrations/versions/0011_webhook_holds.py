"""a webhook's failures in a row and the end of its hold

A receiver that fails or answers slowly holds its webhook back: its deliveries wait until
``held_until``, which grows with ``failures`` and ends at the first prompt success
(todo_service/webhooks/delivery.py). Both columns are added without a table rewrite (a
constant default). The partial index finds a webhook's pending deliveries, which a hold moves
together, without reading its finished ones; it is built in the migration's transaction, not
CONCURRENTLY: the table's writers (the todo worker, a webhook's deletion) wait out the build,
and task and list requests never touch it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"

SCHEMA = "todo"


def upgrade() -> None:
    op.add_column(
        "webhooks",
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column("webhooks", sa.Column("held_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_webhooks_failures_count"), "webhooks", "failures >= 0", schema=SCHEMA
    )
    op.create_index(
        "ix_webhook_deliveries_pending_webhook",
        "webhook_deliveries",
        ["webhook_id", "next_attempt_at"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_webhook_deliveries_pending_webhook", table_name="webhook_deliveries", schema=SCHEMA
    )
    op.drop_constraint(op.f("ck_webhooks_failures_count"), "webhooks", type_="check", schema=SCHEMA)
    op.drop_column("webhooks", "held_until", schema=SCHEMA)
    op.drop_column("webhooks", "failures", schema=SCHEMA)
