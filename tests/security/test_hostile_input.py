"""Odd and hostile input the fuzzers found or suggested, pinned as plain tests on the real
processes: each is refused with the right status and the envelope, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.stack import Stack
from tests.e2e.users import User
from tests.security.conftest import snapshot
from tests.support.errors import assert_error

pytestmark = pytest.mark.asyncio(loop_scope="session")

NUL = "\u0000"
# PostgreSQL cannot store U+0000 in text: every such request is a 422, never a 500.
NUL_TEXT: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("todo", "POST", "/api/tasks", {"title": f"nul {NUL} byte"}),
    ("todo", "POST", "/api/tasks", {"title": "fine", "description": f"{NUL}"}),
    ("todo", "POST", "/api/tasks", {"title": "fine", "tags": [f"tag{NUL}"]}),
    ("todo", "GET", "/api/tasks?q=%00", None),
    ("todo", "GET", "/api/tasks?tag=%00", None),
    ("chat", "POST", "/api/chat", {"message": f"hello {NUL}"}),
    ("auth", "PATCH", "/api/auth/me", {"name": f"Ann{NUL}"}),
]


@pytest.mark.parametrize("place", ["service", "gateway"])
@pytest.mark.parametrize(
    ("service", "method", "path", "body"),
    NUL_TEXT,
    ids=[f"{s} {m} {p} {b}" for s, m, p, b in NUL_TEXT],
)
async def test_nul_in_text_is_422_and_stores_nothing(
    stack: Stack,
    engine: AsyncEngine,
    intruder: User,
    place: str,
    service: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await snapshot(engine)
    base = stack.url("gateway" if place == "gateway" else service)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.request(method, path, json=body, headers=intruder.headers)
    assert_error(response, 422)
    assert response.json()["code"] in ("invalid_character", "validation_error")
    assert await snapshot(engine) == before


async def test_nul_in_a_new_accounts_name_is_422(stack: Stack, engine: AsyncEngine) -> None:
    before = await snapshot(engine)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as client:
        response = await client.post(
            "/api/auth/register",
            json={"email": "nul@example.com", "password": "long enough pass", "name": NUL},
        )
    assert_error(response, 422)
    assert await snapshot(engine) == before


@pytest.mark.parametrize("due", ["1700000000", "0.5", "1700000000.25"])
async def test_a_timestamp_must_be_a_date_not_epoch_seconds(
    gateway: httpx.AsyncClient, engine: AsyncEngine, intruder: User, due: str
) -> None:
    before = await snapshot(engine)
    created = await gateway.post(
        "/api/tasks", json={"title": "epoch", "due_at": due}, headers=intruder.headers
    )
    listed = await gateway.get("/api/tasks", params={"due_before": due}, headers=intruder.headers)
    assert_error(created, 422, "validation_error")
    assert_error(listed, 422, "validation_error")
    assert await snapshot(engine) == before


@pytest.mark.parametrize(
    ("service", "method", "path", "allow"),
    [
        ("todo", "POST", "/api/tasks/1", "GET, HEAD, PUT, PATCH, DELETE"),
        ("todo", "PUT", "/api/tasks", "GET, HEAD, POST"),
        ("auth", "GET", "/api/auth/login", "POST"),
        ("auth", "PUT", "/api/auth/me", "GET, HEAD, PATCH, DELETE"),
        ("chat", "PATCH", "/api/conversations/1", "GET, HEAD, DELETE"),
    ],
)
@pytest.mark.parametrize("place", ["service", "gateway"])
async def test_405_allow_names_every_method_of_the_path(
    stack: Stack, intruder: User, place: str, service: str, method: str, path: str, allow: str
) -> None:
    base = stack.url("gateway" if place == "gateway" else service)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.request(method, path, headers=intruder.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
