"""login throttling per account and client address, with known addresses

Replaces ``login_throttles`` (consecutive failures per email, never decaying): its counts are
not carried over, every account starts unthrottled.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "attempt_counters",
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_attempt_counters")),
        schema="auth",
    )
    op.create_index(
        "ix_attempt_counters_window_started_at",
        "attempt_counters",
        ["window_started_at"],
        unique=False,
        schema="auth",
    )
    op.create_table(
        "known_addresses",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("address_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_known_addresses_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "address_hash", name=op.f("pk_known_addresses")),
        schema="auth",
    )
    op.drop_table("login_throttles", schema="auth")


def downgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_login_throttles")),
        schema="auth",
    )
    op.drop_table("known_addresses", schema="auth")
    op.drop_table("attempt_counters", schema="auth")
