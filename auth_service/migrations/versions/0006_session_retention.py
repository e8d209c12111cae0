"""ended sessions are found by when they ended: indexes for the retention of the auth worker

A login session ends when it is revoked or reaches its absolute end; the worker deletes the
sessions (and, by the foreign key's cascade, their refresh tokens) that ended longer ago than
``AUTH_ENDED_SESSIONS_RETENTION_DAYS``, in bounded batches.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_index(
        op.f("ix_refresh_families_expires_at"),
        "refresh_families",
        ["expires_at"],
        unique=False,
        schema="auth",
    )
    op.create_index(
        op.f("ix_refresh_families_revoked_at"),
        "refresh_families",
        ["revoked_at"],
        unique=False,
        schema="auth",
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_families_revoked_at"), "refresh_families", schema="auth")
    op.drop_index(op.f("ix_refresh_families_expires_at"), "refresh_families", schema="auth")
