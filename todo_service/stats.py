"""``GET /api/tasks/stats``: the overview of a user's tasks, in one statement.

Counts by status and priority, what is overdue and what is due today and this week, and the
tasks completed on each of the last 14 days, with "today", "this week" and each day's edges
taken in the time zone the client names. One read of the user's rows (its ``user_id``
index), one round trip, one snapshot: every number on the overview agrees with the others.

Its router is included before the task routes, and its route owns its path for every
method, so ``/api/tasks/stats`` is never read as ``/api/tasks/{task_id}``: another method is
a 405 naming GET, not a 422 about a task id.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from asyncpg.exceptions import InvalidParameterValueError
from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from shared.clock import Clock
from shared.db import Database
from shared.deps import CurrentPrincipal
from shared.errors import (
    WATCHED_401,
    HttpError,
    ValidationFailed,
    allow_header,
    error_responses,
)
from shared.timezones import TimeZoneName
from todo_service.models import Priority

# Days in the completion history, today included.
HISTORY_DAYS = 14


class _PathOwner(APIRoute):
    """A route that answers every method of its path: those it does not serve are a 405
    naming the ones it does, instead of falling through to a later route whose pattern also
    fits the path (``/api/tasks/{task_id}`` for ``/api/tasks/stats``)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.methods or set()
        if scope["method"] not in methods:
            raise HttpError(405, "Method Not Allowed", {"Allow": allow_header(methods)})
        await super().handle(scope, receive, send)


router = APIRouter(
    prefix="/api/tasks",
    tags=["tasks"],
    responses=error_responses(401, 422, 503, descriptions={401: WATCHED_401}),
    route_class=_PathOwner,
)


class StatusCounts(BaseModel):
    pending: int
    completed: int


class CompletedOn(BaseModel):
    date: dt.date = Field(description="A calendar day in the requested time zone")
    completed: int = Field(description="Tasks completed that day (and not reopened since)")


class TaskStats(BaseModel):
    timezone: str
    today: dt.date = Field(description="Today's date in the requested time zone")
    total: int
    by_status: StatusCounts
    by_priority: dict[Priority, StatusCounts]
    overdue: int = Field(description="Pending tasks due before now")
    due_today: int = Field(description="Pending tasks due from now to the end of today")
    due_this_week: int = Field(
        description="Pending tasks due from now to the end of this week (Monday to Sunday)"
    )
    no_due_date: int = Field(description="Pending tasks without a due date")
    completed_per_day: list[CompletedOn] = Field(
        description=f"The last {HISTORY_DAYS} days, oldest first, today last"
    )


# $1 the user, $2 now, $3 the time zone. Day and week edges are local midnights turned back
# into instants (`<local timestamp> AT TIME ZONE zone`), so a day of a DST change is 23 or 25
# hours long, as it is for the user.
STATS_SQL = f"""
WITH mine AS (
    SELECT completed, priority, due_at, completed_at
    FROM todo.tasks
    WHERE user_id = $1
), edges AS (
    SELECT today,
           ((today + 1)::timestamp AT TIME ZONE $3::text) AS tomorrow_starts,
           ((date_trunc('week', today::timestamp)::date + 7)::timestamp AT TIME ZONE $3::text)
               AS next_week_starts,
           ((today - {HISTORY_DAYS - 1})::timestamp AT TIME ZONE $3::text) AS history_starts
    FROM (SELECT ($2::timestamptz AT TIME ZONE $3::text)::date AS today) AS clock
), counts AS (
    SELECT
        count(*) AS total,
        count(*) FILTER (WHERE completed) AS completed,
        count(*) FILTER (WHERE NOT completed AND priority = 'low') AS low_pending,
        count(*) FILTER (WHERE completed AND priority = 'low') AS low_completed,
        count(*) FILTER (WHERE NOT completed AND priority = 'medium') AS medium_pending,
        count(*) FILTER (WHERE completed AND priority = 'medium') AS medium_completed,
        count(*) FILTER (WHERE NOT completed AND priority = 'high') AS high_pending,
        count(*) FILTER (WHERE completed AND priority = 'high') AS high_completed,
        count(*) FILTER (WHERE NOT completed AND due_at < $2::timestamptz) AS overdue,
        count(*) FILTER (
            WHERE NOT completed AND due_at >= $2::timestamptz AND due_at < edges.tomorrow_starts
        ) AS due_today,
        count(*) FILTER (
            WHERE NOT completed AND due_at >= $2::timestamptz AND due_at < edges.next_week_starts
        ) AS due_this_week,
        count(*) FILTER (WHERE NOT completed AND due_at IS NULL) AS no_due_date
    FROM mine CROSS JOIN edges
), per_day AS (
    SELECT (completed_at AT TIME ZONE $3::text)::date AS day, count(*) AS n
    FROM mine, edges
    WHERE completed AND completed_at >= edges.history_starts
    GROUP BY 1
)
SELECT counts.total, counts.completed,
       counts.low_pending, counts.low_completed,
       counts.medium_pending, counts.medium_completed,
       counts.high_pending, counts.high_completed,
       counts.overdue, counts.due_today, counts.due_this_week, counts.no_due_date,
       edges.today,
       (SELECT json_agg(coalesce(per_day.n, 0) ORDER BY back DESC)
        FROM generate_series(0, {HISTORY_DAYS - 1}) AS back
        LEFT JOIN per_day ON per_day.day = edges.today - back)::text AS history
FROM counts, edges
"""  # noqa: S608 - constants only; every value is a bound parameter


async def task_stats(db: Database, user_id: str, *, timezone: str, now: dt.datetime) -> TaskStats:
    """The overview of ``user_id``'s tasks in ``timezone`` at ``now``: one statement."""
    try:
        row = await db.fetch_row(STATS_SQL, user_id, now, timezone)
    except InvalidParameterValueError:
        # A zone Python's database knows and PostgreSQL's does not (their releases differ).
        raise ValidationFailed(
            "This time zone is not known to the database", code="unknown_time_zone"
        ) from None
    assert row is not None  # an aggregate always returns its row
    (total, completed, low_p, low_c, med_p, med_c, high_p, high_c) = row[:8]
    overdue, due_today, due_this_week, no_due_date, today, history = row[8:]
    per_day: list[int] = json.loads(history)
    first = today.toordinal() - (HISTORY_DAYS - 1)
    return TaskStats(
        timezone=timezone,
        today=today,
        total=total,
        by_status=StatusCounts(pending=total - completed, completed=completed),
        by_priority={
            Priority.LOW: StatusCounts(pending=low_p, completed=low_c),
            Priority.MEDIUM: StatusCounts(pending=med_p, completed=med_c),
            Priority.HIGH: StatusCounts(pending=high_p, completed=high_c),
        },
        overdue=overdue,
        due_today=due_today,
        due_this_week=due_this_week,
        no_due_date=no_due_date,
        completed_per_day=[
            CompletedOn(date=dt.date.fromordinal(first + offset), completed=count)
            for offset, count in enumerate(per_day)
        ],
    )


@router.get("/stats", summary="Overview of the user's tasks")
async def read_stats(
    request: Request,
    principal: CurrentPrincipal,
    tz: Annotated[
        TimeZoneName,
        Query(description="IANA time zone for today, this week and each day's edges"),
    ] = "UTC",
) -> TaskStats:
    """Counts by status and priority, overdue and due soon, and the last 14 days'
    completions, in the time zone ``tz``."""
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    return await task_stats(db, principal.sub, timezone=tz, now=clock())
