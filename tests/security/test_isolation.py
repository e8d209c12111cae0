"""Another user's ids get a 404 and change nothing, whatever route, port or header.

Generated from the route table: every user route that names a resource (in its path or its
body) is called by an intruder with the owner's fresh ids, at the gateway and at the
service's own port, with and without a spoofed ``X-User-Id`` naming the owner. The whole
database is compared before and after, and the owner still has the resource. The MCP tools
are attacked the same way, tool by tool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.stack import Stack
from tests.e2e.users import User, register_and_login
from tests.security.conftest import create_resources, snapshot
from tests.security.routes import (
    TABLE,
    USER,
    Route,
    all_service_routes,
    canonical,
    compatibility_routes,
    fill,
    placeholders,
    through_gateway,
)
from tests.support.errors import assert_error

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICE_ROUTES = all_service_routes()
NAMING = sorted(r for r in SERVICE_ROUTES if not TABLE.get(r, USER).public and placeholders(r))
AT_GATEWAY = [r for r in NAMING if through_gateway(r)] + sorted(
    r for r in compatibility_routes(SERVICE_ROUTES) if placeholders(r)
)
CASES = [
    (place, route, spoof)
    for place, routes in (("service", NAMING), ("gateway", AT_GATEWAY))
    for route in routes
    for spoof in (False, True)
]
# Where the owner reads each kind of resource back.
READ_BACK = {
    "task_id": "/api/tasks/{task_id}",
    "conversation_id": "/api/conversations/{conversation_id}",
    "webhook_id": "/api/webhooks/{webhook_id}",
    "notification_id": "/api/notifications?limit=100",
}


def _request(route: Route, values: dict[str, Any]) -> tuple[str, str, Any, dict[str, str]]:
    guard = TABLE.get(canonical(route), USER)
    return route.method, fill(route.path, values), fill(guard.body, values), dict(guard.headers)


@pytest.mark.parametrize(
    ("place", "route", "spoof"),
    CASES,
    ids=[f"{p}: {r}{' + X-User-Id' if s else ''}" for p, r, s in CASES],
)
async def test_another_users_ids_are_404_and_change_nothing(
    stack: Stack,
    engine: AsyncEngine,
    gateway: httpx.AsyncClient,
    owner: User,
    intruder: User,
    place: str,
    route: Route,
    spoof: bool,
) -> None:
    owned = await create_resources(
        gateway, owner, placeholders(route), database_url=stack.database_url
    )
    method, path, body, headers = _request(route, {**owned, "user_id": intruder.id})
    headers.update(intruder.headers)
    if spoof:
        headers["X-User-Id"] = owner.id
    before = await snapshot(engine)

    base = stack.url("gateway" if place == "gateway" else route.service)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.request(method, path, json=body, headers=headers)

    assert_error(response, 404)
    assert await snapshot(engine) == before
    for name, resource_id in owned.items():
        read = await gateway.get(fill(READ_BACK[name], {name: resource_id}), headers=owner.headers)
        assert read.status_code == 200, read.text
        if name == "notification_id":  # read back from the owner's list
            assert resource_id in [n["id"] for n in read.json()]


COMPAT = sorted(compatibility_routes(SERVICE_ROUTES))


@pytest.mark.parametrize("route", COMPAT, ids=map(str, COMPAT))
async def test_a_compatibility_path_naming_another_user_is_403_and_changes_nothing(
    stack: Stack,
    engine: AsyncEngine,
    gateway: httpx.AsyncClient,
    owner: User,
    intruder: User,
    route: Route,
) -> None:
    owned = await create_resources(
        gateway, owner, placeholders(route), database_url=stack.database_url
    )
    method, path, body, headers = _request(route, {**owned, "user_id": owner.id})
    before = await snapshot(engine)

    response = await gateway.request(
        method, path, json=body, headers={**headers, **intruder.headers}
    )

    if method == "HEAD":  # no body to hold the envelope
        assert response.status_code == 403
    else:
        assert_error(response, 403, "forbidden")
    assert await snapshot(engine) == before


@pytest.mark.parametrize("place", ["service", "gateway"])
@pytest.mark.parametrize(("path", "rows"), [("/api/tasks", "id"), ("/api/conversations", "id")])
async def test_lists_hold_only_the_tokens_user_even_with_a_spoofed_user_id(
    stack: Stack,
    gateway: httpx.AsyncClient,
    owner: User,
    intruder: User,
    place: str,
    path: str,
    rows: str,
) -> None:
    kind = "task_id" if path == "/api/tasks" else "conversation_id"
    owned = (await create_resources(gateway, owner, {kind}))[kind]
    service = "todo" if path == "/api/tasks" else "chat"
    base = stack.url("gateway" if place == "gateway" else service)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        listed = await client.get(
            path, params={"limit": 100}, headers={**intruder.headers, "X-User-Id": owner.id}
        )
        own = await client.get(path, params={"limit": 100}, headers=owner.headers)
    assert listed.status_code == 200, listed.text
    assert owned not in [item[rows] for item in listed.json()]
    assert owned in [item[rows] for item in own.json()]


@pytest.mark.parametrize("place", ["auth", "gateway"])
async def test_me_is_the_tokens_user_even_with_a_spoofed_user_id(
    stack: Stack, owner: User, intruder: User, place: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.url(place), timeout=30) as client:
        me = await client.get("/api/auth/me", headers={**intruder.headers, "X-User-Id": owner.id})
    assert me.status_code == 200
    assert me.json()["id"] == intruder.id


# --- the MCP tools ----------------------------------------------------------------------------

# Arguments each tool is called with; ``{task_id}`` is the owner's task. Every tool must be
# here: a new tool fails test_every_mcp_tool_is_attacked until it is.
TOOL_CALLS: dict[str, dict[str, Any]] = {
    "add_task": {"title": "planted"},
    "list_tasks": {},
    "get_task": {"task_id": "{task_id}"},
    "complete_task": {"task_id": "{task_id}"},
    "delete_task": {"task_id": "{task_id}"},
    "update_task": {"task_id": "{task_id}", "title": "renamed"},
    "complete_tasks": {"task_ids": ["{task_id}"]},
    "delete_tasks": {"task_ids": ["{task_id}"]},
    "list_notifications": {"unread_only": False},
    "snooze_notification": {"notification_id": "{notification_id}", "minutes": 5},
    "dismiss_notification": {"notification_id": "{notification_id}"},
}


@asynccontextmanager
async def mcp_client(url: str, user: User) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=user.headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@pytest.mark.parametrize("place", ["todo", "gateway"])
async def test_mcp_tools_cannot_reach_another_users_tasks(
    stack: Stack,
    engine: AsyncEngine,
    gateway: httpx.AsyncClient,
    owner: User,
    intruder: User,
    place: str,
) -> None:
    owned = await create_resources(
        gateway, owner, {"task_id", "notification_id"}, database_url=stack.database_url
    )
    before = await snapshot(engine)
    refused: dict[str, bool] = {}
    async with mcp_client(f"{stack.url(place)}/api/mcp", intruder) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == set(TOOL_CALLS), "classify the new tool in TOOL_CALLS"
        for name, arguments in TOOL_CALLS.items():
            filled = fill(arguments, owned)
            if {"task_id", "task_ids", "notification_id"} & arguments.keys():
                refused[f"{name} on the owner's resource"] = (
                    await client.call_tool(name, filled)
                ).is_error
            # Every tool takes user_id (Phase III clients); naming another user is refused.
            refused[f"{name} as the owner"] = (
                await client.call_tool(name, {**filled, "user_id": owner.id})
            ).is_error
        listed = await client.call_tool("list_tasks", {})
        notified = await client.call_tool("list_notifications", {"unread_only": False})

    assert refused == dict.fromkeys(refused, True)
    assert owned["task_id"] not in {task["id"] for task in listed.structured_content["result"]}
    assert owned["notification_id"] not in {n["id"] for n in notified.structured_content["result"]}
    assert await snapshot(engine) == before


@pytest.mark.parametrize("place", ["auth", "gateway"])
async def test_deleting_an_account_deletes_the_tokens_user_only_even_with_a_spoofed_user_id(
    stack: Stack, engine: AsyncEngine, gateway: httpx.AsyncClient, owner: User, place: str
) -> None:
    """``DELETE /api/auth/me`` with the owner's id in ``X-User-Id`` (and the owner's password
    in the body) deletes the token's account, never the owner's."""
    doomed = await register_and_login(gateway, name="Doomed")
    owner_rows = await snapshot(engine, where_user=owner.id)
    async with httpx.AsyncClient(base_url=stack.url(place), timeout=30) as client:
        # The owner's password is refused for the token's account: nothing happens.
        wrong = await client.request(
            "DELETE",
            "/api/auth/me",
            json={"password": owner.password + "!"},
            headers={**doomed.headers, "X-User-Id": owner.id},
        )
        assert_error(wrong, 403, "wrong_password")
        response = await client.request(
            "DELETE",
            "/api/auth/me",
            json={"password": doomed.password},
            headers={**doomed.headers, "X-User-Id": owner.id},
        )
    assert response.status_code == 204, response.text
    me = await gateway.get("/api/auth/me", headers=owner.headers)
    assert me.status_code == 200
    assert me.json()["id"] == owner.id
    assert await snapshot(engine, where_user=owner.id) == owner_rows
    assert_error(await gateway.get("/api/auth/me", headers=doomed.headers), 401, "invalid_token")
