"""Small async helpers that drive the auth API the way a client does."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support.errors import assert_error

PASSWORD = "correct horse battery"


async def register(
    client: httpx.AsyncClient,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    name: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "password": password}
    if name is not None:
        body["name"] = name
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


async def login(
    client: httpx.AsyncClient, email: str = "ann@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


async def signed_up(
    client: httpx.AsyncClient, email: str = "ann@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    """Register and log in: the token pair of a fresh account."""
    await register(client, email, password)
    return await login(client, email, password)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


def assert_unauthorized(response: httpx.Response, code: str) -> dict[str, Any]:
    body = assert_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"
    return body


async def count(maker: async_sessionmaker[AsyncSession], table: type[SQLModel]) -> int:
    async with maker() as session:
        result = await session.exec(select(func.count()).select_from(table))
        return int(result.one())
