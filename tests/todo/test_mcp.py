"""The todo MCP server, driven by the MCP SDK's own client over real HTTP.

The todo app runs under uvicorn on a free 127.0.0.1 port; each test connects as a user with
that user's bearer token, exactly as the chat service (or any MCP client) does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
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

from scripts.processes import free_port
from shared.clock import FrozenClock
from shared.db import Database, create_engine, is_transaction_conflict
from shared.tombstones import SUBJECT_LOCK_CLASS
from tests.support.database import insert_tasks, lock_waiters
from tests.support.errors import assert_error
from tests.support.event_schemas import validate_data
from tests.support.events import eventually
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer
from tests.todo.conftest import NOW, User, events_of, last_event_id, set_task_total
from todo_service.app import create_app
from todo_service.models import TASKS_PER_USER_MAX
from todo_service.scheduler import fire_due
from todo_service.schemas import SortField
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


def error_of(result: CallToolResult) -> dict[str, Any]:
    """A tool error's structured part: ``{"code", "message", ...}``."""
    assert result.is_error
    assert result.structured_content is not None
    error: dict[str, Any] = result.structured_content["error"]
    return error


def error_code(result: CallToolResult) -> str:
    code: str = error_of(result)["code"]
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
        "get_task",
        "complete_task",
        "delete_task",
        "update_task",
        "complete_tasks",
        "delete_tasks",
        "list_notifications",
        "snooze_notification",
        "dismiss_notification",
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
        "time_zone",
        "reminders",
        "user_id",
    }
    assert "time_zone" in tools["update_task"].input_schema["properties"]
    assert tools["list_tasks"].input_schema["properties"]["status"]["enum"] == [
        "all",
        "pending",
        "completed",
    ]
    assert tools["complete_task"].input_schema["required"] == ["task_id"]
    # Bounds are JSON Schema's keywords, which clients read (not pydantic's ge/le).
    limit = tools["list_tasks"].input_schema["properties"]["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 100)
    assert not {"ge", "le", "gt", "lt"} & _keys([tool.input_schema for tool in tools.values()])


async def test_the_schemas_carry_the_rest_apis_bounds(connect: Connect, alice: User) -> None:
    """A client that checks arguments against the schema learns the bounds the tools apply
    (those of the REST API's bodies), not only a type."""
    async with connect(bearer(alice)) as client:
        listing = await client.list_tools()
    tools = {tool.name: tool.input_schema for tool in listing.tools}
    for name in ("add_task", "update_task"):
        schema = tools[name]
        fields = schema["properties"]
        title = _text_option(fields["title"])
        assert (title["minLength"], title["maxLength"]) == (1, 200), name
        assert _text_option(fields["description"])["maxLength"] == 1000, name
        tags = _option(fields["tags"], "array")
        assert tags["maxItems"] == 100, name
        assert (tags["items"]["minLength"], tags["items"]["maxLength"]) == (1, 30), name
        reminders = _option(fields["reminders"], "array")
        assert reminders["maxItems"] == 5, name
        item = _resolve(schema, reminders["items"])
        assert item["additionalProperties"] is False, name
        assert set(item["properties"]) == {"at", "before_due_minutes"}, name
    tag = _text_option(tools["list_tasks"]["properties"]["tag"])
    assert (tag["minLength"], tag["maxLength"]) == (1, 30)


def _option(field: dict[str, Any], kind: str) -> dict[str, Any]:
    """The alternative of an optional field's schema that has this type."""
    options: list[dict[str, Any]] = field.get("anyOf", [field])
    (found,) = (option for option in options if option.get("type") == kind)
    return found


def _text_option(field: dict[str, Any]) -> dict[str, Any]:
    return _option(field, "string")


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        resolved: dict[str, Any] = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return resolved
    return node


def _keys(value: Any) -> set[str]:
    """Every key of every object in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {key for inner in value.values() for key in _keys(inner)}
    if isinstance(value, list):
        return {key for inner in value for key in _keys(inner)}
    return set()


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


async def test_list_tasks_sorts_by_due_date_undated_last(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        for title, due in (
            ("Later", "2026-03-20T10:00:00Z"),
            ("Undated", None),
            ("Sooner", "2026-03-16T10:00:00Z"),
        ):
            arguments: dict[str, Any] = {"title": title}
            if due:
                arguments["due_at"] = due
            payload(await client.call_tool("add_task", arguments))

        async def titles(**arguments: Any) -> list[str]:
            return [t["title"] for t in payload(await client.call_tool("list_tasks", arguments))]

        assert await titles() == ["Sooner", "Undated", "Later"]
        assert await titles(sort="due") == ["Sooner", "Later", "Undated"]
        assert await titles(sort="due", limit=1) == ["Sooner"]
        assert await titles(sort="title") == ["Later", "Sooner", "Undated"]
        # The sorts offered are the REST list's, named alike.
        listing = await client.list_tools()
        schema = next(t.input_schema for t in listing.tools if t.name == "list_tasks")
        assert schema["properties"]["sort"]["enum"] == [field.value for field in SortField]
        refused = await client.call_tool("list_tasks", {"sort": "due_at DESC"})
        assert error_code(refused) == "invalid"


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


async def test_a_monthly_series_keeps_its_day_through_the_tools(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:

        async def complete(tool: str, task_id: int) -> tuple[int, str]:
            """Complete with ``tool``; the next occurrence's id and due date."""
            arguments: dict[str, Any] = (
                {"task_ids": [task_id]} if tool == "complete_tasks" else {"task_id": task_id}
            )
            done = payload(await client.call_tool(tool, arguments))
            result = done["results"][0] if tool == "complete_tasks" else done
            pending = payload(await client.call_tool("list_tasks", {"status": "pending"}))
            assert [t["id"] for t in pending] == [result["next_occurrence_id"]]
            return pending[0]["id"], pending[0]["due_at"]

        added = payload(
            await client.call_tool(
                "add_task",
                {"title": "Rent", "recurrence": "monthly", "due_at": "2026-01-31T09:00:00Z"},
            )
        )
        february, february_due = await complete("complete_tasks", added["task_id"])
        march, march_due = await complete("complete_task", february)
        payload(
            await client.call_tool(
                "update_task", {"task_id": march, "due_at": "2026-03-29T09:00:00Z"}
            )
        )
        _, april_due = await complete("complete_task", march)

    assert [february_due, march_due, april_due] == [
        "2026-02-28T09:00:00.000000Z",
        "2026-03-31T09:00:00.000000Z",
        "2026-04-29T09:00:00.000000Z",  # moved to the 29th, the series is on the 29th
    ]


@pytest.mark.parametrize("tool", ["get_task", "complete_task", "delete_task", "update_task"])
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


async def test_unknown_arguments_are_invalid_and_change_nothing(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """As the REST bodies refuse unknown fields: a misspelt argument was dropped in silence,
    and the task was added or changed without what the caller meant it to say."""
    async with connect(bearer(alice)) as client:
        listing = await client.list_tools()
        mine = payload(await client.call_tool("add_task", {"title": "Mine"}))["task_id"]
        before = await rows(committed_sessionmaker)
        answers = {
            "descripton": await client.call_tool("add_task", {"title": "x", "descripton": "d"}),
            "completed": await client.call_tool(
                "update_task", {"task_id": mine, "title": "Renamed", "completed": True}
            ),
            "statuss": await client.call_tool("list_tasks", {"statuss": "pending"}),
            "id": await client.call_tool("delete_task", {"task_id": mine, "id": mine}),
        }
    for name, result in answers.items():
        assert error_code(result) == "invalid", name
        assert error_text(result) == f"Invalid arguments: {name}: Extra inputs are not permitted"
    assert await rows(committed_sessionmaker) == before
    for tool in listing.tools:
        assert tool.input_schema["additionalProperties"] is False, tool.name


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_task", {"task_id": True}),
        ("get_task", {"task_id": "1"}),
        ("complete_task", {"task_id": True}),
        ("delete_task", {"task_id": "1"}),
        ("update_task", {"task_id": True, "title": "x"}),
        ("complete_tasks", {"task_ids": [True]}),
        ("delete_tasks", {"task_ids": ["1"]}),
        ("list_tasks", {"limit": True}),
        ("list_tasks", {"limit": "5"}),
        ("list_notifications", {"limit": True}),
        ("dismiss_notification", {"notification_id": "1"}),
        ("snooze_notification", {"notification_id": True, "minutes": 5}),
        ("snooze_notification", {"notification_id": 1, "minutes": True}),
    ],
)
async def test_ids_and_counts_are_json_integers_never_booleans_or_strings(
    connect: Connect,
    alice: User,
    tool: str,
    arguments: dict[str, Any],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The schemas say integer and the REST bodies take only a JSON number: ``true`` was read
    as task 1 and ``"1"`` as 1."""
    async with connect(bearer(alice)) as client:
        payload(await client.call_tool("add_task", {"title": "Task one"}))
        before = await rows(committed_sessionmaker)
        result = await client.call_tool(tool, arguments)
        assert error_code(result) == "invalid"
        assert error_text(result).endswith("must be an integer")
        # A number without a fraction is an integer in JSON, as REST reads it.
        assert payload(await client.call_tool("get_task", {"task_id": 1.0}))["id"] == 1
    assert await rows(committed_sessionmaker) == before


async def test_text_that_reads_as_json_is_kept_as_text(connect: Connect, alice: User) -> None:
    """The SDK reads a string argument as JSON where the parameter is not plainly ``str`` (so
    that clients sending a list as a JSON string work): a description such as '["milk",
    "eggs"]' became a list and was refused, as was a search for it."""
    texts = ['["milk", "eggs"]', '{"step": 1}', "[1]"]
    async with connect(bearer(alice)) as client:
        for text in texts:
            added = payload(await client.call_tool("add_task", {"title": "t", "description": text}))
            task = payload(await client.call_tool("get_task", {"task_id": added["task_id"]}))
            assert task["description"] == text
            updated = await client.call_tool(
                "update_task", {"task_id": added["task_id"], "description": text + " "}
            )
            assert payload(updated)["status"] == "updated"
            found = payload(await client.call_tool("list_tasks", {"q": text}))
            assert [t["id"] for t in found] == [added["task_id"]]
        # A list sent as a JSON string is still read as the list.
        tagged = payload(await client.call_tool("add_task", {"title": "t", "tags": '["a", "b"]'}))
        assert payload(await client.call_tool("get_task", {"task_id": tagged["task_id"]}))[
            "tags"
        ] == ["a", "b"]


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


async def test_a_token_in_its_expiry_leeway_is_taken_by_the_tools_as_by_the_routes(
    todo_base: str, issuer: TestIssuer
) -> None:
    """Clocks differ: every verifier gives ``exp`` the same 30 s of leeway. A token 10 s past
    it is a token at the REST routes, so at the MCP endpoint too (it was refused there by the
    SDK's own check, on its own clock, in OAuth's format rather than the platform's)."""
    token = issuer.mint("alice-subject", exp=int(datetime.now(UTC).timestamp()) - 10)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
    }
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=todo_base) as http:
        listed = await http.get("/api/tasks", headers=headers)
        tools = await http.post("/api/mcp", json=request, headers=headers)

    assert listed.status_code == 200, listed.text
    assert tools.status_code == 200, tools.text
    assert tools.json()["result"]["tools"]


def _has_mcp_error(exc: BaseException) -> bool:
    if isinstance(exc, MCPError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_has_mcp_error(inner) for inner in exc.exceptions)
    return False


async def test_the_server_offers_no_subscription_stream(connect: Connect, alice: User) -> None:
    """``subscriptions/listen`` was the SDK's default: a POST held open as an event stream
    with pings, outside every bound on the platform's streams, for list changes this server
    never makes. Discovery said the tool list could change."""
    async with connect(bearer(alice)) as client:
        found = await client.session.discover()
        assert not found.capabilities.tools or not found.capabilities.tools.list_changed
        assert not found.capabilities.resources or not found.capabilities.resources.subscribe
        async with asyncio.timeout(10):
            with pytest.raises(MCPError, match="Method not found"):
                async with client.listen(tools_list_changed=True):
                    pass


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_the_endpoint_serves_only_post(todo_base: str, alice: User, method: str) -> None:
    # A GET was the SDK's server-to-client event stream, held open with pings for as long as
    # the client kept it: no bound of the platform's streams applied to it.
    headers = {**alice.headers, "Accept": "text/event-stream"}
    async with httpx.AsyncClient() as http, asyncio.timeout(10):
        response = await http.request(method, f"{todo_base}/api/mcp", headers=headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


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


# --- error codes ----------------------------------------------------------------------------


async def test_tool_errors_carry_a_code_beside_the_message(
    connect: Connect, alice: User, bob: User
) -> None:
    async with connect(bearer(alice)) as client:
        mine = payload(await client.call_tool("add_task", {"title": "Mine"}))
        keyed = {"title": "Keyed", "idempotency_key": "k-1"}
        payload(await client.call_tool("add_task", keyed))
        answers = {
            "not_found": await client.call_tool("complete_task", {"task_id": 999_999}),
            "invalid (SDK)": await client.call_tool("list_tasks", {"status": "done"}),
            "invalid (tool)": await client.call_tool("update_task", {"task_id": mine["task_id"]}),
            "invalid (service)": await client.call_tool("add_task", {"title": "   "}),
            "forbidden": await client.call_tool("list_tasks", {"user_id": bob.sub}),
            "conflict": await client.call_tool("add_task", {**keyed, "title": "Other"}),
            "unknown tool": await client.call_tool("complete_everything", {}),
        }
    codes = {name: error_code(result) for name, result in answers.items()}
    assert codes == {
        "not_found": "not_found",
        "invalid (SDK)": "invalid",
        "invalid (tool)": "invalid",
        "invalid (service)": "invalid",
        "forbidden": "forbidden",
        "conflict": "conflict",
        "unknown tool": "invalid",
    }
    assert answers["not_found"].structured_content == {
        "error": {"code": "not_found", "message": "Task 999999 not found", "task_ids": [999_999]}
    }
    assert error_text(answers["invalid (SDK)"]).startswith("Invalid arguments: status: ")
    assert error_text(answers["invalid (tool)"]).startswith("Nothing to update")
    assert error_text(answers["invalid (service)"]).startswith("Invalid arguments: title: ")


# --- reopen ---------------------------------------------------------------------------------


async def test_complete_task_with_completed_false_reopens(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        task_id = payload(await client.call_tool("add_task", {"title": "Call mom"}))["task_id"]
        payload(await client.call_tool("complete_task", {"task_id": task_id}))
        reopened = payload(
            await client.call_tool("complete_task", {"task_id": task_id, "completed": False})
        )
        assert reopened == {
            "task_id": task_id,
            "status": "reopened",
            "title": "Call mom",
            "completed": False,
            "next_occurrence_id": None,
        }
        # Sets, never toggles: reopening an open task keeps it open.
        again = await client.call_tool("complete_task", {"task_id": task_id, "completed": False})
        assert payload(again)["status"] == "reopened"
        (listed,) = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert (listed["id"], listed["completed_at"]) == (task_id, None)
        refused = await client.call_tool("complete_task", {"task_id": task_id, "completed": "no"})
        assert error_code(refused) == "invalid"
    assert [r["completed"] for r in await rows(committed_sessionmaker)] == [False]


async def test_reopening_a_recurring_task_keeps_its_next_occurrence_and_makes_no_second(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:
        added = payload(
            await client.call_tool(
                "add_task",
                {"title": "Water plants", "recurrence": "weekly", "due_at": "2026-03-16T09:00:00Z"},
            )
        )
        task_id = added["task_id"]
        done = payload(await client.call_tool("complete_task", {"task_id": task_id}))
        following = done["next_occurrence_id"]
        assert following is not None
        reopened = payload(
            await client.call_tool("complete_task", {"task_id": task_id, "completed": False})
        )
        assert reopened["next_occurrence_id"] == following
        again = payload(await client.call_tool("complete_task", {"task_id": task_id}))
        assert again["next_occurrence_id"] == following
        listed = payload(await client.call_tool("list_tasks", {}))
    assert sorted(t["id"] for t in listed) == sorted([task_id, following])


# --- list: completion time and totals -------------------------------------------------------


async def test_list_filters_on_completion_time(
    connect: Connect, alice: User, clock: FrozenClock
) -> None:
    async with connect(bearer(alice)) as client:
        ids = {}
        for title in ("Monday's", "Tuesday's", "Wednesday's", "Never done"):
            ids[title] = payload(await client.call_tool("add_task", {"title": title}))["task_id"]
        for title in ("Monday's", "Tuesday's", "Wednesday's"):
            payload(await client.call_tool("complete_task", {"task_id": ids[title]}))
            clock.advance(days=1)  # completions at 12:00 on the 15th, 16th and 17th

        async def titles(**arguments: Any) -> list[str]:
            found = payload(await client.call_tool("list_tasks", arguments))
            return sorted(t["title"] for t in found)

        assert await titles(completed_after="2026-03-16T00:00:00+00:00") == [
            "Tuesday's",
            "Wednesday's",
        ]
        # Inclusive after, exclusive before: adjacent windows never overlap.
        assert await titles(completed_after="2026-03-16T12:00:00Z") == ["Tuesday's", "Wednesday's"]
        assert await titles(completed_before="2026-03-16T12:00:00Z") == ["Monday's"]
        assert await titles(
            completed_after="2026-03-15T13:00:00+01:00", completed_before="2026-03-17T00:00:00Z"
        ) == ["Monday's", "Tuesday's"]
        assert await titles(status="pending", completed_after="2026-03-01T00:00:00Z") == []
        bad = await client.call_tool("list_tasks", {"completed_after": "yesterday"})
        assert error_code(bad) == "invalid"
        assert "completed_after" in error_text(bad)


async def test_list_tasks_carries_the_total_for_its_filters(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        for n in range(5):
            payload(await client.call_tool("add_task", {"title": f"Task {n}", "tags": ["t"]}))
        payload(await client.call_tool("add_task", {"title": "Other"}))
        every = await client.call_tool("list_tasks", {"limit": 2})
        tagged = await client.call_tool("list_tasks", {"tag": "t", "limit": 1})
        none = await client.call_tool("list_tasks", {"q": "nothing like this"})
        too_big = await client.call_tool("list_tasks", {"limit": 101})
    assert every.structured_content is not None
    assert [t["title"] for t in payload(every)] == ["Other", "Task 4"]
    assert every.structured_content["total"] == 6
    assert tagged.structured_content == {"result": payload(tagged), "total": 5}
    assert none.structured_content == {"result": [], "total": 0}
    assert json.loads(text_of(none)) == []  # the text stays the Phase III list
    assert error_code(too_big) == "invalid"


async def test_get_task_reads_one_task_by_id_however_many_are_newer(
    connect: Connect,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A list answers the newest 100 tasks at most: an older one is read by its id."""
    async with connect(bearer(alice)) as client:
        old = payload(
            await client.call_tool(
                "add_task",
                {"title": "Renew passport", "due_at": "2026-12-03T09:00:00+01:00", "tags": ["Id"]},
            )
        )["task_id"]
    async with connect(bearer(bob)) as client:
        bobs = payload(await client.call_tool("add_task", {"title": "Bob's plans"}))["task_id"]
    await insert_tasks(committed_sessionmaker, alice.sub, 120)

    async with connect(bearer(alice)) as client:
        listed = payload(await client.call_tool("list_tasks", {}))
        read = await client.call_tool("get_task", {"task_id": old})
        others = await client.call_tool("get_task", {"task_id": bobs})
        missing = await client.call_tool("get_task", {"task_id": 999_999})
        as_bob = await client.call_tool("get_task", {"task_id": old, "user_id": bob.sub})
    assert old not in [t["id"] for t in listed]
    # The task as a list item shows it, the same keys and renderings.
    assert payload(read) == {
        "id": old,
        "title": "Renew passport",
        "completed": False,
        "description": None,
        "priority": "medium",
        "tags": ["id"],
        "due_at": "2026-12-03T08:00:00.000000Z",
        "recurrence": "none",
        "time_zone": None,
        "completed_at": None,
    }
    assert set(payload(read)) == set(listed[0])
    assert json.loads(text_of(read)) == payload(read)
    # Another user's task is answered exactly as a missing one.
    for task_id, result in ((bobs, others), (999_999, missing)):
        assert error_of(result) == {
            "code": "not_found",
            "message": f"Task {task_id} not found",
            "task_ids": [task_id],
        }
        assert text_of(result) == f"Task {task_id} not found"
    assert error_code(as_bob) == "forbidden"


# --- bulk -----------------------------------------------------------------------------------


async def _add(client: Client, *titles: str, **fields: Any) -> list[int]:
    added = []
    for title in titles:
        answer = payload(await client.call_tool("add_task", {"title": title, **fields}))
        added.append(answer["task_id"])
    return added


async def test_bulk_tools_take_a_bounded_list_of_distinct_ids(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:
        listing = await client.list_tools()
    tools = {tool.name: tool for tool in listing.tools}
    for name in ("complete_tasks", "delete_tasks"):
        schema = tools[name].input_schema
        assert schema["required"] == ["task_ids"]
        ids = schema["properties"]["task_ids"]
        assert (ids["minItems"], ids["maxItems"], ids["uniqueItems"]) == (1, 100, True)
        assert ids["items"] == {"type": "integer"}
    assert tools["complete_tasks"].input_schema["properties"]["completed"]["default"] is True


async def test_complete_tasks_completes_and_reopens_all_in_one_call(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        first, second, third = await _add(client, "Milk", "Eggs", "Bread")
        (weekly,) = await _add(
            client, "Bins", recurrence="weekly", due_at="2026-03-16T07:00:00Z", tags=["home"]
        )
        done = payload(
            await client.call_tool("complete_tasks", {"task_ids": [third, weekly, first]})
        )
        assert done["count"] == 3
        assert [(r["task_id"], r["status"], r["title"]) for r in done["results"]] == [
            (third, "completed", "Bread"),
            (weekly, "completed", "Bins"),
            (first, "completed", "Milk"),
        ]
        following = done["results"][1]["next_occurrence_id"]
        assert following is not None
        pending = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert sorted(t["id"] for t in pending) == sorted([second, following])
        bins = next(t for t in pending if t["id"] == following)
        assert (bins["due_at"], bins["tags"]) == ("2026-03-23T07:00:00.000000Z", ["home"])

        reopened = payload(
            await client.call_tool(
                "complete_tasks", {"task_ids": [first, second], "completed": False}
            )
        )
        assert [(r["task_id"], r["status"]) for r in reopened["results"]] == [
            (first, "reopened"),
            (second, "reopened"),
        ]
    states = {r["id"]: r["completed"] for r in await rows(committed_sessionmaker)}
    assert states == {first: False, second: False, third: True, weekly: True, following: False}


async def test_delete_tasks_deletes_all_in_one_call(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        keep, old, older = await _add(client, "Keep", "Old", "Older")
        (weekly,) = await _add(client, "Bins", recurrence="weekly", due_at="2026-03-16T07:00:00Z")
        following = payload(await client.call_tool("complete_task", {"task_id": weekly}))[
            "next_occurrence_id"
        ]
        deleted = payload(
            await client.call_tool("delete_tasks", {"task_ids": [older, following, old]})
        )
        assert deleted == {
            "count": 3,
            "results": [
                {"task_id": older, "status": "deleted", "title": "Older"},
                {"task_id": following, "status": "deleted", "title": "Bins"},
                {"task_id": old, "status": "deleted", "title": "Old"},
            ],
        }
        (bins,) = [
            t for t in payload(await client.call_tool("list_tasks", {})) if t["id"] == weekly
        ]
        # The occurrence is gone, so the link is cleared: reopening and completing again
        # schedules anew, exactly as after a single delete.
        payload(await client.call_tool("complete_task", {"task_id": weekly, "completed": False}))
        again = payload(await client.call_tool("complete_task", {"task_id": weekly}))
        assert again["next_occurrence_id"] not in {None, following}
    assert bins["completed"] is True
    assert {r["id"] for r in await rows(committed_sessionmaker)} == {
        keep,
        weekly,
        again["next_occurrence_id"],
    }


@pytest.mark.parametrize("tool", ["complete_tasks", "delete_tasks"])
async def test_bulk_refusals_change_nothing(
    connect: Connect,
    alice: User,
    bob: User,
    tool: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with connect(bearer(bob)) as client:
        (bobs,) = await _add(client, "Bob's")
    async with connect(bearer(alice)) as client:
        mine = await _add(client, *(f"Task {n}" for n in range(3)))
        before = await rows(committed_sessionmaker)
        answers = {
            "another user's id": await client.call_tool(tool, {"task_ids": [*mine, bobs]}),
            "unknown ids": await client.call_tool(tool, {"task_ids": [mine[0], 0, 2**70, -1]}),
            "impossible ids": await client.call_tool(tool, {"task_ids": [0, -1]}),
            "101 ids": await client.call_tool(tool, {"task_ids": list(range(1, 102))}),
            "no ids": await client.call_tool(tool, {"task_ids": []}),
            "repeated id": await client.call_tool(tool, {"task_ids": [mine[0], mine[1], mine[0]]}),
            "not ids": await client.call_tool(tool, {"task_ids": ["one"]}),
            "not a list": await client.call_tool(tool, {"task_ids": mine[0]}),
        }
        assert await rows(committed_sessionmaker) == before
    errors = {name: error_of(result) for name, result in answers.items()}
    assert {name: error["code"] for name, error in errors.items()} == {
        "another user's id": "not_found",
        "unknown ids": "not_found",
        "impossible ids": "not_found",
        "101 ids": "too_many",
        "no ids": "invalid",
        "repeated id": "invalid",
        "not ids": "invalid",
        "not a list": "invalid",
    }
    # Only the ids that are not the user's are named; another user's reads as unknown.
    assert errors["another user's id"] == {
        "code": "not_found",
        "message": f"Tasks not found: {bobs}",
        "task_ids": [bobs],
    }
    assert errors["unknown ids"]["task_ids"] == [0, 2**70, -1]
    assert errors["101 ids"]["message"] == "At most 100 task ids in one call; split the list"
    assert str(mine[0]) in errors["repeated id"]["message"]
    async with connect(bearer(bob)) as client:
        assert [t["id"] for t in payload(await client.call_tool("list_tasks", {}))] == [bobs]


@pytest.mark.parametrize("tool", ["complete_tasks", "delete_tasks"])
async def test_a_bulk_call_failing_part_way_changes_nothing(
    connect: Connect,
    alice: User,
    tool: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The database refuses the last task's write after the others were written: the one
    transaction rolls back, so the earlier tasks are unchanged too."""
    async with committed_sessionmaker() as session, session.begin():
        connection = await session.connection()
        await connection.execute(
            text(
                "CREATE FUNCTION todo.refuse_write() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'refused for the test'; END$$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER refuse_write BEFORE UPDATE OR DELETE ON todo.tasks "
                "FOR EACH ROW WHEN (OLD.title = 'Refuses') "
                "EXECUTE FUNCTION todo.refuse_write()"
            )
        )
    try:
        async with connect(bearer(alice)) as client:
            task_ids = await _add(client, "First", "Second", "Refuses")
            before = await rows(committed_sessionmaker)
            with pytest.raises(MCPError, match="Internal error"):
                await client.call_tool(tool, {"task_ids": task_ids})
        assert await rows(committed_sessionmaker) == before
    finally:
        async with committed_sessionmaker() as session, session.begin():
            connection = await session.connection()
            await connection.execute(text("DROP TRIGGER refuse_write ON todo.tasks"))
            await connection.execute(text("DROP FUNCTION todo.refuse_write()"))


async def test_concurrent_bulk_completions_schedule_each_occurrence_once(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Two calls over the same recurring tasks, ids in opposite orders, at the same time: the
    rows are locked before they are read, so each task gets one next occurrence, and the
    calls wait for each other rather than deadlock."""
    async with connect(bearer(alice)) as first, connect(bearer(alice)) as second:
        for _ in range(3):
            task_ids = await _add(
                first, "Bins", "Plants", "Rent", recurrence="weekly", due_at="2026-03-16T07:00:00Z"
            )
            answers = await asyncio.gather(
                first.call_tool("complete_tasks", {"task_ids": task_ids}),
                second.call_tool("complete_tasks", {"task_ids": task_ids[::-1]}),
            )
            results = [payload(answer)["results"] for answer in answers]
            following = {r["task_id"]: r["next_occurrence_id"] for r in results[0]}
            assert following == {r["task_id"]: r["next_occurrence_id"] for r in results[1]}
            assert None not in following.values()
    stored = await rows(committed_sessionmaker)
    # Three rounds of three tasks, each with exactly one occurrence.
    assert len(stored) == 18
    assert sum(r["completed"] for r in stored) == 9


async def test_every_tool_that_changes_a_task_writes_its_events(
    connect: Connect, alice: User, bob: User, committed_database: Database
) -> None:
    async with connect(bearer(bob)) as client:
        (bobs,) = await _add(client, "Bob's")
    async with connect(bearer(alice)) as client:
        milk, eggs = await _add(client, "Milk", "Eggs")
        (bins,) = await _add(client, "Bins", recurrence="weekly", due_at="2026-03-16T07:00:00Z")
        payload(await client.call_tool("update_task", {"task_id": milk, "title": "Oat milk"}))
        done = payload(await client.call_tool("complete_tasks", {"task_ids": [bins, milk]}))
        following = done["results"][0]["next_occurrence_id"]
        payload(await client.call_tool("complete_task", {"task_id": milk, "completed": False}))
        payload(await client.call_tool("delete_task", {"task_id": eggs}))
        payload(await client.call_tool("delete_tasks", {"task_ids": [following, milk]}))
        before = await last_event_id(committed_database)
        # A refused bulk call (another user's id among them) writes nothing.
        refused = await client.call_tool("complete_tasks", {"task_ids": [bins, bobs]})
        assert refused.is_error
        assert await last_event_id(committed_database) == before

    events = await events_of(committed_database, alice)
    written = [(event["type"], task_id_of(event)) for event in events]
    # One DELETE statement removes the bulk's rows in the order it finds them.
    assert sorted(written[-2:]) == sorted([("task.deleted", following), ("task.deleted", milk)])
    assert written[:-2] == [
        ("task.created", milk),
        ("task.created", eggs),
        ("task.created", bins),
        ("task.updated", milk),
        ("task.created", following),
        ("task.completed", bins),
        ("task.completed", milk),
        ("task.reopened", milk),
        ("task.deleted", eggs),
        ("task.updated", bins),  # its next occurrence is deleted: the link is cleared
    ]
    for event in events:
        assert (event["key"], event["data"]["user_id"]) == (alice.sub, alice.sub)
        validate_data(event["type"], event["version"], event["data"])


def task_id_of(event: dict[str, Any]) -> int:
    data = event["data"]
    return int(data["task_id"] if event["type"] == "task.deleted" else data["task"]["id"])


# --- reminders and notifications ---------------------------------------------------------


async def test_add_and_update_task_take_reminders(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        added = payload(
            await client.call_tool(
                "add_task",
                {
                    "title": "Dentist",
                    "due_at": "2026-03-20T15:00:00+01:00",
                    "reminders": [{"before_due_minutes": 60}, {"at": "2026-03-20T08:00:00Z"}],
                },
            )
        )
        task_id = added["task_id"]
        updated = await client.call_tool(
            "update_task", {"task_id": task_id, "reminders": [{"before_due_minutes": 10}]}
        )
        assert not updated.is_error
        cleared = await client.call_tool(
            "update_task", {"task_id": task_id, "clear": ["reminders"]}
        )
        assert not cleared.is_error


@pytest.mark.parametrize(
    "reminders",
    [
        [{"before_due_minutes": 5, "at": "2026-03-20T08:00:00Z"}],
        [{"minutes": 5}],
        [{"before_due_minutes": 5}] * 2,
        [{"before_due_minutes": n} for n in range(6)],
        [{"before_due_minutes": 43_201}],
        [{"at": "friday"}],
    ],
)
async def test_invalid_reminders_are_refused_by_the_tools(
    connect: Connect,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    reminders: list[dict[str, Any]],
) -> None:
    async with connect(bearer(alice)) as client:
        added = await client.call_tool(
            "add_task", {"title": "x", "due_at": "2026-03-20T15:00:00Z", "reminders": reminders}
        )
        assert error_code(added) == "invalid"
        assert await rows(committed_sessionmaker) == []


async def test_an_offset_reminder_without_a_due_date_is_refused_by_the_tools(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        added = await client.call_tool(
            "add_task", {"title": "x", "reminders": [{"before_due_minutes": 5}]}
        )
        assert error_code(added) == "invalid"
        plain = payload(await client.call_tool("add_task", {"title": "y"}))
        updated = await client.call_tool(
            "update_task",
            {"task_id": plain["task_id"], "reminders": [{"before_due_minutes": 5}]},
        )
        assert error_code(updated) == "invalid"
        assert "due date" in error_text(updated)
    assert [r["title"] for r in await rows(committed_sessionmaker)] == ["y"]


async def test_notification_tools_list_snooze_and_dismiss(
    connect: Connect, alice: User, bob: User, committed_database: Database
) -> None:
    async with connect(bearer(alice)) as client:
        payload(
            await client.call_tool(
                "add_task",
                {"title": "Dentist", "reminders": [{"at": "2026-03-15T11:00:00Z"}]},
            )
        )
        assert await fire_due(committed_database, now=NOW, batch=10) == 1
        [notification] = payload(await client.call_tool("list_notifications", {}))
        assert notification["task_title"] == "Dentist"
        assert notification["read_at"] is None

        snoozed = payload(
            await client.call_tool(
                "snooze_notification",
                {"notification_id": notification["id"], "minutes": 15},
            )
        )
        assert snoozed["read_at"] is not None
        assert payload(await client.call_tool("list_notifications", {})) == []
        everything = payload(
            await client.call_tool("list_notifications", {"unread_only": False, "limit": 5})
        )
        assert [n["id"] for n in everything] == [notification["id"]]
        assert await fire_due(committed_database, now=NOW + timedelta(minutes=15), batch=10) == 1
        [again] = payload(await client.call_tool("list_notifications", {}))
        dismissed = payload(
            await client.call_tool("dismiss_notification", {"notification_id": again["id"]})
        )
        assert dismissed["read_at"] is not None
        assert payload(await client.call_tool("list_notifications", {})) == []

    async with connect(bearer(bob)) as client:
        assert payload(await client.call_tool("list_notifications", {"unread_only": False})) == []
        for tool, arguments in (
            ("dismiss_notification", {"notification_id": notification["id"]}),
            ("snooze_notification", {"notification_id": notification["id"], "minutes": 5}),
        ):
            refused = await client.call_tool(tool, arguments)
            assert error_code(refused) == "not_found"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("snooze_notification", {"notification_id": 1, "minutes": 0}),
        ("snooze_notification", {"notification_id": 1, "minutes": 1441}),
        ("snooze_notification", {"notification_id": 1}),
        ("list_notifications", {"limit": 0}),
        ("list_notifications", {"limit": 51}),
        ("dismiss_notification", {"notification_id": "one"}),
    ],
)
async def test_malformed_notification_tool_arguments_are_invalid(
    connect: Connect, alice: User, tool: str, arguments: dict[str, Any]
) -> None:
    async with connect(bearer(alice)) as client:
        assert error_code(await client.call_tool(tool, arguments)) == "invalid"


async def test_a_missing_notification_is_not_found(connect: Connect, alice: User) -> None:
    async with connect(bearer(alice)) as client:
        for notification_id in (0, 7, 2**63):
            refused = await client.call_tool(
                "dismiss_notification", {"notification_id": notification_id}
            )
            assert error_code(refused) == "not_found"


async def test_mcp_tools_refuse_a_timestamp_outside_the_calendar_as_invalid(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with connect(bearer(alice)) as client:
        for instant in ("0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59.999999Z"):
            added = await client.call_tool("add_task", {"title": "x", "due_at": instant})
            assert error_code(added) == "invalid", error_text(added)
            assert error_text(added).startswith("Invalid arguments: due_at: ")
            listed = await client.call_tool("list_tasks", {"due_before": instant})
            assert error_code(listed) == "invalid", error_text(listed)
    assert await rows(committed_sessionmaker) == []


async def test_a_nul_character_in_a_tool_argument_is_invalid_not_an_internal_error(
    connect: Connect,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Once a protocol "Internal error" with a traceback logged: PostgreSQL cannot store
    # U+0000, and only the REST routes turned its refusal into the client's error.
    async with connect(bearer(alice)) as client:
        task_id = payload(await client.call_tool("add_task", {"title": "Kept"}))["task_id"]
        before = await rows(committed_sessionmaker)
        calls = [
            ("add_task", {"title": "a\x00b"}),
            ("add_task", {"title": "ok", "description": "a\x00b"}),
            ("add_task", {"title": "ok", "tags": ["a\x00b"]}),
            ("update_task", {"task_id": task_id, "title": "a\x00b"}),
            ("list_tasks", {"q": "a\x00b"}),
            ("list_tasks", {"tag": "a\x00"}),
        ]
        for name, arguments in calls:
            refused = await client.call_tool(name, arguments)
            assert error_code(refused) == "invalid", (name, arguments)
            assert error_text(refused) == "Text may not contain the NUL character (U+0000)"
    assert await rows(committed_sessionmaker) == before
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_adding_a_task_past_the_users_limit_is_a_conflict(
    connect: Connect, alice: User, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await set_task_total(committed_sessionmaker, alice, TASKS_PER_USER_MAX)
    async with connect(bearer(alice)) as client:
        refused = await client.call_tool("add_task", {"title": "one more"})
    assert error_code(refused) == "conflict"
    assert error_text(refused) == f"At most {TASKS_PER_USER_MAX} tasks per user; delete some first"
    assert await rows(committed_sessionmaker) == []


async def test_a_tool_call_postgres_aborts_as_a_deadlock_is_unavailable_not_an_internal_error(
    connect: Connect, alice: User, committed_database: Database
) -> None:
    # A real deadlock: another transaction holds the task's row, the tool takes the user's
    # subject lock (shared) and waits for that row, and the other then asks for the subject's
    # lock exclusively. PostgreSQL aborts the one whose deadlock check runs once the cycle is
    # closed: the tool, which waited first, unless its check ran before the other's request
    # (a stalled machine), when the other loses and the scene is played again.
    async with connect(bearer(alice)) as client:

        async def contested() -> CallToolResult | None:
            added = payload(await client.call_tool("add_task", {"title": "contested"}))
            completing: asyncio.Task[CallToolResult] | None = None
            try:
                async with committed_database.unit_of_work() as holder:
                    await holder.fetch_row(
                        "SELECT id FROM todo.tasks WHERE id = $1 FOR UPDATE", added["task_id"]
                    )
                    completing = asyncio.create_task(
                        client.call_tool("complete_task", {"task_id": added["task_id"]})
                    )
                    await eventually(waiting, seconds=5)
                    async with asyncio.timeout(15):
                        await holder.fetch_row(
                            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                            SUBJECT_LOCK_CLASS,
                            alice.sub,
                        )
            except Exception as exc:
                if completing is None or not is_transaction_conflict(exc):
                    raise
                await completing  # the tool went on and completed it
                return None
            assert completing is not None
            return await completing

        async def waiting() -> bool:
            return await lock_waiters(committed_database) == 1

        for _ in range(3):
            result = await contested()
            if result is not None:
                break
        assert result is not None, "the tool was never the deadlock's victim"
        assert error_code(result) == "unavailable"
        assert "nothing was saved" in error_text(result)
        listed = payload(await client.call_tool("list_tasks", {"status": "pending"}))
    assert [task["title"] for task in listed] == ["contested"]


async def test_add_and_update_task_take_a_time_zone_the_recurrence_keeps(
    connect: Connect, alice: User
) -> None:
    async with connect(bearer(alice)) as client:
        added = payload(
            await client.call_tool(
                "add_task",
                {
                    "title": "Stand-up",
                    "recurrence": "daily",
                    "due_at": "2026-10-24T09:00:00+02:00",
                    "time_zone": "Europe/Paris",
                },
            )
        )
        (listed,) = payload(await client.call_tool("list_tasks", {}))
        assert listed["time_zone"] == "Europe/Paris"
        done = payload(await client.call_tool("complete_task", {"task_id": added["task_id"]}))
        pending = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert [(t["id"], t["due_at"], t["time_zone"]) for t in pending] == [
            (done["next_occurrence_id"], "2026-10-25T08:00:00.000000Z", "Europe/Paris")
        ]

        task_id = done["next_occurrence_id"]
        payload(await client.call_tool("update_task", {"task_id": task_id, "time_zone": "UTC"}))
        (changed,) = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert changed["time_zone"] == "UTC"
        payload(await client.call_tool("update_task", {"task_id": task_id, "clear": ["time_zone"]}))
        (cleared,) = payload(await client.call_tool("list_tasks", {"status": "pending"}))
        assert cleared["time_zone"] is None


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "localtime", "X" * 65])
async def test_an_unknown_time_zone_is_refused_by_the_tools(
    connect: Connect,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    zone: str,
) -> None:
    async with connect(bearer(alice)) as client:
        added = await client.call_tool(
            "add_task", {"title": "x", "recurrence": "daily", "time_zone": zone}
        )
        assert error_code(added) == "invalid"
        assert "time_zone" in error_text(added)
        assert await rows(committed_sessionmaker) == []
        task_id = payload(await client.call_tool("add_task", {"title": "x"}))["task_id"]
        before = await rows(committed_sessionmaker)
        updated = await client.call_tool("update_task", {"task_id": task_id, "time_zone": zone})
        assert error_code(updated) == "invalid"
        both = await client.call_tool(
            "update_task", {"task_id": task_id, "time_zone": "UTC", "clear": ["time_zone"]}
        )
        assert "Both set and cleared: time_zone" in error_text(both)
    assert await rows(committed_sessionmaker) == before
