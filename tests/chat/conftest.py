"""Fixtures of the chat service's tests: the app in-process with a test token issuer.

Chat turns commit twice (the user's message, then the reply), so the apps here use
``committed_sessionmaker``: real commits, tables emptied after each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.app import create_app
from chat_service.settings import ChatSettings
from scripts.processes import free_port
from shared.clock import FrozenClock
from shared.db import Database
from tests.support.fake_openai import FakeOpenAI
from tests.support.serving import live_server, serve
from tests.support.tokens import TestIssuer
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings

# A Friday afternoon in UTC: relative dates in the tests are read against it.
NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class User:
    sub: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def alice(issuer: TestIssuer) -> User:
    return User("alice-subject", issuer.mint("alice-subject"))


@pytest.fixture
def bob(issuer: TestIssuer) -> User:
    return User("bob-subject", issuer.mint("bob-subject"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def closed_url() -> str:
    """An MCP URL where nothing listens: the todo service is down."""
    return f"http://127.0.0.1:{free_port()}/api/mcp"


@pytest.fixture
async def todo_mcp_url(
    migrated_url: str,
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[str]:
    """The real todo service (with its MCP server) over HTTP on a free port."""
    settings = TodoSettings(_env_file=None, environment="test", database_url=migrated_url)
    app = create_todo_app(settings, db=committed_database, verifier=issuer.verifier(), clock=clock)
    async with live_server(app) as base:
        yield f"{base}/api/mcp"


@pytest.fixture
async def agent(
    make_chat_app: ChatAppFactory, todo_mcp_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The chat service with the rule-based agent, talking to the real todo service."""
    async with serve(make_chat_app(todo_mcp_url=todo_mcp_url)) as client:
        yield client


@pytest.fixture
def chat_settings(migrated_url: str, closed_url: str) -> Callable[..., ChatSettings]:
    def build(**overrides: Any) -> ChatSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": migrated_url,
            "todo_mcp_url": closed_url,
            "todo_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return ChatSettings(_env_file=None, **values)

    return build


ChatAppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_chat_app(
    chat_settings: Callable[..., ChatSettings],
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> ChatAppFactory:
    """A fresh chat app on the shared database (call twice to "restart" the service)."""

    def build(**overrides: Any) -> FastAPI:
        return create_app(
            chat_settings(**overrides),
            db=committed_database,
            verifier=issuer.verifier(),
            clock=clock,
        )

    return build


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI().running() as fake:
        yield fake


@pytest.fixture
def openai_app(make_chat_app: ChatAppFactory, todo_mcp_url: str, model: FakeOpenAI) -> Any:
    """Build the chat service with the OpenAI agent on the fake model and the real todo."""

    def build(**overrides: Any) -> Any:
        settings: dict[str, Any] = {
            "agent": "openai",
            "openai_base_url": model.base_url,
            "openai_api_key": "test-key",
            "openai_model": "fake-model",
            "openai_timeout_seconds": 2.0,
            "openai_max_retries": 0,
            "todo_mcp_url": todo_mcp_url,
        }
        settings.update(overrides)
        return make_chat_app(**settings)

    return build


@pytest.fixture
async def client(make_chat_app: ChatAppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(make_chat_app()) as client:
        yield client


@dataclass(frozen=True)
class StoredMessage:
    conversation_id: int
    user_id: str
    role: str
    content: str
    tool_calls: Any
    state: Any = None  # the assistant's stored DialogueState


async def stored_messages(
    maker: async_sessionmaker[AsyncSession], conversation_id: int | None = None
) -> list[StoredMessage]:
    """What the database holds, read directly (not through the API under test)."""
    query = "SELECT conversation_id, user_id, role, content, tool_calls, state FROM chat.messages"
    params: dict[str, Any] = {}
    if conversation_id is not None:
        query += " WHERE conversation_id = :cid"
        params["cid"] = conversation_id
    async with maker() as session:
        connection = await session.connection()
        rows = (await connection.execute(text(query + " ORDER BY id"), params)).all()
    return [StoredMessage(*row) for row in rows]


async def conversation_count(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        connection = await session.connection()
        count = await connection.execute(text("SELECT count(*) FROM chat.conversations"))
        return int(count.scalar_one())
