"""the user's time zone: an IANA name, "UTC" until the user says otherwise

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:30:00.000000

Existing accounts get "UTC" (the server default), which is what every date was shown in
before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "timezone",
            sqlmodel.sql.sqltypes.AutoString(length=64),
            server_default="UTC",
            nullable=False,
        ),
        schema="auth",
    )


def downgrade() -> None:
    op.drop_column("users", "timezone", schema="auth")
