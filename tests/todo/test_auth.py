"""Every task route verifies the bearer token itself: anything but a valid token is a 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from shared.tokens import IssuerKeys, StaticKeySource, TokenVerifier
from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.support.tokens import TestIssuer, bad_tokens
from tests.todo.conftest import Snapshot, User, create
from todo_service.app import create_app
from todo_service.settings import TodoSettings

ROUTES = [
    ("GET", "/api/tasks", None),
    ("POST", "/api/tasks", {"title": "x"}),
    ("GET", "/api/tasks/{id}", None),
    ("PUT", "/api/tasks/{id}", {"title": "x"}),
    ("PATCH", "/api/tasks/{id}", {"title": "x"}),
    ("PATCH", "/api/tasks/{id}/complete", None),
    ("DELETE", "/api/tasks/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("kind", sorted(bad_tokens(TestIssuer())))
async def test_a_missing_or_bad_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient,
    issuer: TestIssuer,
    alice: User,
    snapshot: Snapshot,
    method: str,
    path: str,
    body: Any,
    kind: str,
) -> None:
    task = await create(client, alice)
    before = await snapshot()
    response = await client.request(
        method,
        path.format(id=task["id"]),
        json=body,
        headers=bad_tokens(issuer)[kind],
    )
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await snapshot() == before


@pytest.fixture
async def interop_client(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[tuple[httpx.AsyncClient, TestIssuer]]:
    """The service trusting our issuer and a second one (say, a Better Auth deployment)."""
    other = TestIssuer(issuer="https://app.example.com", audience="https://app.example.com")
    verifier = TokenVerifier(
        [
            IssuerKeys(
                issuer.issuer, issuer.audience, "EdDSA", StaticKeySource(issuer.keys.public_keys())
            ),
            IssuerKeys(
                other.issuer, other.audience, "EdDSA", StaticKeySource(other.keys.public_keys())
            ),
        ]
    )
    app = create_app(todo_settings, db=database, verifier=verifier, clock=clock)
    async with serve(app) as client:
        yield client, other


async def test_a_token_of_another_trusted_issuer_works_with_its_opaque_subject(
    interop_client: tuple[httpx.AsyncClient, TestIssuer],
) -> None:
    client, other = interop_client
    headers = other.auth("ba_user_01HXYZ")
    created = await client.post("/api/tasks", json={"title": "from the web app"}, headers=headers)
    assert created.status_code == 201
    assert created.json()["user_id"] == "ba_user_01HXYZ"
    listed = await client.get("/api/tasks", headers=headers)
    assert [task["id"] for task in listed.json()] == [created.json()["id"]]


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/tasks"), ("POST", "/api/mcp")])
async def test_two_authorization_headers_are_400_and_change_nothing(
    client: httpx.AsyncClient,
    alice: User,
    bob: User,
    snapshot: Snapshot,
    method: str,
    path: str,
) -> None:
    """Two users' tokens in one request: which one counts is not for the reader to guess."""
    await create(client, alice)
    before = await snapshot()
    headers = [("Authorization", alice.headers["Authorization"])]
    headers.append(("Authorization", bob.headers["Authorization"]))
    response = await client.request(method, path, json={}, headers=headers)
    assert_error(response, 400, "duplicate_header")
    assert await snapshot() == before
