"""Races on committed data: concurrent registrations of one email, concurrent failed logins."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import User
from tests.auth.factories import PASSWORD, count, register
from tests.support.errors import assert_error


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
