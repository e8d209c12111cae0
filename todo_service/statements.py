"""The single statements behind the task routes, built from the schemas and the models.

``TaskPublic`` is the one description of a task as clients see it: its fields are the columns
a read selects and the keys of the JSON that PostgreSQL renders (the list, the stored first
answer of an idempotent create), and the table's column types decide how each is rendered.
All values reach PostgreSQL as bound parameters; the SQL text is built from constants only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Table

from todo_service.models import NOTIFICATIONS, TASKS
from todo_service.schemas import NotificationPublic, TaskPublic

TASK_FIELDS = tuple(TaskPublic.model_fields)
_COLUMNS = ", ".join(TASK_FIELDS)


def _json_value(table: Table, name: str) -> str:
    if isinstance(table.c[name].type, DateTime):
        # The public spelling of a timestamp (schemas.UtcTimestamp): UTC, microseconds, "Z".
        return f"""to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return name


def json_record(table: Table, fields: tuple[str, ...]) -> str:
    """A row of ``table`` as a record whose columns are exactly ``fields`` (a public model's),
    each as the model spells it: a subquery without FROM, reading the row's columns from the
    FROM item before it. PostgreSQL renders such a record (``to_json``, ``json_agg``) as the
    model's JSON, field for field, compactly, and in about three quarters of the CPU that
    ``json_build_object`` of the same pairs takes (bench/RESULTS.md)."""
    columns = ", ".join(f'{_json_value(table, name)} AS "{name}"' for name in fields)
    return f"(SELECT {columns})"


def json_object(table: Table, fields: tuple[str, ...]) -> str:
    """A row of ``table`` as the JSON object of ``fields``: an expression, for one row (a
    list joins ``json_record`` LATERAL instead, which spares a subquery per row)."""
    return f"(SELECT to_json(public_row) FROM {json_record(table, fields)} AS public_row)"  # noqa: S608


# A row of the task's columns as TaskPublic's JSON, and as its record.
TASK_JSON = json_object(TASKS, TASK_FIELDS)
TASK_RECORD = json_record(TASKS, TASK_FIELDS)
# A notification as NotificationPublic's JSON.
NOTIFICATION_JSON = json_object(NOTIFICATIONS, tuple(NotificationPublic.model_fields))


@dataclass(frozen=True)
class PageJSON:
    """A page of a listing as its route sends it: ``items_json`` is the JSON array of the
    page's rows (``TASK_JSON`` or ``NOTIFICATION_JSON`` each), as PostgreSQL rendered it."""

    items_json: str
    total: int
    next_cursor: str | None  # None on the last page


# The user's task by id: another user's task is no row, as a missing one.
GET_TASK = f"SELECT {_COLUMNS} FROM todo.tasks WHERE id = $1 AND user_id = $2"  # noqa: S608


def task_from_row(row: Sequence[Any]) -> TaskPublic:
    """A row of ``TASK_FIELDS`` (as ``GET_TASK`` selects them) as the public task."""
    return TaskPublic.model_validate(dict(zip(TASK_FIELDS, row, strict=True)))


# The new task's row, its id drawn from the table's identity first, so that its JSON can be
# rendered (and stored with an idempotency key) in the same statement that inserts it.
# Parameters: $1 user, $2 title, $3 description, $4 priority, $5 tags, $6 due_at,
# $7 recurrence, $8 now, $9 reminders (as rendered, todo_service/reminders.py), $10 the
# soonest of them, $11 time zone, $12 a monthly series' day of the month.
_NEW_TASK = f"""
new AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('todo.tasks', 'id')) AS id,
           $1::text AS user_id, $2::text AS title, $3::text AS description,
           false AS completed, NULL::timestamptz AS completed_at,
           $4::todo.task_priority AS priority, $5::text[] AS tags, $6::timestamptz AS due_at,
           $7::todo.task_recurrence AS recurrence, $11::text AS time_zone,
           NULL::bigint AS next_occurrence_id,
           $8::timestamptz AS created_at, $8::timestamptz AS updated_at, 1 AS version,
           $9::jsonb AS reminders, $10::timestamptz AS next_remind_at,
           $12::smallint AS recurrence_day
),
rendered AS MATERIALIZED (SELECT *, {TASK_JSON}::text AS body FROM new)"""  # noqa: S608

# The client's fields, and the columns the service keeps beside them.
_INSERTED = f"{_COLUMNS}, next_remind_at, recurrence_day"
_INSERT_TASK = f"INSERT INTO todo.tasks ({_INSERTED}) SELECT {_INSERTED} FROM rendered"  # noqa: S608

# Without an idempotency key: insert, answer the task's JSON.
CREATE_TASK = f"""
WITH {_NEW_TASK},
task AS ({_INSERT_TASK} RETURNING id)
SELECT true AS created, NULL::text AS request_hash, body FROM rendered"""  # noqa: S608

_KEY_COLUMNS = ("request_hash", "task_id", "response_status", "response_body", "created_at")

# With one ($13 key, $14 request hash, $15 expiry): the key's row is claimed (inserted, or an
# expired one taken over) with the answer, and only then is the task inserted. A live row is
# left as it is and returned, for the caller to replay or refuse; a concurrent claim of the
# same key waits on the unique index for the first transaction, then sees its row. Other
# expired keys are the worker's to delete (``shared.worker.forget_expired``): a range over
# the keys' expiry in this statement made PostgreSQL plan it anew on every execution once
# the table held some thousands of keys (its generic plan looked dearer than a fresh one),
# about twice the statement's CPU (bench/RESULTS.md).
CREATE_TASK_ONCE = f"""
WITH {_NEW_TASK},
claim AS (
    INSERT INTO todo.idempotency_keys AS k
        (user_id, key, expires_at, {", ".join(_KEY_COLUMNS)})
    SELECT user_id, $13::text, $15::timestamptz, $14::text, id, 201, body, created_at
    FROM rendered
    ON CONFLICT (user_id, key) DO UPDATE SET
        expires_at = CASE WHEN k.expires_at <= $8 THEN excluded.expires_at ELSE k.expires_at END,
        {
    ", ".join(
        f"{c} = CASE WHEN k.expires_at <= $8 THEN excluded.{c} ELSE k.{c} END" for c in _KEY_COLUMNS
    )
}
    RETURNING k.task_id, k.request_hash, k.response_body
),
task AS ({_INSERT_TASK} WHERE id = (SELECT task_id FROM claim) RETURNING id)
SELECT EXISTS (SELECT FROM task) AS created, request_hash, response_body AS body
FROM claim"""  # noqa: S608
