"""Recurring tasks: completing one schedules the next occurrence, exactly once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from tests.todo.conftest import User, create


async def all_tasks(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/tasks", params={"limit": 100, "order": "asc"}, headers=user.headers
    )
    tasks: list[dict[str, Any]] = response.json()
    assert int(response.headers["x-total-count"]) == len(tasks)
    return tasks


async def complete(client: httpx.AsyncClient, user: User, task_id: int) -> dict[str, Any]:
    response = await client.patch(
        f"/api/tasks/{task_id}/complete", json={"completed": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


@pytest.mark.parametrize(
    ("recurrence", "due_at", "next_due_at"),
    [
        ("daily", "2026-03-15T09:00:00Z", "2026-03-16T09:00:00.000000Z"),
        ("daily", "2026-12-31T23:30:00Z", "2027-01-01T23:30:00.000000Z"),
        ("weekly", "2026-03-15T09:00:00Z", "2026-03-22T09:00:00.000000Z"),
        ("weekly", "2026-02-26T09:00:00Z", "2026-03-05T09:00:00.000000Z"),
        ("monthly", "2026-03-15T09:00:00Z", "2026-04-15T09:00:00.000000Z"),
        ("monthly", "2026-01-31T09:00:00Z", "2026-02-28T09:00:00.000000Z"),
        ("monthly", "2028-01-31T09:00:00Z", "2028-02-29T09:00:00.000000Z"),
        ("monthly", "2026-03-31T09:00:00Z", "2026-04-30T09:00:00.000000Z"),
        ("monthly", "2026-12-15T09:00:00Z", "2027-01-15T09:00:00.000000Z"),
        ("monthly", "2026-08-31T22:00:00-05:00", "2026-10-01T03:00:00.000000Z"),
    ],
)
async def test_completing_schedules_the_next_occurrence(
    client: httpx.AsyncClient,
    alice: User,
    clock: FrozenClock,
    recurrence: str,
    due_at: str,
    next_due_at: str,
) -> None:
    task = await create(
        client,
        alice,
        title="Water plants",
        description="the ficus too",
        priority="high",
        tags=["home", "plants"],
        due_at=due_at,
        recurrence=recurrence,
    )
    clock.advance(hours=2)

    done = await complete(client, alice, task["id"])

    tasks = await all_tasks(client, alice)
    assert len(tasks) == 2
    following = tasks[1]
    assert done["next_occurrence_id"] == following["id"]
    assert following == {
        **following,
        "user_id": alice.sub,
        "title": "Water plants",
        "description": "the ficus too",
        "priority": "high",
        "tags": ["home", "plants"],
        "recurrence": recurrence,
        "due_at": next_due_at,
        "completed": False,
        "completed_at": None,
        "next_occurrence_id": None,
        "created_at": "2026-03-15T14:00:00.000000Z",
        "version": 1,
    }


async def test_a_recurring_task_without_a_due_date_is_due_a_period_after_completion(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    task = await create(client, alice, title="Stretch", recurrence="daily")
    clock.advance(hours=3)
    done = await complete(client, alice, task["id"])
    following = (
        await client.get(f"/api/tasks/{done['next_occurrence_id']}", headers=alice.headers)
    ).json()
    assert following["due_at"] == "2026-03-16T15:00:00.000000Z"


async def test_uncompleting_and_completing_again_does_not_duplicate(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="weekly", due_at="2026-03-20T09:00:00Z")
    url = f"/api/tasks/{task['id']}/complete"
    first = await complete(client, alice, task["id"])
    for _ in range(3):
        await client.patch(url, headers=alice.headers)  # back to pending
        again = await client.patch(url, headers=alice.headers)  # completed again
        assert again.json()["next_occurrence_id"] == first["next_occurrence_id"]
    assert len(await all_tasks(client, alice)) == 2


@pytest.mark.parametrize(
    ("method", "body"),
    [
        (
            "PUT",
            {
                "title": "Pay rent",
                "recurrence": "monthly",
                "completed": True,
                "due_at": "2026-03-01T00:00:00Z",
            },
        ),
        ("PATCH", {"completed": True}),
    ],
)
async def test_put_and_patch_that_complete_schedule_it_too(
    client: httpx.AsyncClient, alice: User, method: str, body: dict[str, Any]
) -> None:
    task = await create(
        client, alice, title="Pay rent", recurrence="monthly", due_at="2026-03-01T00:00:00Z"
    )
    response = await client.request(
        method, f"/api/tasks/{task['id']}", json=body, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    tasks = await all_tasks(client, alice)
    assert len(tasks) == 2
    assert response.json()["next_occurrence_id"] == tasks[1]["id"]
    assert tasks[1]["due_at"] == "2026-04-01T00:00:00.000000Z"

    # Writing "completed" again, or other fields of a completed task, schedules nothing more.
    await client.request(method, f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    await client.patch(f"/api/tasks/{task['id']}", json={"title": "Rent"}, headers=alice.headers)
    assert len(await all_tasks(client, alice)) == 2


async def test_the_values_after_the_change_are_the_ones_carried_over(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client, alice, title="Old", recurrence="none", due_at="2026-03-15T00:00:00Z"
    )
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"title": "Gym", "recurrence": "weekly", "completed": True, "tags": ["health"]},
        headers=alice.headers,
    )
    following = (
        await client.get(
            f"/api/tasks/{response.json()['next_occurrence_id']}", headers=alice.headers
        )
    ).json()
    assert following["title"] == "Gym"
    assert following["recurrence"] == "weekly"
    assert following["tags"] == ["health"]
    assert following["due_at"] == "2026-03-22T00:00:00.000000Z"


async def test_completing_a_task_without_recurrence_schedules_nothing(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, due_at="2026-03-20T09:00:00Z")
    done = await complete(client, alice, task["id"])
    assert done["next_occurrence_id"] is None
    assert len(await all_tasks(client, alice)) == 1


async def test_creating_a_completed_recurring_task_is_not_possible(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await client.post(
        "/api/tasks",
        json={"title": "x", "recurrence": "daily", "completed": True},
        headers=alice.headers,
    )
    assert response.status_code == 422


async def test_each_occurrence_schedules_its_own_successor(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="daily", due_at="2026-03-15T08:00:00Z")
    current = task
    for _ in range(3):
        current = await complete(client, alice, current["id"])
        current = (
            await client.get(f"/api/tasks/{current['next_occurrence_id']}", headers=alice.headers)
        ).json()
    assert current["due_at"] == "2026-03-18T08:00:00.000000Z"
    tasks = await all_tasks(client, alice)
    assert len(tasks) == 4
    assert sum(not t["completed"] for t in tasks) == 1


async def test_deleting_the_next_occurrence_unlinks_it_and_a_later_completion_reschedules(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="daily", due_at="2026-03-15T08:00:00Z")
    done = await complete(client, alice, task["id"])
    await client.delete(f"/api/tasks/{done['next_occurrence_id']}", headers=alice.headers)

    parent = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert parent.json()["next_occurrence_id"] is None
    assert parent.json()["version"] == done["version"] + 1  # its representation changed

    await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    again = await complete(client, alice, task["id"])
    assert again["next_occurrence_id"] is not None
    assert len(await all_tasks(client, alice)) == 2


async def test_deleting_a_completed_task_keeps_its_next_occurrence(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="daily", due_at="2026-03-15T08:00:00Z")
    done = await complete(client, alice, task["id"])
    await client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    following = await client.get(f"/api/tasks/{done['next_occurrence_id']}", headers=alice.headers)
    assert following.status_code == 200


async def test_a_series_ends_at_the_end_of_the_calendar(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, recurrence="monthly", due_at="9999-12-15T00:00:00Z")
    done = await complete(client, alice, task["id"])
    assert done["completed"] is True
    assert done["next_occurrence_id"] is None
    assert len(await all_tasks(client, alice)) == 1
