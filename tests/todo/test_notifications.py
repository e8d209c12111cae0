"""The user's notifications through the REST API: newest-first keyset pages, read (dismiss),
snooze (a one-off reminder that fires a new notification), and every refusal: another
user's notification, malformed ids and bodies, missing or bad tokens, bad cursors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.db import Database
from tests.support.errors import assert_error
from tests.support.tokens import TestIssuer, bad_tokens
from tests.todo.conftest import NOW, Snapshot, User, create
from todo_service.scheduler import fire_due


async def notify(
    client: httpx.AsyncClient, database: Database, user: User, n: int = 1, **fields: Any
) -> list[dict[str, Any]]:
    """``n`` notifications of ``user``, each of its own task, fired at NOW; newest first."""
    for i in range(n):
        await create(
            client,
            user,
            title=fields.get("title", f"task {i}"),
            due_at=(NOW + timedelta(hours=1)).isoformat(),
            reminders=[{"before_due_minutes": 60}],
        )
    await fire_due(database, now=NOW, batch=100)
    listed = await client.get("/api/notifications", params={"limit": 100}, headers=user.headers)
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()
    return items


async def test_a_fired_reminder_is_listed_with_its_task(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    [notification] = await notify(client, database, alice, title="Call the dentist")
    task = (await client.get("/api/tasks", headers=alice.headers)).json()[0]
    assert notification == {
        "id": notification["id"],
        "kind": "reminder",
        "task_id": task["id"],
        "task_title": "Call the dentist",
        "due_at": "2026-03-15T13:00:00.000000Z",
        "remind_at": "2026-03-15T12:00:00.000000Z",
        "created_at": "2026-03-15T12:00:00.000000Z",
        "read_at": None,
    }


async def test_pages_are_newest_first_with_a_total_and_a_next_link(
    client: httpx.AsyncClient, database: Database, alice: User, bob: User
) -> None:
    everything = await notify(client, database, alice, 5)
    await notify(client, database, bob, 2)
    ids = [n["id"] for n in everything]
    assert ids == sorted(ids, reverse=True)

    seen: list[int] = []
    url: str | None = "/api/notifications?limit=2"
    while url is not None:
        page = await client.get(url, headers=alice.headers)
        assert page.status_code == 200
        assert page.headers["x-total-count"] == "5"
        seen += [n["id"] for n in page.json()]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert seen == ids


async def test_unread_lists_only_what_was_not_read(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    first, second, third = await notify(client, database, alice, 3)
    await client.post(f"/api/notifications/{second['id']}/read", headers=alice.headers)
    unread = await client.get("/api/notifications?unread=true", headers=alice.headers)
    assert [n["id"] for n in unread.json()] == [first["id"], third["id"]]
    assert unread.headers["x-total-count"] == "2"


async def test_read_is_idempotent_and_keeps_the_first_time(
    client: httpx.AsyncClient, database: Database, alice: User, clock: Any
) -> None:
    [notification] = await notify(client, database, alice)
    url = f"/api/notifications/{notification['id']}/read"
    first = await client.post(url, headers=alice.headers)
    assert first.status_code == 200
    assert first.json() == {**notification, "read_at": "2026-03-15T12:00:00.000000Z"}
    clock.advance(minutes=5)
    again = await client.post(url, headers=alice.headers)
    assert again.json() == first.json()


async def test_snooze_reads_it_and_fires_a_new_notification_after_the_minutes(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    [notification] = await notify(client, database, alice)
    snoozed = await client.post(
        f"/api/notifications/{notification['id']}/snooze",
        json={"minutes": 10},
        headers=alice.headers,
    )
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["read_at"] == "2026-03-15T12:00:00.000000Z"

    assert await fire_due(database, now=NOW + timedelta(minutes=9), batch=10) == 0
    assert await fire_due(database, now=NOW + timedelta(minutes=10), batch=10) == 1
    assert await fire_due(database, now=NOW + timedelta(days=1), batch=10) == 0  # one-off
    listed = (await client.get("/api/notifications", headers=alice.headers)).json()
    assert len(listed) == 2
    assert listed[0]["task_id"] == notification["task_id"]
    assert listed[0]["remind_at"] == "2026-03-15T12:10:00.000000Z"
    assert listed[0]["read_at"] is None


async def test_other_users_notification_is_404_and_unchanged(
    client: httpx.AsyncClient, database: Database, alice: User, bob: User, snapshot: Snapshot
) -> None:
    [notification] = await notify(client, database, alice)
    before = await snapshot()
    read = await client.post(f"/api/notifications/{notification['id']}/read", headers=bob.headers)
    assert_error(read, 404, "notification_not_found")
    snoozed = await client.post(
        f"/api/notifications/{notification['id']}/snooze",
        json={"minutes": 5},
        headers=bob.headers,
    )
    assert_error(snoozed, 404, "notification_not_found")
    assert (await client.get("/api/notifications", headers=bob.headers)).json() == []
    assert await snapshot() == before


async def test_a_missing_notification_is_404(client: httpx.AsyncClient, alice: User) -> None:
    for action, body in (("read", None), ("snooze", {"minutes": 5})):
        response = await client.post(
            f"/api/notifications/{2**63 - 1}/{action}", json=body, headers=alice.headers
        )
        assert_error(response, 404, "notification_not_found")


@pytest.mark.parametrize("notification_id", ["0", "-1", "abc", str(2**63), "1.5"])
async def test_a_malformed_notification_id_is_422(
    client: httpx.AsyncClient, alice: User, notification_id: str
) -> None:
    response = await client.post(
        f"/api/notifications/{notification_id}/read", headers=alice.headers
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"minutes": 0},
        {"minutes": 1441},
        {"minutes": "5"},
        {"minutes": 5.5},
        {"minutes": True},
        {"minutes": None},
        {},
        {"minutes": 5, "until": "tomorrow"},
        [5],
    ],
)
async def test_a_malformed_snooze_is_422_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, alice: User, snapshot: Snapshot, body: Any
) -> None:
    [notification] = await notify(client, database, alice)
    before = await snapshot()
    response = await client.post(
        f"/api/notifications/{notification['id']}/snooze", json=body, headers=alice.headers
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_the_snooze_boundaries_are_accepted(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    [notification] = await notify(client, database, alice)
    for minutes in (1, 1440):
        response = await client.post(
            f"/api/notifications/{notification['id']}/snooze",
            json={"minutes": minutes},
            headers=alice.headers,
        )
        assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    ["cursor=not-a-cursor", "cursor=eyJpIjowfQ", "cursor=eyJ4IjoxfQ"],
)
async def test_a_bad_cursor_is_400(client: httpx.AsyncClient, alice: User, query: str) -> None:
    response = await client.get(f"/api/notifications?{query}", headers=alice.headers)
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "unread=maybe"])
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, alice: User, query: str
) -> None:
    response = await client.get(f"/api/notifications?{query}", headers=alice.headers)
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/notifications"),
        ("GET", "/api/notifications/stream"),
        ("POST", "/api/notifications/1/read"),
        ("POST", "/api/notifications/1/snooze"),
    ],
)
async def test_every_route_refuses_a_missing_expired_or_forged_token(
    client: httpx.AsyncClient, issuer: TestIssuer, method: str, path: str
) -> None:
    response = await client.request(method, path, json={"minutes": 5})
    assert_error(response, 401)
    for headers in bad_tokens(issuer).values():
        response = await client.request(method, path, json={"minutes": 5}, headers=headers)
        assert_error(response, 401)


async def test_a_deleted_tasks_notifications_go_with_it(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    [notification] = await notify(client, database, alice)
    await client.delete(f"/api/tasks/{notification['task_id']}", headers=alice.headers)
    assert (await client.get("/api/notifications", headers=alice.headers)).json() == []
