"""A recurring task's time zone: the next occurrence keeps the local time of day there."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.db import Database
from shared.timezones import TIME_ZONE_MAX
from tests.support.errors import assert_error
from tests.todo.conftest import User, create, following
from todo_service.models import Recurrence
from todo_service.service import next_due

PARIS = ZoneInfo("Europe/Paris")


async def count(client: httpx.AsyncClient, user: User) -> int:
    response = await client.get("/api/tasks", headers=user.headers)
    return int(response.headers["x-total-count"])


@pytest.mark.parametrize(
    ("recurrence", "due_at", "next_due_at"),
    [
        # 09:00 in Paris: 07:00Z in summer time, 08:00Z in winter time, and back.
        ("daily", "2026-10-24T09:00:00+02:00", "2026-10-25T08:00:00.000000Z"),
        ("daily", "2026-03-28T09:00:00+01:00", "2026-03-29T07:00:00.000000Z"),
        ("weekly", "2026-10-20T09:00:00+02:00", "2026-10-27T08:00:00.000000Z"),
        ("monthly", "2026-10-15T09:00:00+02:00", "2026-11-15T08:00:00.000000Z"),
        ("monthly", "2026-03-15T09:00:00+01:00", "2026-04-15T07:00:00.000000Z"),
    ],
)
async def test_daily_task_keeps_its_local_time_across_dst(
    client: httpx.AsyncClient, alice: User, recurrence: str, due_at: str, next_due_at: str
) -> None:
    task = await create(
        client, alice, recurrence=recurrence, due_at=due_at, time_zone="Europe/Paris"
    )
    assert task["time_zone"] == "Europe/Paris"

    nxt = await following(client, alice, task["id"])

    assert nxt["due_at"] == next_due_at
    assert datetime.fromisoformat(nxt["due_at"]).astimezone(PARIS).hour == 9
    # The occurrence keeps the zone, so the series keeps the time.
    assert nxt["time_zone"] == "Europe/Paris"
    assert nxt["recurrence"] == recurrence


async def test_without_a_zone_the_series_keeps_its_utc_time_as_before(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="daily", due_at="2026-10-24T09:00:00+02:00")
    assert task["time_zone"] is None
    nxt = await following(client, alice, task["id"])
    assert nxt["due_at"] == "2026-10-25T07:00:00.000000Z"
    assert nxt["time_zone"] is None


async def test_monthly_on_the_31st_east_of_utc_keeps_the_local_day_clamped(
    client: httpx.AsyncClient, alice: User
) -> None:
    # 00:30 on 31 January in Tokyo is still 30 January in UTC: the month's end is Tokyo's,
    # and so is the day the series returns to after February.
    task = await create(
        client,
        alice,
        recurrence="monthly",
        due_at="2026-01-31T00:30:00+09:00",
        time_zone="Asia/Tokyo",
    )
    february = await following(client, alice, task["id"])
    assert february["due_at"] == "2026-02-27T15:30:00.000000Z"  # 28 February, 00:30 in Tokyo
    march = await following(client, alice, february["id"])
    assert march["due_at"] == "2026-03-30T15:30:00.000000Z"  # 31 March, 00:30 in Tokyo


async def test_monthly_on_the_31st_in_utc_is_still_clamped_on_the_utc_date(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="2026-01-31T00:30:00+09:00")
    nxt = await following(client, alice, task["id"])
    assert nxt["due_at"] == "2026-02-28T15:30:00.000000Z"  # 30 January UTC + 1 month


async def test_a_local_time_in_the_spring_gap_moves_forward_by_the_gap(
    client: httpx.AsyncClient, alice: User
) -> None:
    # 29 March 2026 in Paris goes from 02:00 straight to 03:00: 02:30 is read with the
    # offset before the gap (+01:00), i.e. 03:30 in summer time; the series keeps 03:30.
    task = await create(
        client,
        alice,
        recurrence="daily",
        due_at="2026-03-28T02:30:00+01:00",
        time_zone="Europe/Paris",
    )
    gap_day = await following(client, alice, task["id"])
    assert gap_day["due_at"] == "2026-03-29T01:30:00.000000Z"
    after = await following(client, alice, gap_day["id"])
    assert after["due_at"] == "2026-03-30T01:30:00.000000Z"  # 03:30 in summer time


async def test_an_ambiguous_local_time_takes_the_first_of_the_two(
    client: httpx.AsyncClient, alice: User
) -> None:
    # 25 October 2026 in Paris has 02:30 twice (summer time, then winter time).
    task = await create(
        client,
        alice,
        recurrence="daily",
        due_at="2026-10-24T02:30:00+02:00",
        time_zone="Europe/Paris",
    )
    nxt = await following(client, alice, task["id"])
    assert nxt["due_at"] == "2026-10-25T00:30:00.000000Z"  # 02:30+02:00, the first


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        # New York springs forward on 8 March 2026 at 02:00.
        (
            datetime(2026, 3, 7, 7, 30, tzinfo=UTC),  # 02:30 EST
            "America/New_York",
            datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # 02:30 read as EST: 03:30 EDT
        ),
        # ... and falls back on 1 November at 02:00: 01:30 happens twice.
        (
            datetime(2026, 10, 31, 5, 30, tzinfo=UTC),  # 01:30 EDT
            "America/New_York",
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # the first 01:30, EDT
        ),
        # The second 01:30 of that night steps to 01:30 of the next day, not 02:30.
        (
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # 01:30 EST (fold=1)
            "America/New_York",
            datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
        ),
    ],
)
def test_next_due_resolves_gaps_and_folds_as_zoneinfo_fold_0(
    moment: datetime, zone: str, expected: datetime
) -> None:
    assert next_due(moment, Recurrence.DAILY, ZoneInfo(zone)) == expected


def test_next_due_steps_in_utc_where_the_local_time_is_before_the_calendar() -> None:
    # 02:00Z on 1 January of year 1 is still year 0 in New York.
    moment = datetime(1, 1, 1, 2, 0, tzinfo=UTC)
    assert next_due(moment, Recurrence.DAILY, ZoneInfo("America/New_York")) == datetime(
        1, 1, 2, 2, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("due_at", "zone"),
    [
        ("9999-12-15T00:00:00Z", "Pacific/Kiritimati"),  # +14: local 10000 next month
        ("9999-12-31T20:00:00Z", "Asia/Tokyo"),  # local time already in year 10000
        ("9999-12-31T12:00:00-10:00", "Pacific/Honolulu"),  # a day on is 10000 in UTC
    ],
)
async def test_a_zoned_series_ends_at_the_end_of_the_calendar(
    client: httpx.AsyncClient, alice: User, due_at: str, zone: str
) -> None:
    recurrence = "monthly" if due_at.startswith("9999-12-15") else "daily"
    task = await create(client, alice, recurrence=recurrence, due_at=due_at, time_zone=zone)
    done = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert done.status_code == 200, done.text
    assert done.json()["next_occurrence_id"] is None
    assert await count(client, alice) == 1


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "localtime",
        "../../etc/passwd",
        "europe/paris ",
        "",
        "A" * (TIME_ZONE_MAX + 1),
        "Europe/" + "X" * TIME_ZONE_MAX,
        3600,
    ],
)
async def test_an_unknown_or_overlong_zone_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, alice: User, zone: object
) -> None:
    created = await client.post(
        "/api/tasks", json={"title": "x", "time_zone": zone}, headers=alice.headers
    )
    body = assert_error(created, 422, "validation_error")
    assert body["detail"][0]["loc"] == ["body", "time_zone"]
    assert "input" not in body["detail"][0]  # the value is never echoed
    assert await count(client, alice) == 0

    task = await create(client, alice, recurrence="daily", time_zone="Europe/Paris")
    patched = await client.patch(
        f"/api/tasks/{task['id']}", json={"time_zone": zone}, headers=alice.headers
    )
    assert_error(patched, 422, "validation_error")
    replaced = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "x", "time_zone": zone}, headers=alice.headers
    )
    assert_error(replaced, 422, "validation_error")
    unchanged = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert unchanged.json() == task


async def test_patch_sets_keeps_and_null_clears_the_zone(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="weekly", due_at="2026-03-20T09:00:00Z")
    url = f"/api/tasks/{task['id']}"

    set_ = await client.patch(url, json={"time_zone": "Asia/Kolkata"}, headers=alice.headers)
    assert set_.json()["time_zone"] == "Asia/Kolkata"
    assert set_.json()["version"] == task["version"] + 1

    kept = await client.patch(url, json={"title": "Gym"}, headers=alice.headers)
    assert kept.json()["time_zone"] == "Asia/Kolkata"

    same = await client.patch(url, json={"time_zone": "Asia/Kolkata"}, headers=alice.headers)
    assert same.json()["version"] == kept.json()["version"]  # no change, no new version

    cleared = await client.patch(url, json={"time_zone": None}, headers=alice.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["time_zone"] is None


async def test_put_without_a_zone_clears_it_like_any_absent_field(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="daily", time_zone="Europe/Paris")
    url = f"/api/tasks/{task['id']}"
    with_zone = await client.put(
        url,
        json={"title": "x", "recurrence": "daily", "time_zone": "America/Sao_Paulo"},
        headers=alice.headers,
    )
    assert with_zone.json()["time_zone"] == "America/Sao_Paulo"
    without = await client.put(url, json={"title": "x"}, headers=alice.headers)
    assert without.json()["time_zone"] is None


async def test_another_users_task_is_still_not_found_with_a_zone(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    bobs = await create(client, bob, recurrence="daily", time_zone="Europe/Paris")
    url = f"/api/tasks/{bobs['id']}"
    for method, body in (
        ("PATCH", {"time_zone": "Asia/Tokyo"}),
        ("PATCH", {"time_zone": None}),
        ("PUT", {"title": "x", "time_zone": "Asia/Tokyo"}),
    ):
        response = await client.request(method, url, json=body, headers=alice.headers)
        assert_error(response, 404, "task_not_found")
    assert (await client.get(url, headers=bob.headers)).json() == bobs


async def test_the_list_and_the_task_carry_the_same_zone(
    client: httpx.AsyncClient, alice: User
) -> None:
    zoned = await create(client, alice, recurrence="daily", time_zone="Australia/Lord_Howe")
    plain = await create(client, alice)
    listed = (await client.get("/api/tasks", params={"order": "asc"}, headers=alice.headers)).json()
    alone = [
        (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
        for task in (zoned, plain)
    ]
    assert listed == alone == [zoned, plain]
    assert [task["time_zone"] for task in listed] == ["Australia/Lord_Howe", None]


async def test_an_idempotent_create_replays_the_zone(
    client: httpx.AsyncClient, alice: User
) -> None:
    body = {"title": "Standup", "recurrence": "daily", "time_zone": "Europe/Berlin"}
    headers = {**alice.headers, "Idempotency-Key": "standup-1"}
    first = await client.post("/api/tasks", json=body, headers=headers)
    again = await client.post("/api/tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert first.json()["time_zone"] == "Europe/Berlin"
    other = await client.post(
        "/api/tasks", json={**body, "time_zone": "Europe/Paris"}, headers=headers
    )
    assert_error(other, 422, "idempotency_key_reused")


async def test_a_create_retried_across_the_deploy_that_added_zones_is_replayed(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    """A key claimed before todo 0013 (its request hashed, its answer rendered, without a
    zone): the same request retried once the zones are deployed (a rolling restart is when
    a create's outcome goes unknown) replays that answer, as it did before, rather than
    being refused as another request or failing on the answer's missing field."""
    body = {"title": "Pay rent", "recurrence": "monthly"}
    headers = {**alice.headers, "Idempotency-Key": "rent-across-the-deploy"}
    first = await client.post("/api/tasks", json=body, headers=headers)
    assert first.status_code == 201, first.text
    # The key's row as the code before 0013 wrote it.
    hashed_before = (
        '{"title":"Pay rent","description":null,"priority":"medium","tags":[],'
        '"due_at":null,"recurrence":"monthly","reminders":[]}'
    )
    answered_before = {k: v for k, v in first.json().items() if k != "time_zone"}
    await database.fetch_row(
        "UPDATE todo.idempotency_keys SET request_hash = $1, response_body = $2 WHERE key = $3",
        hashlib.sha256(hashed_before.encode()).hexdigest(),
        json.dumps(answered_before),
        "rent-across-the-deploy",
        write=True,
    )

    again = await client.post("/api/tasks", json=body, headers=headers)

    assert again.status_code == 201, again.text
    assert again.json() == {**answered_before, "time_zone": None}
    assert await count(client, alice) == 1
