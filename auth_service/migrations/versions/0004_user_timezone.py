"""the user's time zone: an IANA name, "UTC" until the user says otherwise

Existing accounts get "UTC" (the server default), which is what every date was shown in
before.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"


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
