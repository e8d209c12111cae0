"""``GET /api/tasks/stats`` (the web client's overview) and the list's "no due date" filter.

The service's clock is frozen at Sunday 2026-03-15 12:00 UTC: the end of "this week" in UTC is
nine hours after the end of "today" in Tokyo (UTC+9), and Los Angeles (UTC-7, after its DST
change of March 8) is still in the morning.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from tests.support.errors import assert_error
from tests.support.tokens import TestIssuer, bad_tokens
from tests.todo.conftest import NOW, Snapshot, User, create

HISTORY = 14


async def stats(client: httpx.AsyncClient, user: User, tz: str | None = None) -> dict[str, Any]:
    params = {"tz": tz} if tz is not None else {}
    response = await client.get("/api/tasks/stats", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def complete(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    response = await client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text


def per_day(body: dict[str, Any]) -> dict[str, int]:
    return {day["date"]: day["completed"] for day in body["completed_per_day"] if day["completed"]}


async def test_an_empty_account_has_zeros_and_fourteen_empty_days(client, alice):
    body = await stats(client, alice)

    assert body["timezone"] == "UTC"
    assert body["today"] == "2026-03-15"
    assert body["total"] == 0
    assert body["by_status"] == {"pending": 0, "completed": 0}
    assert body["by_priority"] == {
        p: {"pending": 0, "completed": 0} for p in ("low", "medium", "high")
    }
    assert body["overdue"] == body["due_today"] == body["due_this_week"] == 0
    assert body["no_due_date"] == 0
    days = body["completed_per_day"]
    assert len(days) == HISTORY
    assert days[0] == {"date": "2026-03-02", "completed": 0}
    assert days[-1] == {"date": "2026-03-15", "completed": 0}


async def test_counts_by_status_priority_and_due_dates(client, alice):
    late = await create(client, alice, title="late", priority="high", due_at="2026-03-14T09:00:00Z")
    await create(client, alice, title="tonight", priority="high", due_at="2026-03-15T20:00:00Z")
    await create(client, alice, title="no date", priority="low")
    await create(client, alice, title="next week", due_at="2026-03-17T09:00:00Z")
    done_late = await create(client, alice, title="done", due_at="2026-03-01T09:00:00Z")
    await complete(client, alice, done_late)

    body = await stats(client, alice)

    assert body["total"] == 5
    assert body["by_status"] == {"pending": 4, "completed": 1}
    assert body["by_priority"] == {
        "low": {"pending": 1, "completed": 0},
        "medium": {"pending": 1, "completed": 1},
        "high": {"pending": 2, "completed": 0},
    }
    # A completed task is never overdue; the late one is not "due today" as well.
    assert body["overdue"] == 1
    assert body["due_today"] == 1
    assert body["due_this_week"] == 1
    assert body["no_due_date"] == 1
    assert per_day(body) == {"2026-03-15": 1}
    assert late["id"]


async def test_today_and_this_week_end_at_local_midnight_of_the_zone(client, alice):
    # 16:00 UTC: tonight in UTC; Monday 01:00 in Tokyo (next week there); 09:00 in LA.
    await create(client, alice, due_at="2026-03-15T16:00:00Z")

    utc = await stats(client, alice, "UTC")
    tokyo = await stats(client, alice, "Asia/Tokyo")
    los_angeles = await stats(client, alice, "America/Los_Angeles")

    assert (utc["due_today"], utc["due_this_week"]) == (1, 1)
    assert (tokyo["due_today"], tokyo["due_this_week"]) == (0, 0)
    assert (los_angeles["due_today"], los_angeles["due_this_week"]) == (1, 1)
    assert tokyo["today"] == "2026-03-15"
    assert tokyo["timezone"] == "Asia/Tokyo"


async def test_completions_are_counted_on_the_users_local_day(client, alice, clock: FrozenClock):
    first = await create(client, alice, title="late evening")
    second = await create(client, alice, title="after midnight")
    reopened = await create(client, alice, title="reopened")
    clock.now = NOW - timedelta(hours=12, minutes=30)  # 2026-03-14 23:30 UTC
    await complete(client, alice, first)
    await complete(client, alice, reopened)
    clock.now = NOW - timedelta(hours=11, minutes=30)  # 2026-03-15 00:30 UTC
    await complete(client, alice, second)
    response = await client.patch(
        f"/api/tasks/{reopened['id']}/complete", json={"completed": False}, headers=alice.headers
    )
    assert response.status_code == 200
    clock.now = NOW

    assert per_day(await stats(client, alice, "UTC")) == {"2026-03-14": 1, "2026-03-15": 1}
    # 08:30 and 09:30 on the 15th in Tokyo; 16:30 and 17:30 on the 14th in Los Angeles.
    assert per_day(await stats(client, alice, "Asia/Tokyo")) == {"2026-03-15": 2}
    assert per_day(await stats(client, alice, "America/Los_Angeles")) == {"2026-03-14": 2}


async def test_only_the_last_fourteen_days_are_in_the_history(client, alice, clock: FrozenClock):
    old, edge = await create(client, alice, title="old"), await create(client, alice, title="edge")
    clock.now = NOW - timedelta(days=14)  # 2026-03-01 12:00: a day too early
    await complete(client, alice, old)
    clock.now = NOW - timedelta(days=13, hours=12)  # 2026-03-02 00:00: the first day
    await complete(client, alice, edge)
    clock.now = NOW

    body = await stats(client, alice)

    assert per_day(body) == {"2026-03-02": 1}
    assert body["by_status"]["completed"] == 2


async def test_another_users_tasks_are_not_counted(client, alice, bob):
    await create(client, bob, title="bob's", due_at="2026-03-10T09:00:00Z")
    await complete(client, bob, await create(client, bob, title="bob's done"))

    mine = await stats(client, alice)
    theirs = await stats(client, bob)

    assert mine["total"] == 0
    assert per_day(mine) == {}
    assert theirs["total"] == 2
    assert theirs["overdue"] == 1


async def test_stats_is_one_statement(client, alice, monkeypatch: pytest.MonkeyPatch):
    await create(client, alice, due_at="2026-03-14T09:00:00Z")
    statements: list[str] = []
    real = Database.fetch_row

    async def counted(self: Database, sql: str, *args: Any, **kw: Any) -> Any:
        statements.append(sql)
        return await real(self, sql, *args, **kw)

    monkeypatch.setattr(Database, "fetch_row", counted)
    body = await stats(client, alice, "Europe/Paris")

    assert body["overdue"] == 1
    # Beside the token's deleted-account check that every authenticated request makes.
    assert len([sql for sql in statements if "deleted_subjects" not in sql]) == 1


@pytest.mark.parametrize(
    "tz",
    [
        "Mars/Olympus",
        "",
        "../../etc/passwd",
        "/etc/localtime",
        "localtime",
        "UTC\x00",
        "x" * 65,
        "+01:00",
    ],
    ids=[
        "unknown",
        "empty",
        "relative path",
        "absolute path",
        "server's",
        "NUL",
        "too long",
        "offset",
    ],
)
async def test_a_bad_time_zone_is_422_and_changes_nothing(client, alice, snapshot: Snapshot, tz):
    await create(client, alice)
    before = await snapshot()

    response = await client.get("/api/tasks/stats", params={"tz": tz}, headers=alice.headers)

    body = assert_error(response, 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", "tz"]
    assert await snapshot() == before


@pytest.mark.parametrize("kind", sorted(bad_tokens(TestIssuer())))
async def test_stats_needs_a_valid_token(client, issuer, kind):
    response = await client.get("/api/tasks/stats", headers=bad_tokens(issuer)[kind])

    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_stats_is_not_read_as_a_task_id(client, alice, snapshot: Snapshot):
    task = await create(client, alice)
    before = await snapshot()

    read = await client.get("/api/tasks/stats", headers=alice.headers)
    others = [
        await client.request(method, "/api/tasks/stats", json={"title": "x"}, headers=alice.headers)
        for method in ("POST", "PUT", "PATCH", "DELETE")
    ]

    assert read.status_code == 200
    assert read.json()["total"] == 1
    for response in others:
        # Not a 422 about a task id: the path is the overview's, and it only reads.
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, HEAD"
    assert await snapshot() == before
    one = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert one.status_code == 200


async def test_stats_is_in_the_services_openapi_document(client):
    document = (await client.get("/api/tasks/openapi.json")).json()

    operation = document["paths"]["/api/tasks/stats"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["tz"]
    assert "200" in operation["responses"]


# --- the list's "no due date" filter -------------------------------------------------------


async def test_has_due_false_lists_only_tasks_without_a_due_date(client, alice, bob):
    undated = await create(client, alice, title="undated")
    await create(client, alice, title="dated", due_at="2026-03-20T09:00:00Z")
    await create(client, bob, title="bob's undated")

    response = await client.get("/api/tasks", params={"has_due": "false"}, headers=alice.headers)
    dated = await client.get("/api/tasks", params={"has_due": "true"}, headers=alice.headers)

    assert response.status_code == 200
    assert [task["id"] for task in response.json()] == [undated["id"]]
    assert response.headers["x-total-count"] == "1"
    assert [task["title"] for task in dated.json()] == ["dated"]
    assert dated.headers["x-total-count"] == "1"


async def test_has_due_combines_with_the_other_filters(client, alice):
    await create(client, alice, title="milk", priority="high")
    await create(client, alice, title="milk later", priority="high", due_at="2026-03-20T09:00:00Z")
    await create(client, alice, title="bread", priority="low")

    response = await client.get(
        "/api/tasks",
        params={"has_due": "false", "priority": "high", "q": "milk"},
        headers=alice.headers,
    )
    contradiction = await client.get(
        "/api/tasks",
        params={"has_due": "false", "due_before": "2026-04-01T00:00:00Z"},
        headers=alice.headers,
    )

    assert [task["title"] for task in response.json()] == ["milk"]
    assert contradiction.json() == []
    assert contradiction.headers["x-total-count"] == "0"


@pytest.mark.parametrize("value", ["none", "", "maybe", "2"])
async def test_has_due_that_is_not_a_boolean_is_422(client, alice, value):
    response = await client.get("/api/tasks", params={"has_due": value}, headers=alice.headers)

    body = assert_error(response, 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", "has_due"]
