"""Fixtures of the webhooks' tests: a DNS answered from a table (what a hostile name
resolves to is the test's choice), a sealing key of the test's own, the todo app with both,
and a snapshot of the webhooks' tables."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from shared.sealing import SecretBox
from tests.support.serving import serve
from tests.support.tokens import TestIssuer
from tests.todo.conftest import User
from todo_service.app import create_app
from todo_service.settings import TodoSettings
from todo_service.webhooks.targets import IPAddress

PUBLIC_HOST = "hooks.example.com"
PUBLIC_URL = f"https://{PUBLIC_HOST}/receive"


class TableDns:
    """A resolver answering from ``answers`` (name -> addresses); unknown names resolve to
    nothing. ``asked`` records every lookup."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return [ipaddress.ip_address(a) for a in self.answers.get(host, [])]


@pytest.fixture
def dns() -> TableDns:
    return TableDns({PUBLIC_HOST: ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})


@pytest.fixture
def box_key() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def box(box_key: bytes) -> SecretBox:
    return SecretBox([box_key])


@pytest.fixture
async def hooks(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_todo(todo_settings, database, issuer, clock, dns, box) as client:
        yield client


@asynccontextmanager
async def serve_todo(
    settings: TodoSettings,
    db: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
) -> AsyncIterator[httpx.AsyncClient]:
    """The todo app on ``db`` with the tests' token issuer, clock, DNS and sealing keys."""
    app = create_app(
        settings,
        db=db,
        verifier=issuer.verifier(),
        clock=clock,
        resolver=dns,
        webhook_box=box,
    )
    async with serve(app) as client:
        yield client


async def register(
    client: httpx.AsyncClient, user: User, url: str = PUBLIC_URL, **fields: Any
) -> dict[str, Any]:
    response = await client.post("/api/webhooks", json={"url": url, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


WEBHOOK_TABLES = (("webhooks", "id"), ("webhook_deliveries", "id"), ("webhook_events", "event_id"))


@pytest.fixture
def webhook_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    """Every row of the webhooks' tables, to prove a refused request changed nothing."""

    async def take() -> list[dict[str, Any]]:
        async with sessionmaker() as session:
            connection = await session.connection()
            rows = []
            for table, key in WEBHOOK_TABLES:
                statement = f"SELECT * FROM todo.{table} ORDER BY {key}"  # noqa: S608
                result = await connection.execute(text(statement))
                rows += [{"table": table, **row._asdict()} for row in result]
            return rows

    return take
