"""the auth service's transactional outbox

Events (``user.registered``, ``user.deleted``) are written here in the transaction of their
change and published by the worker (shared/outbox.py, docs/events.md).
"""

from shared.migration_ops import create_outbox_v1, drop_outbox_v1

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    create_outbox_v1("auth")


def downgrade() -> None:
    drop_outbox_v1("auth")
