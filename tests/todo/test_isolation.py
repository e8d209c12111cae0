"""Another user's task does not exist for you: 404 on every route, absent from every list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.errors import assert_error
from tests.todo.conftest import Snapshot, User, create

ATTEMPTS = [
    ("GET", "", None, {}),
    ("GET", "", None, {"If-None-Match": '"1"'}),
    ("PUT", "", {"title": "mine now"}, {}),
    ("PUT", "", {"title": "mine now"}, {"If-Match": '"1"'}),
    ("PATCH", "", {"title": "mine now"}, {}),
    ("PATCH", "", {"completed": True}, {"If-Match": '"1"'}),
    ("PATCH", "/complete", None, {}),
    ("PATCH", "/complete", {"completed": True}, {"If-Match": '"1"'}),
    ("DELETE", "", None, {}),
    ("DELETE", "", None, {"If-Match": '"1"'}),
    # A stale If-Match must not reveal the task either: still 404, never 412.
    ("DELETE", "", None, {"If-Match": '"99"'}),
]


@pytest.mark.parametrize(("method", "suffix", "body", "extra"), ATTEMPTS)
async def test_other_users_task_is_404_and_unchanged(
    client: httpx.AsyncClient,
    alice: User,
    bob: User,
    snapshot: Snapshot,
    method: str,
    suffix: str,
    body: Any,
    extra: dict[str, str],
) -> None:
    task = await create(client, alice, title="Alice's", tags=["private"])
    before = await snapshot()

    response = await client.request(
        method, f"/api/tasks/{task['id']}{suffix}", json=body, headers={**bob.headers, **extra}
    )

    assert_error(response, 404, "task_not_found")
    assert await snapshot() == before
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json() == task


async def test_other_users_task_and_a_missing_one_answer_alike(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    task = await create(client, alice)
    foreign = await client.get(f"/api/tasks/{task['id']}", headers=bob.headers)
    missing = await client.get("/api/tasks/987654321", headers=bob.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"] == missing.json()["detail"]
    assert foreign.json()["code"] == missing.json()["code"]


async def test_idempotent_create_cannot_replay_another_users_task(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    await client.post(
        "/api/tasks",
        json={"title": "secret"},
        headers={**alice.headers, "Idempotency-Key": "k1"},
    )
    response = await client.post(
        "/api/tasks", json={"title": "secret"}, headers={**bob.headers, "Idempotency-Key": "k1"}
    )
    assert response.json()["user_id"] == bob.sub


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "pending"},
        {"status": "completed"},
        {"q": "shared"},
        {"tag": "common"},
        {"priority": "high"},
        {"due_before": "2030-01-01T00:00:00Z"},
        {"overdue": "true"},
        {"sort": "title"},
        {"sort": "due", "order": "desc"},
    ],
    ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()) or "no-filter",
)
async def test_lists_searches_and_counts_never_include_other_users(
    client: httpx.AsyncClient, alice: User, bob: User, params: dict[str, str]
) -> None:
    fields = {
        "title": "shared words",
        "tags": ["common"],
        "priority": "high",
        "due_at": "2026-03-01T00:00:00Z",
    }
    mine = [await create(client, alice, **fields) for _ in range(2)]
    theirs = [await create(client, bob, **fields) for _ in range(3)]
    await client.patch(f"/api/tasks/{mine[0]['id']}/complete", headers=alice.headers)
    await client.patch(f"/api/tasks/{theirs[0]['id']}/complete", headers=bob.headers)

    seen: list[dict[str, Any]] = []
    url: str | None = "/api/tasks"
    query: dict[str, Any] | None = {**params, "limit": 1}
    for _ in range(10):
        response = await client.get(url, params=query, headers=alice.headers)
        assert response.status_code == 200, response.text
        total = int(response.headers["x-total-count"])
        seen += response.json()
        link = response.headers.get("link")
        if link is None:
            break
        url, query = link[1 : link.index(">")], None

    assert {task["user_id"] for task in seen} <= {alice.sub}
    assert total == len(seen)
    assert {task["id"] for task in seen} <= {task["id"] for task in mine}
