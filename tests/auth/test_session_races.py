"""Ending a session while a thief rotates its refresh token, on committed data (real races).

Each test plays many rounds: a thief refreshes in a loop with a stolen token while the owner
logs out, changes the password or replays the spent token. Once the owner's request has
returned, no refresh token of the session may work, however the requests interleaved.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service import service
from auth_service.models import User
from auth_service.settings import AuthSettings
from tests.auth.factories import PASSWORD, bearer, login, refresh, register

ROUNDS = 50
# Rotations the thief tries after the owner's request returned; any success is a survivor.
AFTER_OWNER = 3
OTHER_PASSWORD = "another correct horse"


@pytest.fixture
def auth_settings(auth_settings: AuthSettings) -> AuthSettings:
    """The lockout is not under test here (a round's refused old password must not add up),
    and the hashing threads keep the loop's priority so rounds do not wait behind other work."""
    return auth_settings.model_copy(
        update={
            "lockout_threshold": 10 * ROUNDS,
            "lockout_account_ceiling": 10 * ROUNDS,
            "password_hash_niceness": 0,
        }
    )


async def new_session(app: FastAPI, maker: async_sessionmaker[AsyncSession], user_id: str) -> str:
    """A fresh login session's refresh token, minted as a login does but without the hash
    (hashing would make 50 rounds take minutes)."""
    async with maker() as session:
        user = await session.get(User, uuid.UUID(user_id))
        assert user is not None
        pair = await service.issue_tokens(session, app.state.auth, user)
        await session.commit()
        return pair.refresh_token


async def steal_and_rotate(
    client: httpx.AsyncClient, token: str, owner_done: asyncio.Event, started: asyncio.Event
) -> list[str]:
    """Rotate ``token`` until refused; the tokens the thief held, in order."""
    held = [token]
    tries_after_owner = 0
    while tries_after_owner <= AFTER_OWNER:
        if owner_done.is_set():
            tries_after_owner += 1
        response = await refresh(client, held[-1])
        started.set()
        if response.status_code != 200:
            break
        held.append(response.json()["refresh_token"])
    return held


async def race_the_thief(
    client: httpx.AsyncClient,
    stolen: str,
    owner: Callable[[], Awaitable[httpx.Response]],
    owner_status: int,
) -> list[str]:
    """The owner's request, sent a moment into the thief's loop; the thief's tokens."""
    owner_done, started = asyncio.Event(), asyncio.Event()
    thief = asyncio.create_task(steal_and_rotate(client, stolen, owner_done, started))
    await started.wait()
    await asyncio.sleep(random.uniform(0, 0.01))
    response = await owner()
    owner_done.set()
    assert response.status_code == owner_status, response.text
    return await thief


async def assert_no_token_works(client: httpx.AsyncClient, tokens: list[str]) -> None:
    # Newest first: the token minted by the rotation racing the owner is the one at risk.
    for token in reversed(tokens[-3:]):
        response = await refresh(client, token)
        assert response.status_code == 401, f"a refresh token survived: {response.text}"


async def test_no_refresh_token_survives_a_logout_racing_a_thief(
    committed_app: FastAPI,
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await register(committed_client)
    for _ in range(ROUNDS):
        token = await new_session(committed_app, committed_sessionmaker, user["id"])

        held = await race_the_thief(
            committed_client,
            token,
            lambda token=token: committed_client.post(
                "/api/auth/logout", json={"refresh_token": token}
            ),
            204,
        )

        await assert_no_token_works(committed_client, held)


async def test_no_refresh_token_survives_a_replay_racing_a_thief(
    committed_app: FastAPI,
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The owner replays the token the thief already spent: reuse revokes the whole family."""
    user = await register(committed_client)
    for _ in range(ROUNDS):
        token = await new_session(committed_app, committed_sessionmaker, user["id"])

        held = await race_the_thief(
            committed_client,
            token,
            lambda token=token: refresh(committed_client, token),
            401,
        )

        await assert_no_token_works(committed_client, held)


async def test_no_refresh_token_survives_a_password_change_racing_a_thief(
    committed_app: FastAPI,
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await register(committed_client)
    # Access tokens outlive a password change (stateless by design): one serves every round.
    owner = bearer((await login(committed_client))["access_token"])
    passwords = [PASSWORD, OTHER_PASSWORD]
    for round_ in range(ROUNDS):
        current, new = passwords[round_ % 2], passwords[(round_ + 1) % 2]
        token = await new_session(committed_app, committed_sessionmaker, user["id"])
        body = {"current_password": current, "new_password": new}

        held = await race_the_thief(
            committed_client,
            token,
            lambda body=body: committed_client.post("/api/auth/password", json=body, headers=owner),
            200,
        )

        await assert_no_token_works(committed_client, held)


async def test_the_old_password_never_yields_a_session_after_a_change_commits(
    committed_client: httpx.AsyncClient,
) -> None:
    """A login with the old password racing the change: refused, or its session revoked."""
    await register(committed_client)
    owner = bearer((await login(committed_client))["access_token"])
    passwords = [PASSWORD, OTHER_PASSWORD]
    for round_ in range(ROUNDS):
        current, new = passwords[round_ % 2], passwords[(round_ + 1) % 2]

        async def late_login(current: str = current) -> httpx.Response:
            await asyncio.sleep(random.uniform(0, 0.08))
            return await committed_client.post(
                "/api/auth/login", json={"email": "ann@example.com", "password": current}
            )

        changed, raced = await asyncio.gather(
            committed_client.post(
                "/api/auth/password",
                json={"current_password": current, "new_password": new},
                headers=owner,
            ),
            late_login(),
        )

        assert changed.status_code == 200, changed.text
        assert raced.status_code in (200, 401), raced.text
        if raced.status_code == 200:
            session: dict[str, Any] = raced.json()
            survivor = await refresh(committed_client, session["refresh_token"])
            assert survivor.status_code == 401, "the old password yielded a live session"
