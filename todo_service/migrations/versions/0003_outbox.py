"""the todo service's transactional outbox

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
