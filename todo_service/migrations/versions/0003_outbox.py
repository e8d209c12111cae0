"""the todo service's transactional outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 03:10:00.000000

Task events and due reminders are written here in the transaction of their
change and published by the worker (shared/outbox.py, docs/events.md).
"""

from shared.migration_ops import create_outbox_v1, drop_outbox_v1

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_outbox_v1("todo")


def downgrade() -> None:
    drop_outbox_v1("todo")
