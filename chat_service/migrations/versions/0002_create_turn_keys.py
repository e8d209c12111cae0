"""create turn keys: the Idempotency-Key of POST /api/chat, per user"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "turn_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_turn_keys_user_id_key")),
        schema="chat",
    )
    op.create_index(
        "ix_turn_keys_expires_at", "turn_keys", ["expires_at"], unique=False, schema="chat"
    )


def downgrade() -> None:
    op.drop_index("ix_turn_keys_expires_at", table_name="turn_keys", schema="chat")
    op.drop_table("turn_keys", schema="chat")
