"""Races on committed data: concurrent registrations of one email, concurrent failed logins."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import User
from tests.auth.factories import PASSWORD, assert_error, count, register


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
