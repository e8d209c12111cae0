from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.app import create_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock


@pytest.fixture(scope="session")
def signing_pem() -> str:
    return generate_pem()


@pytest.fixture
def auth_settings(migrated_url: str, signing_pem: str) -> AuthSettings:
    return AuthSettings(
        _env_file=None,
        environment="test",
        database_url=migrated_url,
        signing_keys=SecretStr(signing_pem),
        lockout_threshold=3,
        lockout_base_seconds=30,
        lockout_max_seconds=600,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


async def _serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def auth_app(
    auth_settings: AuthSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> FastAPI:
    return create_app(auth_settings, sessionmaker=sessionmaker, clock=clock)


@pytest.fixture
async def client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _serve(auth_app):
        yield client


@pytest.fixture
async def committed_client(
    auth_settings: AuthSettings,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(auth_settings, sessionmaker=committed_sessionmaker, clock=clock)
    async for client in _serve(app):
        yield client
