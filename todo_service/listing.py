"""The one SQL statement behind a page of ``GET /api/tasks``, and its keyset cursor.

A page is the hottest path of the service, so it is a single round trip that returns a single
row: the total for the filters, the page already rendered as a JSON array by PostgreSQL (no
per-row work in Python), and the sort key and id of the page's last row for the next cursor.

Keyset pagination: a page continues strictly after the (sort key, id) of the previous page's
last row, so it is one range scan of a ``(user_id, <sort key>, id)`` index at any depth, and
rows inserted during a walk never shift the rows not yet seen. The total comes from the
per-user counters (``todo.task_counts``) when only ``status`` filters; other filters count.

All values reach PostgreSQL as bound parameters; the SQL text is built from constants only.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import pagination
from shared.errors import InvalidCursor
from todo_service.models import SORT_KEYS, TITLE_MAX, Priority
from todo_service.schemas import SortField, StatusFilter, TaskQuery
from todo_service.statements import TASK_RECORD


@dataclass(frozen=True)
class _Sort:
    key: str  # what the cursor remembers of the last row
    bound: str  # the cursor's key as a typed parameter, comparable to the sort's key


_SORTS = {
    SortField.CREATED: _Sort("created_at", "{}::timestamptz"),
    SortField.UPDATED: _Sort("updated_at", "{}::timestamptz"),
    SortField.DUE: _Sort("due_at", "coalesce({}::timestamptz, 'infinity'::timestamptz)"),
    SortField.PRIORITY: _Sort("priority", "{}::todo.task_priority"),
    SortField.TITLE: _Sort("lower(title)", "{}::text"),
}


@dataclass(frozen=True)
class PageStatement:
    """SQL with ``$n`` placeholders and its arguments, for ``fetch_row``.

    The single result row has ``total``, ``items`` (a JSON array as text), ``fetched`` (rows
    read: one more than the page when another page follows), ``last_key`` and ``last_id``.
    """

    sql: str
    args: tuple[Any, ...]


class _Parameters:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_statement(user_id: str, query: TaskQuery, now: datetime) -> PageStatement:
    """The statement for one page of ``user_id``'s tasks; ``InvalidCursor`` for a bad cursor."""
    sort = _SORTS[query.sort]
    # What ORDER BY uses: exactly the expression of the sort's index.
    expression = SORT_KEYS[query.sort.value]
    direction = "ASC" if query.direction == "asc" else "DESC"
    p = _Parameters()
    user = p.add(user_id)

    filters: list[str] = []
    if query.priority is not None:
        filters.append(f"priority = {p.add(query.priority.value)}::todo.task_priority")
    if query.tag:
        filters.append(f"tags @> {p.add(list(query.tag))}::text[]")
    if query.q:
        # `q` is NFC, as text is stored; rows written before text was normalised may hold
        # an accent as a combining mark, so that spelling is searched too when it differs.
        terms = dict.fromkeys([query.q, unicodedata.normalize("NFD", query.q)])
        patterns = [p.add(f"%{_escape_like(term)}%") for term in terms]
        filters.append(
            "(" + " OR ".join(f"title ILIKE {x} OR description ILIKE {x}" for x in patterns) + ")"
        )
    if query.due_before is not None:
        filters.append(f"due_at < {p.add(query.due_before)}::timestamptz")
    if query.due_after is not None:
        filters.append(f"due_at >= {p.add(query.due_after)}::timestamptz")
    # A task that is not completed has no completed_at, so it never matches these.
    if query.completed_before is not None:
        filters.append(f"completed_at < {p.add(query.completed_before)}::timestamptz")
    if query.completed_after is not None:
        filters.append(f"completed_at >= {p.add(query.completed_after)}::timestamptz")
    if query.overdue:
        filters.append(f"NOT completed AND due_at < {p.add(now)}::timestamptz")
    if query.has_due is not None:
        filters.append("due_at IS NOT NULL" if query.has_due else "due_at IS NULL")

    status = {
        StatusFilter.ALL: [],
        StatusFilter.PENDING: ["NOT completed"],
        StatusFilter.COMPLETED: ["completed"],
    }[query.status]
    where = " AND ".join([f"user_id = {user}", *status, *filters])

    if filters:
        total = f"(SELECT count(*) FROM todo.tasks WHERE {where})"  # noqa: S608
    else:
        counted = {
            StatusFilter.ALL: "total",
            StatusFilter.PENDING: "total - completed",
            StatusFilter.COMPLETED: "completed",
        }[query.status]
        total = f"coalesce((SELECT {counted} FROM todo.task_counts WHERE user_id = {user}), 0)"  # noqa: S608

    page_where = where
    if query.cursor is not None:
        key, after_id = decode_cursor(query.cursor, query.sort, query.direction)
        comparison = ">" if direction == "ASC" else "<"
        bound = sort.bound.format(p.add(key))
        page_where += f" AND ({expression}, id) {comparison} ({bound}, {p.add(after_id)}::bigint)"

    order = f"{expression} {direction}, id {direction}"
    page_size = p.add(query.limit)
    sql = f"""
WITH page AS (
    SELECT *, {sort.key} AS sort_key, row_number() OVER (ORDER BY {order}) AS rn
    FROM todo.tasks
    WHERE {page_where}
    ORDER BY {order}
    LIMIT {page_size}::int + 1
)
SELECT {total} AS total,
       coalesce(json_agg(task ORDER BY rn) FILTER (WHERE rn <= {page_size}::int),
                '[]'::json)::text AS items,
       count(*) AS fetched,
       max(sort_key) FILTER (WHERE rn = {page_size}::int) AS last_key,
       max(page.id) FILTER (WHERE rn = {page_size}::int) AS last_id
FROM page CROSS JOIN LATERAL {TASK_RECORD} AS task"""  # noqa: S608 - constants only; every value is a bound parameter
    return PageStatement(sql=sql, args=tuple(p.values))


# --- cursors --------------------------------------------------------------------------------

_CURSOR_KEYS = frozenset({"s", "o", "k", "i"})
_PRIORITIES = frozenset(priority.value for priority in Priority)


def encode_cursor(sort: SortField, direction: str, key: Any, task_id: int) -> str:
    """The sort, the order, and the last row's key and id."""
    return pagination.encode_cursor({"s": sort.value, "o": direction, "k": key, "i": task_id})


def _key(sort: SortField, value: Any) -> Any:
    if sort is SortField.DUE and value is None:
        return None
    if sort in (SortField.CREATED, SortField.UPDATED, SortField.DUE):
        return pagination.cursor_timestamp(value)
    if sort is SortField.PRIORITY:
        if not isinstance(value, str) or value not in _PRIORITIES:
            raise InvalidCursor()
        return value
    return pagination.cursor_text(value, max_length=4 * TITLE_MAX)


def decode_cursor(cursor: str, sort: SortField, direction: str) -> tuple[Any, int]:
    """The (key, id) a page continues after; ``InvalidCursor`` for anything that
    ``encode_cursor`` did not produce for this same sort and order."""
    payload = pagination.decode_cursor_object(cursor, keys=_CURSOR_KEYS)
    if payload["s"] != sort.value or payload["o"] != direction:
        raise InvalidCursor()
    return _key(sort, payload["k"]), pagination.cursor_id(payload["i"])
