"""POST /api/tasks: defaults, normalisation, boundaries, bad input, idempotent retries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from tests.support.errors import assert_error
from tests.todo.conftest import Snapshot, User, create


async def test_create_returns_201_with_location_etag_and_defaults(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await client.post("/api/tasks", json={"title": "Buy milk"}, headers=alice.headers)

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert response.headers["etag"] == '"1"'
    assert task == {
        "id": task["id"],
        "user_id": alice.sub,
        "title": "Buy milk",
        "description": None,
        "completed": False,
        "completed_at": None,
        "priority": "medium",
        "tags": [],
        "due_at": None,
        "recurrence": "none",
        "time_zone": None,
        "next_occurrence_id": None,
        "created_at": "2026-03-15T12:00:00.000000Z",
        "updated_at": "2026-03-15T12:00:00.000000Z",
        "version": 1,
        "reminders": [],
    }
    fetched = await client.get(response.headers["location"], headers=alice.headers)
    assert fetched.json() == task


async def test_create_normalises_title_tags_and_due_date(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        title="  Call mom  ",
        description="about Sunday",
        priority="high",
        tags=["Family", " family ", "PHONE", "phone"],
        due_at="2026-03-20T10:30:00+02:00",
        recurrence="weekly",
    )

    assert task["title"] == "Call mom"
    assert task["tags"] == ["family", "phone"]
    assert task["due_at"] == "2026-03-20T08:30:00.000000Z"
    assert task["priority"] == "high"
    assert task["recurrence"] == "weekly"
    assert task["description"] == "about Sunday"


async def test_tags_are_one_unicode_form_so_variants_are_one_tag(
    client: httpx.AsyncClient, alice: User
) -> None:
    # "café" written with a combining accent (NFD, as macOS and some keyboards send it) and
    # precomposed (NFC) look the same: they are one tag, found by either spelling, and the
    # 30-character bound counts characters as people see them.
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    task = await create(
        client, alice, title="Beans", tags=[decomposed, composed.upper(), "e\u0301" * 30]
    )
    assert task["tags"] == [composed, "\u00e9" * 30]

    for spelling in (decomposed, composed):
        listed = await client.get("/api/tasks", params={"tag": spelling}, headers=alice.headers)
        assert [found["id"] for found in listed.json()] == [task["id"]]


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "x" * 200},
        {"title": "x", "description": "d" * 1000},
        {"title": "x", "description": ""},
        {"title": "x", "tags": [f"t{i}" for i in range(10)]},
        {"title": "x", "tags": ["t" * 30]},
        # Eleven given, ten once duplicates are dropped.
        {"title": "x", "tags": [*[f"t{i}" for i in range(10)], "T0"]},
        {"title": "x", "due_at": "2026-03-15T12:00:00Z"},
    ],
    ids=[
        "title-200",
        "description-1000",
        "description-empty",
        "ten-tags",
        "tag-30",
        "eleven-tags-ten-distinct",
        "due-z",
    ],
)
async def test_create_accepts_boundary_values(
    client: httpx.AsyncClient, alice: User, fields: dict[str, Any]
) -> None:
    response = await client.post("/api/tasks", json=fields, headers=alice.headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": None},
        {"title": 42},
        {"title": ["a"]},
        {"title": "x", "description": "d" * 1001},
        {"title": "x", "description": 7},
        {"title": "x", "priority": "urgent"},
        {"title": "x", "priority": None},
        {"title": "x", "recurrence": "yearly"},
        {"title": "x", "tags": "work"},
        {"title": "x", "tags": [""]},
        {"title": "x", "tags": ["t" * 31]},
        {"title": "x", "tags": [1]},
        {"title": "x", "tags": [f"t{i}" for i in range(11)]},
        {"title": "x", "due_at": "2026-03-20T10:00:00"},
        {"title": "x", "due_at": "tomorrow"},
        {"title": "x", "due_at": 1767225600},
        {"title": "x", "completed": True},
        {"title": "x", "id": 5},
        {"title": "x", "user_id": "someone-else"},
        {"title": "x", "colour": "red"},
        [{"title": "x"}],
        "a title",
    ],
    ids=lambda body: repr(body)[:40],
)
async def test_create_refuses_invalid_bodies_and_changes_nothing(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, body: Any
) -> None:
    before = await snapshot()
    response = await client.post("/api/tasks", json=body, headers=alice.headers)
    detail = assert_error(response, 422, "validation_error")["detail"]
    assert isinstance(detail, list)
    assert all(error["loc"][0] == "body" for error in detail)
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"title": "x"', "application/json"),
        (b"title=x", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
    ids=["truncated", "not-json", "not-utf8"],
)
async def test_create_refuses_malformed_json(
    client: httpx.AsyncClient,
    alice: User,
    snapshot: Snapshot,
    content: bytes,
    content_type: str,
) -> None:
    before = await snapshot()
    response = await client.post(
        "/api/tasks",
        content=content,
        headers={**alice.headers, "Content-Type": content_type},
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_create_refuses_an_oversized_body(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    before = await snapshot()
    body = b'{"title": "x", "description": "' + b"d" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/tasks", content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    assert await snapshot() == before


# --- Idempotency-Key -----------------------------------------------------------------------


async def test_same_key_and_body_replays_the_first_answer(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock, snapshot: Snapshot
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "retry-1"}
    first = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)
    assert first.status_code == 201
    after_first = await snapshot()

    clock.advance(hours=23)
    again = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)

    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert await snapshot() == after_first


async def test_replay_returns_the_original_answer_even_after_the_task_changed(
    client: httpx.AsyncClient, alice: User
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "retry-2"}
    first = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)
    await client.patch(first.headers["location"], json={"title": "Paid"}, headers=alice.headers)

    again = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)

    assert again.json() == first.json()


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "retry-3"}
    await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)
    before = await snapshot()

    response = await client.post("/api/tasks", json={"title": "Pay bills"}, headers=headers)

    assert_error(response, 422, "idempotency_key_reused")
    assert await snapshot() == before


async def test_a_body_equal_after_validation_counts_as_the_same(
    client: httpx.AsyncClient, alice: User
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "retry-4"}
    first = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)
    again = await client.post(
        "/api/tasks", json={"title": " Pay rent ", "priority": "medium"}, headers=headers
    )
    assert again.json()["id"] == first.json()["id"]


async def test_an_expired_key_creates_a_new_task(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "retry-5"}
    first = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)

    clock.advance(hours=24, seconds=1)
    later = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)

    assert later.status_code == 201
    assert later.json()["id"] != first.json()["id"]
    # The key now belongs to the new task.
    again = await client.post("/api/tasks", json={"title": "Pay rent"}, headers=headers)
    assert again.json()["id"] == later.json()["id"]


async def test_keys_are_per_user(client: httpx.AsyncClient, alice: User, bob: User) -> None:
    mine = await client.post(
        "/api/tasks",
        json={"title": "Same"},
        headers={**alice.headers, "Idempotency-Key": "shared-key"},
    )
    theirs = await client.post(
        "/api/tasks",
        json={"title": "Different"},
        headers={**bob.headers, "Idempotency-Key": "shared-key"},
    )
    assert theirs.status_code == 201
    assert theirs.json()["user_id"] == bob.sub
    assert theirs.json()["id"] != mine.json()["id"]


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "naïve"])
async def test_a_malformed_idempotency_key_is_refused(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, key: str
) -> None:
    before = await snapshot()
    response = await client.post(
        "/api/tasks",
        json={"title": "x"},
        headers=[*alice.headers.items(), ("Idempotency-Key", key.encode())],
    )
    assert_error(response, 422, "validation_error")
    assert await snapshot() == before


async def test_without_a_key_every_post_creates_a_task(
    client: httpx.AsyncClient, alice: User
) -> None:
    first = await create(client, alice, title="Twice")
    second = await create(client, alice, title="Twice")
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_not_declared_as_json_is_415_and_stores_nothing(
    client: httpx.AsyncClient, alice: User, snapshot: Snapshot, content_type: str | None
) -> None:
    # The body is valid JSON: what is wrong is its declared type, not its content (a 422
    # would say "not an object" about a body that is one).
    headers = (
        alice.headers if content_type is None else {**alice.headers, "Content-Type": content_type}
    )
    before = await snapshot()
    response = await client.post("/api/tasks", content=b'{"title": "x"}', headers=headers)
    completed = await client.patch("/api/tasks/1/complete", content=b"{}", headers=headers)

    assert_error(response, 415, "unsupported_media_type")
    assert_error(completed, 415, "unsupported_media_type")
    assert await snapshot() == before
