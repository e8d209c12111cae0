"""task events: every change of a task writes its event into the outbox, by trigger

``task.created``, ``task.updated``, ``task.completed``, ``task.reopened`` and ``task.deleted``
(version 1, docs/events.md) are written by a trigger on ``todo.tasks`` in the statement that
changes the row, so no write path (the REST routes, the MCP tools, a recurrence's next
occurrence, a future one) can change a task without its event. The event's data is built
here, in SQL: a version's schema is frozen, so its fields are listed once, in this revision.
A later version of a type is a new revision replacing the function.

Order per user: the trigger takes the user's outbox lock (``shared.outbox.key_lock_sql``, the
one ``add_event`` takes), so task events and the events other code adds for the same user
(``reminder.due``) take turns from their insert to their commit.

The purge of a deleted account (shared/purge.py) buries the subject before deleting its
rows: those deletions write no event (the account's ``user.deleted`` says it all, and no
title of a deleted account goes out afterwards).
"""

from alembic import op

from shared.outbox import key_lock_sql

revision = "0004"
down_revision = "0003"

TASKS_STREAM = "events.tasks"
TIMESTAMP = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""


def _timestamp(column: str) -> str:
    # The API's spelling of a timestamp (TaskPublic): UTC, microseconds, "Z".
    return f"to_char(NEW.{column} AT TIME ZONE 'UTC', {TIMESTAMP})"


# Version 1 of a task in the events: the task as the API answered it when this was written.
TASK_V1 = f"""jsonb_build_object(
            'id', NEW.id,
            'user_id', NEW.user_id,
            'title', NEW.title,
            'description', NEW.description,
            'completed', NEW.completed,
            'completed_at', {_timestamp("completed_at")},
            'priority', NEW.priority,
            'tags', to_jsonb(NEW.tags),
            'due_at', {_timestamp("due_at")},
            'recurrence', NEW.recurrence,
            'next_occurrence_id', NEW.next_occurrence_id,
            'created_at', {_timestamp("created_at")},
            'updated_at', {_timestamp("updated_at")},
            'version', NEW.version)"""

EVENT_FUNCTION = f"""
CREATE FUNCTION todo.write_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner text;
    event_type text;
    body jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A deleted account's rows, purged after its subject was buried: no events.
        IF EXISTS (SELECT FROM todo.deleted_subjects WHERE subject = OLD.user_id) THEN
            RETURN NULL;
        END IF;
        owner := OLD.user_id;
        event_type := 'task.deleted';
        body := jsonb_build_object('user_id', OLD.user_id, 'task_id', OLD.id);
    ELSE
        owner := NEW.user_id;
        event_type := CASE
            WHEN TG_OP = 'INSERT' THEN 'task.created'
            WHEN NEW.completed AND NOT OLD.completed THEN 'task.completed'
            WHEN OLD.completed AND NOT NEW.completed THEN 'task.reopened'
            ELSE 'task.updated'
        END;
        body := jsonb_build_object('user_id', NEW.user_id, 'task', {TASK_V1});
    END IF;
    PERFORM {key_lock_sql('"todo"."outbox"', "owner")};
    INSERT INTO todo.outbox (stream, key, type, version, data)
    VALUES ('{TASKS_STREAM}', owner, event_type, 1, body);
    RETURN NULL;
END
$$
"""  # noqa: S608 - constants only


def upgrade() -> None:
    op.execute(EVENT_FUNCTION)
    op.execute(
        "CREATE TRIGGER tasks_event_write AFTER INSERT OR DELETE ON todo.tasks "
        "FOR EACH ROW EXECUTE FUNCTION todo.write_task_event()"
    )
    # An update that changes nothing (every column equal) is no event.
    op.execute(
        "CREATE TRIGGER tasks_event_update AFTER UPDATE ON todo.tasks "
        "FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) "
        "EXECUTE FUNCTION todo.write_task_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tasks_event_update ON todo.tasks")
    op.execute("DROP TRIGGER IF EXISTS tasks_event_write ON todo.tasks")
    op.execute("DROP FUNCTION IF EXISTS todo.write_task_event()")
