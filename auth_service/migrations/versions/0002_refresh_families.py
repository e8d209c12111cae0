"""refresh families: one lockable row per login session, with its absolute end

Existing sessions get a family each: created at their first token's issue time, ending 90 days
after it (the default ``AUTH_SESSION_MAX_DAYS``), revoked when any of their tokens was.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_refresh_families_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_families")),
        schema="auth",
    )
    op.create_index(
        op.f("ix_refresh_families_user_id"),
        "refresh_families",
        ["user_id"],
        unique=False,
        schema="auth",
    )
    # A family revoked before this revision may have kept one token unrevoked (the race this
    # table closes): any revoked token revokes its whole family here.
    op.execute(
        """
        INSERT INTO auth.refresh_families (id, user_id, created_at, expires_at, revoked_at)
        SELECT family_id, (array_agg(user_id))[1], min(issued_at),
               min(issued_at) + interval '90 days', min(revoked_at)
        FROM auth.refresh_tokens
        GROUP BY family_id
        """
    )
    op.execute(
        """
        UPDATE auth.refresh_tokens AS token SET revoked_at = family.revoked_at
        FROM auth.refresh_families AS family
        WHERE token.family_id = family.id
          AND family.revoked_at IS NOT NULL AND token.revoked_at IS NULL
        """
    )
    op.create_foreign_key(
        op.f("fk_refresh_tokens_family_id_refresh_families"),
        "refresh_tokens",
        "refresh_families",
        ["family_id"],
        ["id"],
        source_schema="auth",
        referent_schema="auth",
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_refresh_tokens_family_id_refresh_families"),
        "refresh_tokens",
        schema="auth",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_refresh_families_user_id"), table_name="refresh_families", schema="auth")
    op.drop_table("refresh_families", schema="auth")
