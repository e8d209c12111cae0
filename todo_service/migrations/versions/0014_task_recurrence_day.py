"""a monthly series' day of the month: each occurrence is that day, clamped to its month

Stepping a monthly task from its clamped due date drifted (31 January, 28 February, 28
March...); the series now remembers the day it was set for (todo_service/service.py,
``recurrence_day``), so the 31st comes back after a short month. Internal: not in the API nor
in task events. Null for existing rows: their next occurrence keeps the due date's own day, the
rule before this revision, and is remembered from then on. Nullable without a default, so
added without a table rewrite. The check is added NOT VALID, so it does not read the table
under the lock the new column holds: every existing row has null, which it allows, and new
and changed rows are checked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"

SCHEMA = "todo"


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("recurrence_day", sa.SmallInteger(), nullable=True), schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_tasks_recurrence_day_range"),
        "tasks",
        "recurrence_day BETWEEN 1 AND 31",
        schema=SCHEMA,
        postgresql_not_valid=True,
    )


def downgrade() -> None:
    op.drop_column("tasks", "recurrence_day", schema=SCHEMA)
