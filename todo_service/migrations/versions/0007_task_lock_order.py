"""a user's task writes queue on the user's outbox lock before the user's counter row

PostgreSQL fires a table's triggers of one timing and event in the alphabetical order of
their names. Until this revision the counter's (``tasks_count_*``, 0001) fired before the
task event's (``tasks_event_*``, 0004), so a task write locked the user's ``task_counts`` row
first and the user's outbox lock (``shared.outbox.key_lock_sql``) second, and the two are held
until the commit. Concurrent writes of one user therefore queued on the row, where each
commit wakes every waiter to find the row changed and retry; and the order was the reverse of
the one ``add_event``'s callers take (the outbox lock first, then the task and its counter),
two orders of the same two locks.

Renamed ``tasks_totals_*``, the counters fire after the event: a user's writes queue on the
advisory lock, which wakes one waiter per commit, and reach the counter row after it, which
nobody else then holds (about half the PostgreSQL CPU per create under 32 concurrent creates
of one user, bench/RESULTS.md). The functions and what fires them are unchanged.
"""

from alembic import op

revision = "0007"
down_revision = "0006"

RENAMED = {
    "tasks_count_insert": "tasks_totals_insert",
    "tasks_count_delete": "tasks_totals_delete",
    "tasks_count_update": "tasks_totals_update",
}


def upgrade() -> None:
    for old, new in RENAMED.items():
        op.execute(f"ALTER TRIGGER {old} ON todo.tasks RENAME TO {new}")


def downgrade() -> None:
    for old, new in RENAMED.items():
        op.execute(f"ALTER TRIGGER {new} ON todo.tasks RENAME TO {old}")
