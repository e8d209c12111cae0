"""account deletion: deleted subjects, applied events, and triggers refusing their rows

The worker purges a deleted user's rows on ``user.deleted`` and records the subject; from
then on the triggers refuse any new row of it (shared/tombstones.py, docs/events.md).
"""

from shared.migration_ops import create_account_deletion_v1, drop_account_deletion_v1

revision = "0002"
down_revision = "0001"

SCHEMA = "todo"
# Every table with a user_id column that a request can insert into.
USER_TABLES = ("tasks", "idempotency_keys")


def upgrade() -> None:
    create_account_deletion_v1(SCHEMA, USER_TABLES)


def downgrade() -> None:
    drop_account_deletion_v1(SCHEMA, USER_TABLES)
