"""a task's time zone: the IANA zone its recurrence keeps the wall-clock time in

A recurring task's next occurrence is one day, week or month later in this zone's local
time (todo_service/service.py, ``next_due``), so 09:00 in Paris stays 09:00 across a change
of daylight-saving time. Null is UTC, the rule before this revision, so every existing task
keeps its series. The name is validated by the API (``shared.timezones``); the column only
bounds its length. Nullable without a default: added without a table rewrite.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"

SCHEMA = "todo"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("time_zone", sa.String(64), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("tasks", "time_zone", schema=SCHEMA)
