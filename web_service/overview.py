"""The overview: counts by status and priority, what is overdue and due this week, and an
inline SVG chart of completions per day over the last 14 days (with a text alternative)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from web_service.context import CtxDep
from web_service.views import render, zone

router = APIRouter(include_in_schema=False)

DAYS = 14
# The chart's drawing box (SVG user units); it scales to the page's width. BASE is the room
# under the bars for the days, TOP the room over the tallest bar for its number (the labels
# are drawn up to 20 units high on a phone, app.css).
WIDTH, HEIGHT, GUTTER, BASE, TOP = 560, 180, 4, 24, 24


def chart(per_day: list[dict[str, Any]], today: date) -> dict[str, Any]:
    """Bars of the last ``DAYS`` days, oldest first, missing days as zero."""
    counts = {str(item.get("date")): int(item.get("completed") or 0) for item in per_day}
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    values = [counts.get(day.isoformat(), 0) for day in days]
    peak = max(values) or 1
    step = WIDTH / DAYS
    bars = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        height = round((HEIGHT - BASE - TOP) * value / peak, 1)
        bars.append(
            {
                "x": round(index * step + GUTTER / 2, 1),
                "y": round(HEIGHT - BASE - height, 1),
                "width": round(step - GUTTER, 1),
                "height": height,
                "label_x": round(index * step + step / 2, 1),
                "day": day,
                "value": value,
                "short": day.strftime("%d"),
                "long": day.strftime("%a %d %b"),
            }
        )
    return {
        "bars": bars,
        "width": WIDTH,
        "height": HEIGHT,
        "base": HEIGHT - BASE,
        "total": sum(values),
        "peak": max(values),
    }


@router.get("/overview")
async def overview(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    answer = await ctx.expect("GET", "/api/tasks/stats", params={"tz": session.timezone})
    stats = answer.json()
    try:
        today = date.fromisoformat(str(stats.get("today")))
    except ValueError:
        today = ctx.web.clock().astimezone(zone(session.timezone)).date()
    return await render(
        ctx,
        "overview.html",
        stats=stats,
        chart=chart(stats.get("completed_per_day") or [], today),
    )
