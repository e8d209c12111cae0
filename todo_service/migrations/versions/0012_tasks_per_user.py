"""a user keeps at most 100,000 tasks: an insert past the bound is refused

Every path that adds a task (a create, a recurring task's next occurrence, MCP's tools) is an
insert into ``todo.tasks``, and every insert already upserts the user's ``todo.task_counts``
row in its ``tasks_totals_insert`` trigger (0001, renamed in 0007), which locks that row to
the commit. ``tasks_totals_limit`` fires after it (a table's triggers of one timing and event
fire in the order of their names) and reads the row as this transaction left it: concurrent
inserts of one user take turns on the row, so the bound is exact under any concurrency, and
costs one primary-key read. Past it, the insert fails with SQLSTATE P0402
(``shared.errors.LIMIT_SQLSTATE``): its message is the client's and its detail the error's
code, answered as a 409 by every service. Updates and deletions are never refused, so an
account already past the bound can only shrink.
"""

from alembic import op

revision = "0012"
down_revision = "0011"

LIMIT_FUNCTION = """
CREATE FUNCTION todo.refuse_tasks_past_limit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT total FROM todo.task_counts WHERE user_id = NEW.user_id) > 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0402',
            MESSAGE = 'At most 100000 tasks per user; delete some first',
            DETAIL = 'task_limit_reached';
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(LIMIT_FUNCTION)
    op.execute(
        "CREATE TRIGGER tasks_totals_limit AFTER INSERT ON todo.tasks "
        "FOR EACH ROW EXECUTE FUNCTION todo.refuse_tasks_past_limit()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tasks_totals_limit ON todo.tasks")
    op.execute("DROP FUNCTION todo.refuse_tasks_past_limit()")
