"""form states: a refused form kept across its redirect (POST-redirect-GET)"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "form_states",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id_hash", sa.String(length=64), nullable=False),
        sa.Column("page", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["session_id_hash"],
            ["web.sessions.id_hash"],
            name=op.f("fk_form_states_session_id_hash_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_states")),
        schema="web",
    )
    op.create_index(
        "ix_form_states_session_id_hash_created_at",
        "form_states",
        ["session_id_hash", "created_at"],
        unique=False,
        schema="web",
    )
    op.create_index(
        "ix_form_states_expires_at", "form_states", ["expires_at"], unique=False, schema="web"
    )


def downgrade() -> None:
    op.drop_index("ix_form_states_expires_at", table_name="form_states", schema="web")
    op.drop_index(
        "ix_form_states_session_id_hash_created_at", table_name="form_states", schema="web"
    )
    op.drop_table("form_states", schema="web")
