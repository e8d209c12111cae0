"""The todo MCP server, driven by the MCP SDK's own client over real HTTP.

The todo app runs under uvicorn on a free 127.0.0.1 port; each test connects as a user with
that user's bearer token, exactly as the chat service (or any MCP client) does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database, create_engine
from tests.support.serving import free_port, live_server
from tests.support.tokens import TestIssuer
from tests.todo.conftest import User
from todo_service.app import create_app
from todo_service.settings import TodoSettings

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
async def todo_base(
    todo_settings: TodoSettings,
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[str]:
    app = create_app(todo_settings, db=committed_database, verifier=issuer.verifier(), clock=clock)
    async with live_server(app) as base:
        yield base


@pytest.fixture
def connect(todo_base: str) -> Connect:
    @asynccontextmanager
    async def open_client(
        token: str | None, *, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Client]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with (
            httpx2.AsyncClient(headers=sent, timeout=10) as http,
            Client(streamable_http_client(f"{todo_base}/api/mcp", http_client=http)) as client,
        ):
            yield client

    return open_client


def bearer(user: User) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


def payload(result: CallToolResult) -> Any:
    """A successful tool's structured answer; a list is its ``result`` (beside its total)."""
    assert not result.is_error, result.content
    value = result.structured_content
    assert value is not None
    if set(value) == {"result", "total"}:
        assert json.loads(text_of(result)) == value["result"]
        return value["result"]
    return value


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def error_text(result: CallToolResult) -> str:
    """A tool error's message, checked to be the same as its structured error's."""
    assert result.is_error
    text = text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["error"]["message"] == text
    return text


def error_code(result: CallToolResult) -> str:
    assert result.is_error
    assert result.structured_content is not None
    code: str = result.structured_content["error"]["code"]
    return code


async def rows(maker: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with maker() as session:
        connection = await session.connection()
        result = await connection.execute(
            text("SELECT id, user_id, title, completed FROM todo.tasks ORDER BY id")
        )
        return [dict(row._mapping) for row in result]


async def test_the_tools_are_listed_with_their_schemas(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        listing = await client.list_tools()
    tools = {tool.name: tool for tool in listing.tools}
    assert set(tools) == {
        "add_task",
        "list_tasks",
        "complete_task",
        "delete_task",
        "update_task",
        "complete_tasks",
        "delete_tasks",
    }
    add = tools["add_task"].input_schema
    assert add["required"] == ["title"]
    assert set(add["properties"]) >= {
        "title",
        "description",
        "priority",
        "tags",
        "due_at",
        "recurrence",
        "user_id",
    }
    assert tools["list_tasks"].input_schema["properties"]["status"]["enum"] == [
        "all",
        "pending",
        "completed",
    ]
    assert tools["complete_task"].input_schema["required"] == ["task_id"]


async def test_add_list_complete_update_delete(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        added = payload(await client.call_tool("add_task", {"title": "Buy groceries"}))
        task_id = added["task_id"]
        assert added == {"task_id": task_id, "status": "created", "title": "Buy groceries"}

        second = payload(
            await client.call_tool(
                "add_task",
                {
                    "title": "Pay rent",
                    "description": "by bank transfer",
                    "priority": "high",
                    "tags": ["Home", "bills"],
                    "due_at": "2026-12-03T09:00:00+01:00",
                },
            )
        )

        listed = payload(await client.call_tool("list_tasks", {}))
        assert [t["title"] for t in listed] == ["Pay rent", "Buy groceries"]
        rent = listed[0]
        assert rent["priority"] == "high"
        assert rent["tags"] == ["home", "bills"]
        assert rent["due_at"] == "2026-12-03T08:00:00.000000Z"
        assert rent["completed"] is False

        done = payload(await client.call_tool("complete_task", {"task_id": task_id}))
        assert done == {
            "task_id": task_id,
            "status": "completed",
            "title": "Buy groceries",
            "completed": True,
            "next_occurrence_id": None,
        }
        # Completing twice keeps it completed: the tool sets, it never toggles back.
        again = payload(await client.call_tool("complete_task", {"task_id": task_id}))
        assert again["status"] == "completed"

        pending = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert [t["id"] for t in pending] == [second["task_id"]]
        completed = payload(await client.call_tool("list_tasks", {"status": "completed"}))
        assert [t["id"] for t in completed] == [task_id]
        assert completed[0]["completed"] is True

        updated = payload(
            await client.call_tool(
                "update_task", {"task_id": task_id, "title": "Buy groceries and fruits"}
            )
        )
        assert updated == {
            "task_id": task_id,
            "status": "updated",
            "title": "Buy groceries and fruits",
        }

        deleted = payload(await client.call_tool("delete_task", {"task_id": second["task_id"]}))
        assert deleted == {
            "task_id": second["task_id"],
            "status": "deleted",
            "title": "Pay rent",
        }

    assert await rows(committed_sessionmaker) == [
        {
            "id": task_id,
            "user_id": alice.sub,
            "title": "Buy groceries and fruits",
            "completed": True,
        }
    ]


async def test_update_task_clears_the_description_and_due_date(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:
        created = payload(
            await client.call_tool(
                "add_task",
                {
                    "title": "Dentist",
                    "description": "Bring the card",
                    "due_at": "2026-12-03T09:00:00Z",
                },
            )
        )
        task_id = created["task_id"]
        updated = payload(
            await client.call_tool(
                "update_task", {"task_id": task_id, "clear": ["description", "due_at"]}
            )
        )
        assert updated == {"task_id": task_id, "status": "updated", "title": "Dentist"}
        (listed,) = payload(await client.call_tool("list_tasks", {}))
    assert listed["description"] is None
    assert listed["due_at"] is None


async def test_update_task_refuses_to_set_and_clear_one_field(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        created = payload(await client.call_tool("add_task", {"title": "Dentist"}))
        before = await rows(committed_sessionmaker)
        result = await client.call_tool(
            "update_task",
            {"task_id": created["task_id"], "due_at": "2026-12-03T09:00:00Z", "clear": ["due_at"]},
        )
        unknown = await client.call_tool(
            "update_task", {"task_id": created["task_id"], "clear": ["title"]}
        )
    assert "Both set and cleared: due_at" in error_text(result)
    assert unknown.is_error
    assert await rows(committed_sessionmaker) == before


async def test_list_filters(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        for title, priority, tags, due in (
            ("Team meeting", "high", ["work"], "2026-03-16T10:00:00Z"),
            ("Meeting notes", "low", ["work"], None),
            ("Walk the dog", "medium", ["home"], "2026-03-20T10:00:00Z"),
        ):
            arguments: dict[str, Any] = {"title": title, "priority": priority, "tags": tags}
            if due:
                arguments["due_at"] = due
            payload(await client.call_tool("add_task", arguments))

        async def titles(**arguments: Any) -> list[str]:
            found = payload(await client.call_tool("list_tasks", arguments))
            return sorted(t["title"] for t in found)

        assert await titles(q="meeting") == ["Meeting notes", "Team meeting"]
        assert await titles(priority="high") == ["Team meeting"]
        assert await titles(tag="home") == ["Walk the dog"]
        assert await titles(due_before="2026-03-17T00:00:00Z") == ["Team meeting"]
        assert await titles(due_after="2026-03-17T00:00:00Z") == ["Walk the dog"]


async def test_completing_a_recurring_task_schedules_the_next(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:
        added = payload(
            await client.call_tool(
                "add_task",
                {"title": "Water plants", "recurrence": "weekly", "due_at": "2026-03-16T09:00:00Z"},
            )
        )
        payload(await client.call_tool("complete_task", {"task_id": added["task_id"]}))
        pending = payload(await client.call_tool("list_tasks", {"status": "pending"}))
    assert [(t["title"], t["due_at"], t["recurrence"]) for t in pending] == [
        ("Water plants", "2026-03-23T09:00:00.000000Z", "weekly")
    ]


@pytest.mark.parametrize("tool", ["complete_task", "delete_task", "update_task"])
async def test_other_users_and_unknown_tasks_are_not_found(
    connect: Connect,
    alice: User,
    bob: User,
    tool: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with connect(bearer(alice)) as client:
        alices = payload(await client.call_tool("add_task", {"title": "Alice's secret"}))
    before = await rows(committed_sessionmaker)
    async with connect(bearer(bob)) as client:
        for task_id in (alices["task_id"], 999_999, 0, -5, 2**70):
            arguments: dict[str, Any] = {"task_id": task_id}
            if tool == "update_task":
                arguments["title"] = "pwned"
            result = await client.call_tool(tool, arguments)
            assert error_text(result) == f"Task {task_id} not found"
        assert payload(await client.call_tool("list_tasks", {})) == []
    assert await rows(committed_sessionmaker) == before


async def test_a_user_id_argument_must_be_the_tokens_subject(
    connect: Connect,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with connect(bearer(alice)) as client:
        mine = payload(await client.call_tool("add_task", {"title": "Mine", "user_id": alice.sub}))
        assert mine["status"] == "created"
        for tool, arguments in (
            ("add_task", {"title": "Planted", "user_id": bob.sub}),
            ("list_tasks", {"user_id": bob.sub}),
            ("complete_task", {"task_id": mine["task_id"], "user_id": bob.sub}),
            ("delete_task", {"task_id": mine["task_id"], "user_id": bob.sub}),
            ("update_task", {"task_id": mine["task_id"], "title": "x", "user_id": bob.sub}),
        ):
            result = await client.call_tool(tool, arguments)
            assert error_text(result) == "user_id does not match the authenticated user"
    assert await rows(committed_sessionmaker) == [
        {"id": mine["task_id"], "user_id": alice.sub, "title": "Mine", "completed": False}
    ]


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("add_task", {"title": ""}, "title"),
        ("add_task", {"title": "x" * 201}, "title"),
        ("add_task", {"title": "ok", "description": "x" * 1001}, "description"),
        ("add_task", {"title": "ok", "due_at": "tomorrow"}, "due_at"),
        ("add_task", {"title": "ok", "due_at": "2026-12-03T09:00:00"}, "due_at"),
        ("add_task", {"title": "ok", "priority": "urgent"}, "priority"),
        ("add_task", {"title": "ok", "tags": [f"t{n}" for n in range(11)]}, "tags"),
        ("list_tasks", {"status": "done"}, "status"),
        ("update_task", {"task_id": 1}, "Nothing to update"),
        ("complete_task", {}, "task_id"),
    ],
)
async def test_invalid_arguments_are_tool_errors(
    connect: Connect,
    alice: User,
    tool: str,
    arguments: dict[str, Any],
    message: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with connect(bearer(alice)) as client:
        if tool == "update_task":
            created = payload(await client.call_tool("add_task", {"title": "Existing"}))
            arguments = {"task_id": created["task_id"]}
        before = await rows(committed_sessionmaker)
        result = await client.call_tool(tool, arguments)
    assert message in error_text(result)
    assert await rows(committed_sessionmaker) == before


def _tokens(issuer: TestIssuer) -> dict[str, str | None]:
    return {
        "missing": None,
        "garbage": "not-a-token",
        "expired": issuer.mint("alice-subject", exp=int(datetime.now(UTC).timestamp()) - 3600),
        "other key": TestIssuer().mint("alice-subject"),
        "wrong audience": issuer.mint("alice-subject", aud="somebody-else"),
    }


@pytest.mark.parametrize("name", ["missing", "garbage", "expired", "other key", "wrong audience"])
async def test_bad_tokens_are_refused_before_any_tool_runs(
    connect: Connect,
    todo_base: str,
    issuer: TestIssuer,
    name: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = _tokens(issuer)[name]
    with pytest.raises(BaseException) as raised:  # noqa: PT011 - the SDK wraps it in groups
        async with connect(token) as client:
            await client.call_tool("add_task", {"title": "sneaky"})
    assert _has_mcp_error(raised.value)
    assert await rows(committed_sessionmaker) == []

    # Over plain HTTP the refusal is a 401 with a Bearer challenge.
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{todo_base}/api/mcp", json=request, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def _has_mcp_error(exc: BaseException) -> bool:
    if isinstance(exc, MCPError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_has_mcp_error(inner) for inner in exc.exceptions)
    return False


async def test_the_endpoint_answers_behind_a_proxy_host(todo_base: str, alice: User) -> None:
    """Behind the gateway the Host and Origin are the gateway's and the web app's."""
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{todo_base}/api/mcp",
            json=request,
            headers={
                **alice.headers,
                "Host": "api.example.com",
                "Origin": "https://app.example.com",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
    assert response.status_code == 200, response.text
    names = {tool["name"] for tool in json.loads(response.text)["result"]["tools"]}
    assert "add_task" in names
    assert response.headers["x-request-id"]


async def test_a_failing_database_is_a_protocol_error_not_a_tool_answer(
    todo_settings: TodoSettings, issuer: TestIssuer, clock: FrozenClock, alice: User
) -> None:
    # A real engine whose server is gone: every unit of work fails to connect.
    engine = create_engine(
        f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/todo", connect_timeout=2
    )
    app = create_app(
        todo_settings,
        db=Database(engine),
        verifier=issuer.verifier(),
        clock=clock,
    )
    try:
        async with (
            live_server(app) as base,
            httpx2.AsyncClient(headers=alice.headers, timeout=10) as http,
            Client(streamable_http_client(f"{base}/api/mcp", http_client=http)) as client,
        ):
            with pytest.raises(MCPError, match="Internal error"):
                await client.call_tool("add_task", {"title": "lost"})
    finally:
        await engine.dispose()


async def test_clients_of_the_older_protocol_work_statelessly(
    todo_base: str, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A 2025 client (initialize handshake) gets no session id: any replica may answer."""
    async with (
        httpx2.AsyncClient(headers=alice.headers, timeout=10) as http,
        Client(
            streamable_http_client(f"{todo_base}/api/mcp", http_client=http), mode="legacy"
        ) as client,
    ):
        added = payload(await client.call_tool("add_task", {"title": "From an old client"}))
        listed = payload(await client.call_tool("list_tasks", {"status": "pending"}))
    assert [t["id"] for t in listed] == [added["task_id"]]
    assert await rows(committed_sessionmaker) == [
        {
            "id": added["task_id"],
            "user_id": alice.sub,
            "title": "From an old client",
            "completed": False,
        }
    ]
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    async with httpx.AsyncClient() as plain:
        response = await plain.post(
            f"{todo_base}/api/mcp",
            json=request,
            headers={**alice.headers, "Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in response.headers


async def test_add_task_with_an_idempotency_key_adds_once_and_replays_the_first_answer(
    connect: Connect,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    arguments = {"title": "Buy groceries", "idempotency_key": "chat-41-0"}
    async with connect(bearer(alice)) as client:
        first = payload(await client.call_tool("add_task", arguments))
        again = payload(await client.call_tool("add_task", arguments))
        assert again == first
        other_body = await client.call_tool("add_task", {**arguments, "title": "Something else"})
        assert "different request body" in error_text(other_body)
        unkeyed = payload(await client.call_tool("add_task", {"title": "Buy groceries"}))
        assert unkeyed["task_id"] != first["task_id"]
    # Keys are per user: Bob's same key is his own first add.
    async with connect(bearer(bob)) as client:
        bobs = payload(await client.call_tool("add_task", arguments))
    assert bobs["task_id"] not in {first["task_id"], unkeyed["task_id"]}
    assert [(r["user_id"], r["title"]) for r in await rows(committed_sessionmaker)] == [
        (alice.sub, "Buy groceries"),
        (alice.sub, "Buy groceries"),
        (bob.sub, "Buy groceries"),
    ]


async def test_the_idempotency_key_is_optional_and_checked(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        listing = await client.list_tools()
        (add,) = [tool for tool in listing.tools if tool.name == "add_task"]
        assert "idempotency_key" in add.input_schema["properties"]
        assert add.input_schema["required"] == ["title"]
        for bad in ("", "has space", "k" * 256):
            result = await client.call_tool("add_task", {"title": "x", "idempotency_key": bad})
            assert result.is_error
