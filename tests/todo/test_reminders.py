"""Reminders on tasks through the REST API: validation, replacement, the due date moving the
offset ones, completion silencing them, reopening bringing them back, recurrence carrying
them forward, and the list rendering them with the task."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support.errors import assert_error
from tests.todo.conftest import Snapshot, User, create

DUE = "2026-03-20T09:00:00.000000Z"


def reminder(
    at: str | None = None, minutes: int | None = None, fires: str | None = None
) -> dict[str, Any]:
    return {"at": at, "before_due_minutes": minutes, "fires_at": fires}


async def scheduler_state(
    sessionmaker: async_sessionmaker[AsyncSession], task_id: int
) -> tuple[int, Any, Any]:
    async with sessionmaker() as session:
        row = (
            await (await session.connection()).execute(
                text(
                    "SELECT reminders_fired, snoozed_until, next_remind_at FROM todo.tasks "
                    "WHERE id = :id"
                ),
                {"id": task_id},
            )
        ).one()
    return tuple(row)  # type: ignore[return-value]


async def test_a_task_is_created_with_both_kinds_of_reminder(
    client: httpx.AsyncClient, alice: User, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    task = await create(
        client,
        alice,
        due_at="2026-03-20T10:00:00+01:00",
        reminders=[{"at": "2026-03-19T18:00:00+01:00"}, {"before_due_minutes": 60}],
    )

    assert task["reminders"] == [
        reminder(at="2026-03-19T17:00:00.000000Z", fires="2026-03-19T17:00:00.000000Z"),
        reminder(minutes=60, fires="2026-03-20T08:00:00.000000Z"),
    ]
    fetched = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert fetched.json()["reminders"] == task["reminders"]
    listed = await client.get("/api/tasks", headers=alice.headers)
    assert listed.json()[0]["reminders"] == task["reminders"]
    _, _, next_at = await scheduler_state(sessionmaker, task["id"])
    assert next_at.isoformat() == "2026-03-19T17:00:00+00:00"


async def test_a_task_without_reminders_has_an_empty_list_and_nothing_to_fire(
    client: httpx.AsyncClient, alice: User, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    task = await create(client, alice)
    assert task["reminders"] == []
    assert await scheduler_state(sessionmaker, task["id"]) == (0, None, None)


@pytest.mark.parametrize(
    ("reminders", "due_at"),
    [
        ([{"at": "2026-03-19T18:00:00+01:00", "before_due_minutes": 5}], DUE),  # both
        ([{}], DUE),  # neither
        ([{"before_due_minutes": 5, "repeat": True}], DUE),  # unknown field
        ([{"before_due_minutes": 5}, {"before_due_minutes": 5}], DUE),  # duplicate
        (
            [{"at": "2026-03-19T18:00:00Z"}, {"at": "2026-03-19T19:00:00+01:00"}],
            DUE,
        ),  # same instant
        ([{"before_due_minutes": m} for m in range(6)], DUE),  # six
        ([{"before_due_minutes": 43_201}], DUE),  # over 30 days
        ([{"before_due_minutes": -1}], DUE),
        ([{"before_due_minutes": "5"}], DUE),  # a string
        ([{"before_due_minutes": 5.5}], DUE),  # a fraction
        ([{"before_due_minutes": True}], DUE),
        ([{"at": "2026-03-19T18:00:00"}], DUE),  # no offset
        ([{"at": 1773939600}], DUE),  # epoch seconds
        ([{"before_due_minutes": 5}], None),  # an offset without a due date
        ({"before_due_minutes": 5}, DUE),  # not a list
        (["soon"], DUE),
    ],
)
async def test_invalid_reminders_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, reminders: Any, due_at: Any
) -> None:
    before = await snapshot()
    response = await client.post(
        "/api/tasks",
        json={"title": "x", "due_at": due_at, "reminders": reminders},
        headers=alice.headers,
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_the_boundaries_of_a_reminder_are_accepted(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        due_at=DUE,
        reminders=[{"before_due_minutes": m} for m in (0, 1, 60, 1440, 43_200)],
    )
    assert [r["before_due_minutes"] for r in task["reminders"]] == [0, 1, 60, 1440, 43_200]
    assert task["reminders"][0]["fires_at"] == DUE
    assert task["reminders"][4]["fires_at"] == "2026-02-18T09:00:00.000000Z"


async def test_patch_replaces_the_whole_list_and_absent_keeps_it(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, due_at=DUE, reminders=[{"before_due_minutes": 10}])
    url = f"/api/tasks/{task['id']}"

    kept = await client.patch(url, json={"title": "renamed"}, headers=alice.headers)
    assert kept.json()["reminders"] == task["reminders"]

    replaced = await client.patch(
        url, json={"reminders": [{"before_due_minutes": 30}]}, headers=alice.headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["reminders"] == [
        reminder(minutes=30, fires="2026-03-20T08:30:00.000000Z")
    ]
    assert replaced.json()["version"] == kept.json()["version"] + 1

    for cleared in ([], None):
        await client.patch(
            url, json={"reminders": [{"before_due_minutes": 5}]}, headers=alice.headers
        )
        response = await client.patch(url, json={"reminders": cleared}, headers=alice.headers)
        assert response.json()["reminders"] == []


async def test_the_same_list_sent_again_is_no_change(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, due_at=DUE, reminders=[{"before_due_minutes": 10}])
    again = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"reminders": [{"before_due_minutes": 10}]},
        headers=alice.headers,
    )
    assert again.json()["version"] == task["version"]


async def test_a_new_due_date_moves_the_offset_reminders_only(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        due_at=DUE,
        reminders=[{"before_due_minutes": 60}, {"at": "2026-03-18T12:00:00Z"}],
    )
    moved = await client.patch(
        f"/api/tasks/{task['id']}", json={"due_at": "2026-03-25T09:00:00Z"}, headers=alice.headers
    )
    assert moved.json()["reminders"] == [
        reminder(minutes=60, fires="2026-03-25T08:00:00.000000Z"),
        reminder(at="2026-03-18T12:00:00.000000Z", fires="2026-03-18T12:00:00.000000Z"),
    ]


async def test_clearing_the_due_date_of_a_task_with_offset_reminders_is_refused(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    task = await create(client, alice, due_at=DUE, reminders=[{"before_due_minutes": 60}])
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}", json={"due_at": None}, headers=alice.headers
    )
    assert_error(response, 422, "reminder_needs_due_date")
    assert await snapshot() == before
    # Cleared together with the offset reminders, it is accepted.
    both = await client.patch(
        f"/api/tasks/{task['id']}", json={"due_at": None, "reminders": []}, headers=alice.headers
    )
    assert both.status_code == 200
    assert both.json()["due_at"] is None


async def test_patch_refuses_an_offset_reminder_on_a_task_without_a_due_date(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"reminders": [{"before_due_minutes": 5}]},
        headers=alice.headers,
    )
    assert_error(response, 422, "reminder_needs_due_date")
    assert await snapshot() == before


async def test_patch_refuses_malformed_reminders(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    task = await create(client, alice, due_at=DUE)
    before = await snapshot()
    for body in (
        {"reminders": [{"at": "tomorrow"}]},
        {"reminders": [{"before_due_minutes": 1}] * 2},
        {"reminders": [{"before_due_minutes": m} for m in range(6)]},
        {"reminders": "none"},
    ):
        response = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
        assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_another_users_task_reminders_cannot_be_set(
    client: httpx.AsyncClient, alice: User, bob: User, snapshot: Snapshot
) -> None:
    task = await create(client, alice, due_at=DUE)
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"reminders": [{"before_due_minutes": 5}]},
        headers=bob.headers,
    )
    assert_error(response, 404, "task_not_found")
    assert await snapshot() == before


async def test_a_completed_task_fires_nothing_and_reopened_it_does_again(
    client: httpx.AsyncClient, alice: User, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    task = await create(client, alice, due_at=DUE, reminders=[{"before_due_minutes": 60}])
    url = f"/api/tasks/{task['id']}/complete"

    done = await client.patch(url, json={"completed": True}, headers=alice.headers)
    assert done.json()["reminders"] == [reminder(minutes=60)]
    assert (await scheduler_state(sessionmaker, task["id"]))[2] is None

    reopened = await client.patch(url, json={"completed": False}, headers=alice.headers)
    assert reopened.json()["reminders"] == task["reminders"]
    assert (await scheduler_state(sessionmaker, task["id"]))[2] is not None


async def test_put_without_reminders_clears_them(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice, due_at=DUE, reminders=[{"before_due_minutes": 60}])
    replaced = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "again", "due_at": DUE}, headers=alice.headers
    )
    assert replaced.json()["reminders"] == []
    with_one = await client.put(
        f"/api/tasks/{task['id']}",
        json={"title": "again", "due_at": DUE, "reminders": [{"before_due_minutes": 5}]},
        headers=alice.headers,
    )
    assert with_one.json()["reminders"] == [
        reminder(minutes=5, fires="2026-03-20T08:55:00.000000Z")
    ]


async def test_a_recurring_tasks_next_occurrence_carries_its_reminders_forward(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        due_at=DUE,
        recurrence="weekly",
        reminders=[{"before_due_minutes": 30}, {"at": "2026-03-19T20:00:00Z"}],
    )
    done = await client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    following = await client.get(
        f"/api/tasks/{done.json()['next_occurrence_id']}", headers=alice.headers
    )
    assert following.json()["due_at"] == "2026-03-27T09:00:00.000000Z"
    assert following.json()["reminders"] == [
        reminder(minutes=30, fires="2026-03-27T08:30:00.000000Z"),
        reminder(at="2026-03-26T20:00:00.000000Z", fires="2026-03-26T20:00:00.000000Z"),
    ]


async def test_an_idempotent_create_replays_its_reminders(
    client: httpx.AsyncClient, alice: User
) -> None:
    body = {"title": "x", "due_at": DUE, "reminders": [{"before_due_minutes": 15}]}
    headers = {**alice.headers, "Idempotency-Key": "r1"}
    first = await client.post("/api/tasks", json=body, headers=headers)
    second = await client.post("/api/tasks", json=body, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert first.json()["reminders"][0]["fires_at"] == "2026-03-20T08:45:00.000000Z"
