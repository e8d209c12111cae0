"""``/api/webhooks``: registration, the secret shown once and sealed at rest, the per-user
bound, user scoping, validation, and a webhook's deliveries in keyset pages."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from shared.sealing import SecretBox
from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.support.tokens import TestIssuer, bad_tokens
from tests.todo.conftest import User
from tests.todo.webhooks.conftest import PUBLIC_URL, TableDns, register
from todo_service.app import create_app
from todo_service.models import WEBHOOK_URL_MAX, WEBHOOKS_PER_USER
from todo_service.settings import TodoSettings
from todo_service.webhooks.schemas import EVENT_TYPES


async def test_registration_answers_the_secret_once_and_defaults_to_every_event(
    hooks: httpx.AsyncClient, alice: User
) -> None:
    response = await hooks.post("/api/webhooks", json={"url": PUBLIC_URL}, headers=alice.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "url", "events", "secret", "created_at", "status"}
    assert created["url"] == PUBLIC_URL
    assert created["events"] == list(EVENT_TYPES)
    assert created["status"] == "active"
    assert created["created_at"] == "2026-03-15T12:00:00.000000Z"
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) == 50
    assert response.headers["location"] == f"/api/webhooks/{created['id']}"
    assert response.headers["cache-control"] == "no-store"

    one = await hooks.get(f"/api/webhooks/{created['id']}", headers=alice.headers)
    listed = await hooks.get("/api/webhooks", headers=alice.headers)
    for shown in (one.json(), *listed.json()):
        assert "secret" not in shown
        assert created["secret"] not in json.dumps(shown)
    assert one.json() == {k: v for k, v in created.items() if k != "secret"}


async def test_the_secret_is_stored_sealed_never_in_clear(
    hooks: httpx.AsyncClient,
    alice: User,
    box: SecretBox,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = await register(hooks, alice)
    async with sessionmaker() as session:
        row = (
            await (await session.connection()).execute(
                text("SELECT * FROM todo.webhooks WHERE id = :id"), {"id": created["id"]}
            )
        ).one()
    stored = repr(row._asdict())
    secret = created["secret"]
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored
    assert box.open(bytes(row.secret_sealed)) == secret


async def test_each_registration_gets_its_own_secret(hooks: httpx.AsyncClient, alice: User) -> None:
    first, second = await register(hooks, alice), await register(hooks, alice)
    assert first["secret"] != second["secret"]


async def test_events_are_a_subset_of_the_known_types(
    hooks: httpx.AsyncClient, alice: User
) -> None:
    created = await register(hooks, alice, events=["task.completed", "reminder.due"])
    assert created["events"] == ["task.completed", "reminder.due"]


async def test_other_users_webhook_is_404_everywhere(
    hooks: httpx.AsyncClient, alice: User, bob: User, webhook_rows: Any
) -> None:
    created = await register(hooks, alice)
    before = await webhook_rows()
    path = f"/api/webhooks/{created['id']}"
    assert_error(await hooks.get(path, headers=bob.headers), 404, "webhook_not_found")
    assert_error(await hooks.delete(path, headers=bob.headers), 404, "webhook_not_found")
    assert_error(
        await hooks.get(f"{path}/deliveries", headers=bob.headers), 404, "webhook_not_found"
    )
    assert (await hooks.get("/api/webhooks", headers=bob.headers)).json() == []
    assert await webhook_rows() == before


async def test_delete_removes_the_webhook_then_it_is_404(
    hooks: httpx.AsyncClient, alice: User
) -> None:
    created = await register(hooks, alice)
    path = f"/api/webhooks/{created['id']}"
    deleted = await hooks.delete(path, headers=alice.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await hooks.get(path, headers=alice.headers), 404, "webhook_not_found")
    assert_error(await hooks.delete(path, headers=alice.headers), 404, "webhook_not_found")


async def test_an_eleventh_webhook_is_refused_and_stores_nothing(
    hooks: httpx.AsyncClient, alice: User, bob: User, webhook_rows: Any
) -> None:
    for _ in range(WEBHOOKS_PER_USER):
        await register(hooks, alice)
    before = await webhook_rows()
    refused = await hooks.post("/api/webhooks", json={"url": PUBLIC_URL}, headers=alice.headers)
    assert_error(refused, 409, "webhook_limit_reached")
    assert await webhook_rows() == before
    # The bound is per user.
    await register(hooks, bob)


async def test_concurrent_registrations_never_pass_the_bound(
    todo_settings: TodoSettings,
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    alice: User,
) -> None:
    import asyncio

    app = create_app(
        todo_settings,
        db=committed_database,
        verifier=issuer.verifier(),
        clock=clock,
        resolver=dns,
        webhook_box=box,
    )
    async with serve(app) as client:
        answers = await asyncio.gather(
            *(
                client.post("/api/webhooks", json={"url": PUBLIC_URL}, headers=alice.headers)
                for _ in range(WEBHOOKS_PER_USER + 5)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] * WEBHOOKS_PER_USER + [409] * 5
        assert len((await client.get("/api/webhooks", headers=alice.headers)).json()) == 10


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": PUBLIC_URL, "secret": "mine"},
        {"url": PUBLIC_URL, "status": "active"},
        {"url": 42},
        {"url": ""},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "events": ["task.exploded"]},
        {"url": PUBLIC_URL, "events": ["task.created", "task.created"]},
        {"url": PUBLIC_URL, "events": "task.created"},
        {"url": PUBLIC_URL, "events": None},
        {"url": "https://hooks.example.com/" + "a" * (WEBHOOK_URL_MAX - 25)},
    ],
    ids=[
        "no-url",
        "unknown-field-secret",
        "unknown-field-status",
        "url-not-string",
        "url-empty",
        "events-empty",
        "events-unknown-type",
        "events-duplicate",
        "events-not-list",
        "events-null",
        "url-one-over-the-bound",
    ],
)
async def test_malformed_registrations_are_422_and_store_nothing(
    hooks: httpx.AsyncClient, alice: User, webhook_rows: Any, body: dict[str, Any]
) -> None:
    before = await webhook_rows()
    response = await hooks.post("/api/webhooks", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error")
    assert await webhook_rows() == before


async def test_a_url_of_exactly_the_bound_is_accepted(
    hooks: httpx.AsyncClient, alice: User
) -> None:
    url = "https://hooks.example.com/" + "a" * (WEBHOOK_URL_MAX - 26)
    assert len(url) == WEBHOOK_URL_MAX
    assert (await register(hooks, alice, url))["url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/" + "\u00e9" * 400,  # each %C3%A9 once encoded
        "https://hooks.example.com/?q=" + "<" * (WEBHOOK_URL_MAX // 2),
    ],
    ids=["path", "query"],
)
async def test_a_url_over_the_bound_once_encoded_is_refused_not_a_500(
    hooks: httpx.AsyncClient, alice: User, webhook_rows: Any, url: str
) -> None:
    # Within the bound as sent, over it as stored (the HTTP client's encoding): the
    # database's check refused the row, a 500 whose logged traceback held the row.
    assert len(url) <= WEBHOOK_URL_MAX
    response = await hooks.post("/api/webhooks", json={"url": url}, headers=alice.headers)
    body = assert_error(response, 422, "webhook_url_invalid_url")
    assert str(WEBHOOK_URL_MAX) in body["detail"]
    assert await webhook_rows() == []


async def test_a_body_that_is_not_json_is_422(hooks: httpx.AsyncClient, alice: User) -> None:
    response = await hooks.post(
        "/api/webhooks",
        content=b"url=https://x",
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 422)


async def test_an_oversized_body_is_413(hooks: httpx.AsyncClient, alice: User) -> None:
    body = json.dumps({"url": PUBLIC_URL, "pad": "x" * (2 * 1024 * 1024)})
    response = await hooks.post(
        "/api/webhooks",
        content=body,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("kind", list(bad_tokens(TestIssuer())))
async def test_every_route_refuses_a_bad_token(
    hooks: httpx.AsyncClient, issuer: TestIssuer, alice: User, kind: str
) -> None:
    created = await register(hooks, alice)
    headers = bad_tokens(issuer)[kind]
    path = f"/api/webhooks/{created['id']}"
    for method, url in (
        ("POST", "/api/webhooks"),
        ("GET", "/api/webhooks"),
        ("GET", path),
        ("DELETE", path),
        ("GET", f"{path}/deliveries"),
    ):
        body = {"url": PUBLIC_URL} if method == "POST" else None
        response = await hooks.request(method, url, json=body, headers=headers)
        assert_error(response, 401)
    assert (await hooks.get(path, headers=alice.headers)).status_code == 200


@pytest.mark.parametrize("webhook_id", ["0", "-1", "abc", str(2**63)])
async def test_a_malformed_webhook_id_is_422(
    hooks: httpx.AsyncClient, alice: User, webhook_id: str
) -> None:
    response = await hooks.get(f"/api/webhooks/{webhook_id}", headers=alice.headers)
    assert_error(response, 422, "validation_error")


async def test_an_unknown_webhook_is_404(hooks: httpx.AsyncClient, alice: User) -> None:
    assert_error(await hooks.get("/api/webhooks/999999", headers=alice.headers), 404)


async def test_production_without_keys_has_no_webhooks(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    dns: TableDns,
    alice: User,
    webhook_rows: Any,
) -> None:
    settings = TodoSettings(
        _env_file=None, environment="production", database_url=todo_settings.database_url
    )
    app = create_app(settings, db=database, verifier=issuer.verifier(), resolver=dns)
    async with serve(app) as client:
        response = await client.post(
            "/api/webhooks", json={"url": PUBLIC_URL}, headers=alice.headers
        )
    assert_error(response, 503, "webhooks_unavailable")
    assert await webhook_rows() == []


# --- deliveries, in pages -----------------------------------------------------------------


async def add_deliveries(
    sessionmaker: async_sessionmaker[AsyncSession], webhook_id: int, user: str, n: int
) -> None:
    async with sessionmaker() as session:
        await (await session.connection()).execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at)"
                " SELECT :w, :u, g::text, 'task.created', '{}', 'pending', now(), now()"
                " FROM generate_series(1, :n) AS g"
            ),
            {"w": webhook_id, "u": user, "n": n},
        )
        await session.commit()


async def test_deliveries_come_newest_first_in_keyset_pages(
    hooks: httpx.AsyncClient, alice: User, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(hooks, alice)
    await add_deliveries(sessionmaker, created["id"], alice.sub, 5)
    path = f"/api/webhooks/{created['id']}/deliveries?limit=2"
    seen: list[int] = []
    pages = 0
    while path:
        response = await hooks.get(path, headers=alice.headers)
        assert response.status_code == 200, response.text
        assert response.headers["x-total-count"] == "5"
        page = response.json()
        seen += [d["id"] for d in page]
        pages += 1
        link = response.headers.get("link")
        path = link[1 : link.index(">")] if link else ""
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 5
    first = await hooks.get(f"/api/webhooks/{created['id']}/deliveries", headers=alice.headers)
    delivery = first.json()[0]
    assert set(delivery) == {
        "id", "event_id", "event_type", "status", "attempts", "last_status_code",
        "last_error", "next_attempt_at", "created_at", "delivered_at",
    }  # fmt: skip
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0


@pytest.mark.parametrize(
    "query", ["cursor=!!", "cursor=WzFd", "cursor=WyJ4Il0", "limit=0", "limit=101"]
)
async def test_a_bad_deliveries_query_is_refused(
    hooks: httpx.AsyncClient, alice: User, query: str
) -> None:
    created = await register(hooks, alice)
    response = await hooks.get(
        f"/api/webhooks/{created['id']}/deliveries?{query}", headers=alice.headers
    )
    if query.startswith("limit"):
        assert_error(response, 422, "validation_error")
    elif query == "cursor=WzFd":  # [1]: a valid cursor, past every row
        assert response.status_code == 200
        assert response.json() == []
    else:
        assert_error(response, 400, "invalid_cursor")
