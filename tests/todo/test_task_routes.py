"""GET, PUT, PATCH, DELETE /api/tasks/{id} and PATCH .../complete: happy and unhappy paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from tests.support.errors import assert_error
from tests.todo.conftest import Snapshot, User, create

ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"title": "replaced"}),
    ("PATCH", "", {"title": "patched"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


# --- GET -----------------------------------------------------------------------------------


async def test_get_returns_the_task_with_its_etag(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice, title="Read me")
    response = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == task
    assert response.headers["etag"] == '"1"'


async def test_get_with_a_matching_if_none_match_is_304(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"
    unchanged = await client.get(url, headers={**alice.headers, "If-None-Match": '"1"'})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == '"1"'
    assert unchanged.content == b""

    await client.patch(url, json={"title": "new"}, headers=alice.headers)
    changed = await client.get(url, headers={**alice.headers, "If-None-Match": '"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'


async def test_head_answers_as_get_without_the_body_304_included(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"

    head = await client.head(url, headers=alice.headers)
    unchanged = await client.head(url, headers={**alice.headers, "If-None-Match": '"1"'})
    missing = await client.head("/api/tasks/999999", headers=alice.headers)

    assert head.status_code == 200
    assert head.headers["etag"] == '"1"'
    assert head.content == b""
    assert unchanged.status_code == 304
    assert missing.status_code == 404
    assert missing.content == b""


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_an_unknown_id_is_404(client: httpx.AsyncClient, alice: User, method: str) -> None:
    body = {"title": "x"} if method in {"PUT", "PATCH"} else None
    response = await client.request(method, "/api/tasks/999999", json=body, headers=alice.headers)
    assert_error(response, 404, "task_not_found")


async def test_completing_an_unknown_id_is_404(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.patch("/api/tasks/999999/complete", headers=alice.headers)
    assert_error(response, 404, "task_not_found")


@pytest.mark.parametrize("task_id", ["abc", "1.5", "0", "-3", "9223372036854775808", "1e3", "%20"])
@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
async def test_a_malformed_id_is_422_on_every_route(
    client: httpx.AsyncClient,
    alice: User,
    snapshot: Snapshot,
    task_id: str,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    await create(client, alice)
    before = await snapshot()
    response = await client.request(
        method, f"/api/tasks/{task_id}{suffix}", json=body, headers=alice.headers
    )
    detail = assert_error(response, 422, "validation_error")["detail"]
    assert detail[0]["loc"] == ["path", "task_id"]
    assert await snapshot() == before


async def test_the_largest_bigint_id_is_a_plain_404(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/tasks/9223372036854775807", headers=alice.headers)
    assert_error(response, 404, "task_not_found")


# --- PUT -----------------------------------------------------------------------------------


async def test_put_replaces_every_writable_field(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    task = await create(client, alice, title="Old", description="old", priority="high", tags=["a"])
    clock.advance(minutes=5)
    body = {
        "title": "New",
        "description": "new",
        "priority": "low",
        "tags": ["B"],
        "due_at": "2026-04-01T09:00:00Z",
        "recurrence": "daily",
        "completed": False,
    }
    response = await client.put(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)

    assert response.status_code == 200
    updated = response.json()
    assert response.headers["etag"] == '"2"'
    assert updated == {
        **task,
        "title": "New",
        "description": "new",
        "priority": "low",
        "tags": ["b"],
        "due_at": "2026-04-01T09:00:00.000000Z",
        "recurrence": "daily",
        "updated_at": "2026-03-15T12:05:00.000000Z",
        "version": 2,
    }


async def test_put_resets_absent_fields_to_their_defaults(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client, alice, title="Old", description="d", priority="high", tags=["a"], due_at=None
    )
    await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)

    response = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "Only a title"}, headers=alice.headers
    )

    replaced = response.json()
    assert replaced["description"] is None
    assert replaced["priority"] == "medium"
    assert replaced["tags"] == []
    assert replaced["completed"] is False
    assert replaced["completed_at"] is None


async def test_put_can_complete_a_task(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    task = await create(client, alice, title="Done soon")
    clock.advance(hours=1)
    response = await client.put(
        f"/api/tasks/{task['id']}",
        json={"title": "Done soon", "completed": True},
        headers=alice.headers,
    )
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] == "2026-03-15T13:00:00.000000Z"


async def test_put_with_the_same_state_does_not_bump_the_version(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice, title="Same", tags=["x"])
    response = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "Same", "tags": ["X"]}, headers=alice.headers
    )
    assert response.json() == task
    assert response.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": None},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "x", "completed": "yes"},
        {"title": "x", "completed": 1},
        {"title": "x", "completed": None},
        {"title": "x", "priority": "HIGH"},
        {"title": "x", "version": 3},
        {"title": "x", "id": 1},
        {"title": "x", "created_at": "2026-01-01T00:00:00Z"},
    ],
    ids=lambda body: repr(body)[:40],
)
async def test_put_refuses_invalid_bodies(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, body: dict[str, Any]
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.put(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


# --- PATCH ---------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_present(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    task = await create(
        client, alice, title="Keep", description="keep", priority="high", tags=["keep"]
    )
    clock.advance(minutes=1)
    response = await client.patch(
        f"/api/tasks/{task['id']}", json={"priority": "low"}, headers=alice.headers
    )
    assert response.status_code == 200
    assert response.json() == {
        **task,
        "priority": "low",
        "updated_at": "2026-03-15T12:01:00.000000Z",
        "version": 2,
    }
    assert response.headers["etag"] == '"2"'


async def test_patch_null_clears_nullable_fields(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(
        client, alice, description="d", tags=["a", "b"], due_at="2026-04-01T00:00:00Z"
    )
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"description": None, "tags": None, "due_at": None},
        headers=alice.headers,
    )
    patched = response.json()
    assert patched["description"] is None
    assert patched["tags"] == []
    assert patched["due_at"] is None


async def test_patch_accepts_merge_patch_content_type(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(client, alice)
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        content=b'{"title": "merged"}',
        headers={**alice.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    assert response.json()["title"] == "merged"


async def test_an_empty_patch_changes_nothing(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice)
    response = await client.patch(f"/api/tasks/{task['id']}", json={}, headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.parametrize(
    "body",
    [
        {"title": None},
        {"priority": None},
        {"completed": None},
        {"recurrence": None},
        {"title": "  "},
        {"title": "x" * 201},
        {"description": "d" * 1001},
        {"tags": ["a"] * 2 + [f"t{i}" for i in range(10)]},
        {"due_at": "next week"},
        {"due_at": "2026-04-01T00:00:00"},
        {"completed": "true"},
        {"priority": "critical"},
        {"owner": "bob"},
        {"user_id": "bob"},
        {"version": 9},
        [{"title": "x"}],
        None,
    ],
    ids=lambda body: repr(body)[:40],
)
async def test_patch_refuses_invalid_bodies(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, body: Any
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_patch_refuses_malformed_json(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        content=b'{"title": ',
        headers={**alice.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


# --- complete ------------------------------------------------------------------------------


async def test_complete_without_a_body_toggles(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}/complete"
    clock.advance(minutes=10)

    done = await client.patch(url, headers=alice.headers)
    assert done.status_code == 200
    assert done.json()["completed"] is True
    assert done.json()["completed_at"] == "2026-03-15T12:10:00.000000Z"
    assert done.headers["etag"] == '"2"'

    undone = await client.patch(url, headers=alice.headers)
    assert undone.json()["completed"] is False
    assert undone.json()["completed_at"] is None
    assert undone.headers["etag"] == '"3"'


@pytest.mark.parametrize("body", [{}, None])
async def test_complete_with_an_empty_object_or_null_toggles(
    client: httpx.AsyncClient, alice: User, body: Any
) -> None:
    task = await create(client, alice)
    response = await client.patch(
        f"/api/tasks/{task['id']}/complete", json=body, headers=alice.headers
    )
    assert response.json()["completed"] is True


async def test_complete_with_a_value_sets_it(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}/complete"
    for _ in range(2):
        response = await client.patch(url, json={"completed": True}, headers=alice.headers)
        assert response.json()["completed"] is True
    # Setting the value it already has is not a change.
    assert response.headers["etag"] == '"2"'
    response = await client.patch(url, json={"completed": False}, headers=alice.headers)
    assert response.json()["completed"] is False


@pytest.mark.parametrize(
    "body", [{"completed": "true"}, {"completed": 1}, {"done": True}, [True], "true"]
)
async def test_complete_refuses_invalid_bodies(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, body: Any
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}/complete", json=body, headers=alice.headers
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


# --- DELETE --------------------------------------------------------------------------------


async def test_delete_is_204_and_the_task_is_gone(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"
    response = await client.delete(url, headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(url, headers=alice.headers), 404, "task_not_found")
    assert_error(await client.delete(url, headers=alice.headers), 404, "task_not_found")


# --- If-Match ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES[1:])
async def test_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
    alice: User,
    snapshot: Snapshot,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    task = await create(client, alice)
    await client.patch(f"/api/tasks/{task['id']}", json={"title": "v2"}, headers=alice.headers)
    before = await snapshot()

    response = await client.request(
        method,
        f"/api/tasks/{task['id']}{suffix}",
        json=body,
        headers={**alice.headers, "If-Match": '"1"'},
    )

    assert_error(response, 412, "precondition_failed")
    assert await snapshot() == before


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES[1:])
@pytest.mark.parametrize("if_match", ['"1"', "*", '"7", "1"', 'W/"9", "1"'])
async def test_a_current_if_match_lets_the_write_through(
    client: httpx.AsyncClient,
    alice: User,
    method: str,
    suffix: str,
    body: Any,
    if_match: str,
) -> None:
    task = await create(client, alice)
    response = await client.request(
        method,
        f"/api/tasks/{task['id']}{suffix}",
        json=body,
        headers={**alice.headers, "If-Match": if_match},
    )
    assert response.status_code in {200, 204}, response.text


async def test_a_weak_etag_never_matches(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice)
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"title": "x"},
        headers={**alice.headers, "If-Match": 'W/"1"'},
    )
    assert_error(response, 412, "precondition_failed")


@pytest.mark.parametrize("if_match", ['"01"', '"001"', '"0001", "7"'])
async def test_an_entity_tag_that_only_reads_as_the_version_never_matches(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, if_match: str
) -> None:
    """The ETag is ``"1"``; ``If-Match`` compares strongly, character by character (RFC 9110),
    as ``If-None-Match`` already did: ``"01"`` is another tag, not another spelling of it."""
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"
    before = await snapshot()
    response = await client.patch(
        url, json={"title": "x"}, headers={**alice.headers, "If-Match": if_match}
    )
    assert_error(response, 412, "precondition_failed")
    assert await snapshot() == before
    unchanged = await client.get(url, headers={**alice.headers, "If-None-Match": if_match})
    assert unchanged.status_code == 200


@pytest.mark.parametrize("if_match", ["1", '"1', "", '"1" "2"'])
async def test_a_malformed_if_match_is_400(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, if_match: str
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"title": "x"},
        headers={**alice.headers, "If-Match": if_match},
    )
    assert_error(response, 400, "invalid_if_match")
    assert await snapshot() == before


async def test_without_if_match_the_last_write_wins(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"
    await client.patch(url, json={"title": "first"}, headers=alice.headers)
    await client.patch(url, json={"title": "second"}, headers=alice.headers)
    response = await client.get(url, headers=alice.headers)
    assert response.json()["title"] == "second"
    assert response.json()["version"] == 3
