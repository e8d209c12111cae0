"""A monthly series keeps the day of the month it was set for, clamped to each month's end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from tests.support.errors import assert_error
from tests.todo.conftest import User, create, following


async def series(client: httpx.AsyncClient, user: User, task: dict[str, Any], n: int) -> list[str]:
    """The due dates of the task and of the ``n`` occurrences completing it in turn makes."""
    dues = [task["due_at"]]
    for _ in range(n):
        task = await following(client, user, task["id"])
        dues.append(task["due_at"])
    return dues


async def patch(
    client: httpx.AsyncClient, user: User, task_id: int, **changes: Any
) -> dict[str, Any]:
    response = await client.patch(f"/api/tasks/{task_id}", json=changes, headers=user.headers)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def stored_day(database: Database, task_id: int) -> int | None:
    """The series' day of the month as the row keeps it (the API does not show it)."""
    row = await database.fetch_row("SELECT recurrence_day FROM todo.tasks WHERE id = $1", task_id)
    assert row is not None
    return None if row[0] is None else int(row[0])


@pytest.mark.parametrize(
    ("due_at", "expected"),
    [
        (
            "2026-01-31T09:00:00Z",
            ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"],
        ),
        ("2028-01-31T09:00:00Z", ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]),
        ("2026-01-30T09:00:00Z", ["2026-01-30", "2026-02-28", "2026-03-30", "2026-04-30"]),
        ("2026-01-29T09:00:00Z", ["2026-01-29", "2026-02-28", "2026-03-29"]),
        ("2028-01-29T09:00:00Z", ["2028-01-29", "2028-02-29", "2028-03-29"]),
        ("2026-11-30T09:00:00Z", ["2026-11-30", "2026-12-30", "2027-01-30", "2027-02-28"]),
    ],
)
async def test_a_monthly_series_returns_to_its_day_after_a_short_month(
    client: httpx.AsyncClient, alice: User, due_at: str, expected: list[str]
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at=due_at)
    dues = await series(client, alice, task, len(expected) - 1)
    assert dues == [f"{day}T09:00:00.000000Z" for day in expected]


async def test_the_day_is_the_local_day_in_a_zone_east_of_utc(
    client: httpx.AsyncClient, alice: User
) -> None:
    # 05:00 on 1 February in Tokyo is still 31 January in UTC: the series is on the 1st.
    task = await create(
        client,
        alice,
        recurrence="monthly",
        due_at="2026-01-31T20:00:00Z",
        time_zone="Asia/Tokyo",
    )
    assert await series(client, alice, task, 2) == [
        "2026-01-31T20:00:00.000000Z",
        "2026-02-28T20:00:00.000000Z",  # 1 March, 05:00 in Tokyo
        "2026-03-31T20:00:00.000000Z",  # 1 April
    ]


async def test_moving_the_due_date_sets_the_series_on_the_new_day(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    february = await following(client, alice, task["id"])
    assert february["due_at"] == "2026-02-28T09:00:00.000000Z"

    moved = await patch(client, alice, february["id"], due_at="2026-02-27T09:00:00Z")

    assert await series(client, alice, moved, 2) == [
        "2026-02-27T09:00:00.000000Z",
        "2026-03-27T09:00:00.000000Z",
        "2026-04-27T09:00:00.000000Z",
    ]


async def test_moving_the_due_date_to_the_end_of_a_long_month_sets_the_series_there(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-03-15T09:00:00Z")
    moved = await patch(client, alice, task["id"], due_at="2026-03-31T09:00:00Z")
    assert await series(client, alice, moved, 2) == [
        "2026-03-31T09:00:00.000000Z",
        "2026-04-30T09:00:00.000000Z",
        "2026-05-31T09:00:00.000000Z",
    ]


async def test_changing_only_the_time_of_day_keeps_the_day(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    february = await following(client, alice, task["id"])

    later = await patch(client, alice, february["id"], due_at="2026-02-28T17:30:00Z")

    assert (await following(client, alice, later["id"]))["due_at"] == "2026-03-31T17:30:00.000000Z"


async def test_a_put_of_the_task_as_read_keeps_the_day(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    february = await following(client, alice, task["id"])
    writable = ("title", "description", "priority", "tags", "due_at", "recurrence", "time_zone")

    replaced = await client.put(
        f"/api/tasks/{february['id']}",
        json={**{name: february[name] for name in writable}, "title": "Pay rent"},
        headers=alice.headers,
    )

    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["due_at"] == "2026-02-28T09:00:00.000000Z"
    nxt = await following(client, alice, february["id"])
    assert nxt["due_at"] == "2026-03-31T09:00:00.000000Z"


async def test_a_task_made_monthly_is_set_on_its_current_due_day(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    task = await create(client, alice, recurrence="daily", due_at="2026-01-31T09:00:00Z")
    assert await stored_day(database, task["id"]) is None

    monthly = await patch(client, alice, task["id"], recurrence="monthly")

    assert await stored_day(database, task["id"]) == 31
    assert await series(client, alice, monthly, 2) == [
        "2026-01-31T09:00:00.000000Z",
        "2026-02-28T09:00:00.000000Z",
        "2026-03-31T09:00:00.000000Z",
    ]


async def test_a_series_made_daily_then_monthly_again_is_set_on_the_day_it_is_on(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    february = await following(client, alice, task["id"])

    daily = await patch(client, alice, february["id"], recurrence="daily")
    assert await stored_day(database, daily["id"]) is None
    monthly = await patch(client, alice, february["id"], recurrence="monthly")

    assert await stored_day(database, monthly["id"]) == 28
    assert (await following(client, alice, monthly["id"]))["due_at"] == (
        "2026-03-28T09:00:00.000000Z"
    )


async def test_clearing_the_due_date_forgets_the_day(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    february = await following(client, alice, task["id"])

    cleared = await patch(client, alice, february["id"], due_at=None)
    assert await stored_day(database, cleared["id"]) is None
    # Set again on the date it had: the series is now on that date's day.
    again = await patch(client, alice, february["id"], due_at="2026-02-28T09:00:00Z")

    assert await stored_day(database, again["id"]) == 28
    assert (await following(client, alice, again["id"]))["due_at"] == (
        "2026-03-28T09:00:00.000000Z"
    )


async def test_without_a_due_date_the_series_keeps_the_day_it_was_completed_on(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    clock.now = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    task = await create(client, alice, recurrence="monthly")

    february = await following(client, alice, task["id"])
    march = await following(client, alice, february["id"])

    assert [february["due_at"], march["due_at"]] == [
        "2026-02-28T09:00:00.000000Z",
        "2026-03-31T09:00:00.000000Z",
    ]


async def test_a_zone_that_moves_the_local_date_sets_the_series_on_the_new_day(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    # 16:00 on 30 January in UTC is 01:00 on the 31st in Tokyo.
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-30T16:00:00Z")
    assert await stored_day(database, task["id"]) == 30

    tokyo = await patch(client, alice, task["id"], time_zone="Asia/Tokyo")

    assert await stored_day(database, tokyo["id"]) == 31
    assert await series(client, alice, tokyo, 2) == [
        "2026-01-30T16:00:00.000000Z",
        "2026-02-27T16:00:00.000000Z",  # 28 February, 01:00 in Tokyo
        "2026-03-30T16:00:00.000000Z",  # 31 March
    ]


async def test_a_zone_that_keeps_the_local_date_keeps_the_day(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        recurrence="monthly",
        due_at="2026-01-31T09:00:00+01:00",
        time_zone="Europe/Paris",
    )
    february = await following(client, alice, task["id"])  # 28 February, 09:00 in Paris

    berlin = await patch(client, alice, february["id"], time_zone="Europe/Berlin")

    nxt = await following(client, alice, berlin["id"])
    assert nxt["due_at"] == "2026-03-31T07:00:00.000000Z"  # 09:00 in Berlin, summer time


async def test_a_series_from_before_the_day_was_kept_steps_from_its_due_date(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    # A task stored before todo 0014 has no day: its due date's own day is the series' day.
    task = await create(client, alice, recurrence="monthly", due_at="2026-02-28T09:00:00Z")
    await database.fetch_row(
        "UPDATE todo.tasks SET recurrence_day = NULL WHERE id = $1", task["id"], write=True
    )

    march = await following(client, alice, task["id"])

    assert march["due_at"] == "2026-03-28T09:00:00.000000Z"
    assert await stored_day(database, march["id"]) == 28  # remembered from then on


@pytest.mark.parametrize("recurrence", ["none", "daily", "weekly"])
async def test_other_recurrences_keep_no_day(
    client: httpx.AsyncClient, alice: User, database: Database, recurrence: str
) -> None:
    task = await create(client, alice, recurrence=recurrence, due_at="2026-01-31T09:00:00Z")
    assert await stored_day(database, task["id"]) is None


async def test_every_create_keeps_the_day_and_the_api_does_not_show_it(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    body = {"title": "Rent", "recurrence": "monthly", "due_at": "2026-01-31T09:00:00Z"}
    plain = await client.post("/api/tasks", json=body, headers=alice.headers)
    keyed_headers = {**alice.headers, "Idempotency-Key": "rent-1"}
    keyed = await client.post("/api/tasks", json=body, headers=keyed_headers)
    replayed = await client.post("/api/tasks", json=body, headers=keyed_headers)
    undated = await create(client, alice, recurrence="monthly")

    assert plain.status_code == keyed.status_code == replayed.status_code == 201
    assert replayed.content == keyed.content
    assert await stored_day(database, plain.json()["id"]) == 31
    assert await stored_day(database, keyed.json()["id"]) == 31
    assert await stored_day(database, undated["id"]) is None
    listed = (await client.get("/api/tasks", headers=alice.headers)).json()
    alone = (await client.get(f"/api/tasks/{plain.json()['id']}", headers=alice.headers)).json()
    for task in (*listed, alone, plain.json(), keyed.json()):
        assert "recurrence_day" not in task


async def test_the_end_of_the_calendar_still_ends_a_series_on_the_31st(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="9999-10-31T09:00:00Z")
    november = await following(client, alice, task["id"])
    december = await following(client, alice, november["id"])
    assert [november["due_at"], december["due_at"]] == [
        "9999-11-30T09:00:00.000000Z",
        "9999-12-31T09:00:00.000000Z",
    ]

    done = await client.patch(f"/api/tasks/{december['id']}/complete", headers=alice.headers)

    assert done.status_code == 200, done.text
    assert done.json()["next_occurrence_id"] is None


async def test_another_users_task_is_still_not_found(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    bobs = await create(client, bob, recurrence="monthly", due_at="2026-01-31T09:00:00Z")
    moved = await client.patch(
        f"/api/tasks/{bobs['id']}", json={"due_at": "2026-01-15T09:00:00Z"}, headers=alice.headers
    )
    assert_error(moved, 404, "task_not_found")
    assert (await following(client, bob, bobs["id"]))["due_at"] == "2026-02-28T09:00:00.000000Z"
