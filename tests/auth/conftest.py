"""Fixtures of the auth tests: the app on the per-test database, its key and its frozen clock.

The throttling settings are small (3 failures per account and address in 10 minutes, 5 per
account from unknown addresses in an hour) so tests stay short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from auth_service.app import create_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.support.serving import serve


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
        lockout_window_seconds=600,
        lockout_account_ceiling=5,
        lockout_account_window_seconds=3600,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def auth_app(
    auth_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> FastAPI:
    return create_app(auth_settings, db=database, clock=clock)


@pytest.fixture
async def client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(auth_app) as client:
        yield client


@pytest.fixture
def committed_app(
    auth_settings: AuthSettings,
    committed_database: Database,
    clock: FrozenClock,
) -> FastAPI:
    return create_app(auth_settings, db=committed_database, clock=clock)


@pytest.fixture
async def committed_client(committed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(committed_app) as client:
        yield client
