"""Races on committed data: concurrent registrations of one email, concurrent failed logins."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import User
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import PASSWORD, count, register
from tests.support.errors import assert_error
from tests.support.serving import serve


async def test_concurrent_registrations_of_one_email_create_one_account(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    bodies = [
        {"email": "ann@example.com", "password": PASSWORD},
        {"email": "ANN@example.com", "password": "another password"},
        {"email": "Ann@Example.com", "password": "a third password"},
    ]

    responses = await asyncio.gather(
        *(committed_client.post("/api/auth/register", json=body) for body in bodies)
    )

    assert sorted(response.status_code for response in responses) == [201, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "email_taken")
    assert await count(committed_sessionmaker, User) == 1


async def test_concurrent_failed_logins_all_count_towards_the_lockout(
    committed_client: httpx.AsyncClient,
) -> None:
    await register(committed_client, "ann@example.com")
    body = {"email": "ann@example.com", "password": "not the password"}

    guesses = await asyncio.gather(
        *(committed_client.post("/api/auth/login", json=body) for _ in range(3))
    )
    after = await committed_client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )

    assert [response.status_code for response in guesses] == [401, 401, 401]
    assert_error(after, 429, "login_locked")


async def test_of_twenty_parallel_guesses_only_the_threshold_reach_the_password_check(
    committed_app: FastAPI, committed_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each guess is counted before its hash is checked, so the threshold (3) bounds how many
    are checked however many arrive at once; the rest are refused, the right password too."""
    await register(committed_client, "ann@example.com")
    hasher = committed_app.state.auth.hasher
    real_verify = hasher.verify
    checked: list[str] = []

    async def counting_verify(password: str, hashed: str) -> tuple[bool, str | None]:
        checked.append(password)
        result: tuple[bool, str | None] = await real_verify(password, hashed)
        return result

    monkeypatch.setattr(hasher, "verify", counting_verify)
    passwords = ["not the password"] * 19 + [PASSWORD]

    responses = await asyncio.gather(
        *(
            committed_client.post(
                "/api/auth/login", json={"email": "ann@example.com", "password": password}
            )
            for password in passwords
        )
    )

    assert len(checked) == 3
    refused = [response for response in responses if response.status_code == 429]
    assert len(refused) == 17
    for response in refused:
        assert_error(response, 429, "login_locked")


# An Argon2id hash (of nothing: it never matches) whose parameters make its check slow.
SLOW_HASH = "$argon2id$v=19$m=65536,t=32,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43


async def test_a_sign_in_beyond_the_hashing_line_is_refused_at_once_and_counts_nowhere(
    auth_settings: AuthSettings,
    committed_database: Database,
    clock: FrozenClock,
) -> None:
    """With one hashing thread and one place in line, a third password check waiting for them
    is a 503 with Retry-After, not a wait behind the line; and a guess refused so was never
    checked, so it does not count towards the lockout (threshold 3)."""
    settings = auth_settings.model_copy(
        update={"password_hash_workers": 1, "password_hash_queue": 1}
    )
    app = create_app(settings, db=committed_database, clock=clock)
    wrong = {"email": "ann@example.com", "password": "not the password"}
    async with serve(app) as client:
        await register(client, "ann@example.com")
        hasher = app.state.auth.hasher
        # The thread and the place in line, taken by two checks started just before: the
        # first against a stored hash of costly parameters (about 1.5 s, far longer than the
        # sign-in takes to reach the line on a loaded machine).
        line = [
            asyncio.create_task(hasher.verify("occupant", SLOW_HASH)),
            asyncio.create_task(hasher.hash("occupant")),
        ]
        await asyncio.sleep(0)
        refused = await client.post("/api/auth/login", json=wrong)
        await asyncio.gather(*line)
        afterwards = [
            (await client.post("/api/auth/login", json=wrong)).status_code for _ in range(4)
        ]

    assert_error(refused, 503, "password_check_busy")
    assert refused.headers["retry-after"] == "1"
    assert afterwards == [401, 401, 401, 429]
