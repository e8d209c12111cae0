"""create web tables: sessions and sign-in attempts"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("profile", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_sessions")),
        schema="web",
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"], unique=False, schema="web")
    op.create_index(
        "ix_sessions_expires_at", "sessions", ["expires_at"], unique=False, schema="web"
    )
    op.create_table(
        "auth_attempts",
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_auth_attempts")),
        schema="web",
    )


def downgrade() -> None:
    op.drop_table("auth_attempts", schema="web")
    op.drop_index("ix_sessions_expires_at", table_name="sessions", schema="web")
    op.drop_index("ix_sessions_user_id", table_name="sessions", schema="web")
    op.drop_table("sessions", schema="web")
