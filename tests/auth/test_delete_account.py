"""``DELETE /api/auth/me``: the password re-entered deletes the account, ends every session at
once and writes ``user.deleted`` to the outbox in the same transaction; every refusal
changes nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.events import USER_EVENT_MAX_BYTES, USER_REGISTERED
from auth_service.models import OUTBOX, KnownAddress, RefreshFamily, RefreshToken, User
from shared.events import EVENT_ID_MAX, USER_DELETED, USERS_STREAM, Event
from tests.auth.factories import (
    PASSWORD,
    assert_unauthorized,
    bearer,
    count,
    refresh,
    signed_up,
)
from tests.support.errors import assert_error


async def delete_me(client: httpx.AsyncClient, token: str, body: object) -> httpx.Response:
    return await client.request("DELETE", "/api/auth/me", json=body, headers=bearer(token))


async def outbox(maker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, str, dict]]:
    async with maker() as session:
        connection = await session.connection()
        rows = await connection.execute(
            select(OUTBOX.c.stream, OUTBOX.c.type, OUTBOX.c.key, OUTBOX.c.data).order_by(
                OUTBOX.c.id
            )
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def test_deleting_the_account_removes_it_ends_every_session_and_writes_the_event(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    second = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    user_id = pair["user"]["id"]

    response = await delete_me(client, pair["access_token"], {"password": PASSWORD})

    assert response.status_code == 204, response.text
    assert response.content == b""
    for table in (User, RefreshFamily, RefreshToken, KnownAddress):
        assert await count(sessionmaker, table) == 0, table
    # Both sessions are over at once: neither refresh token works.
    for token in (pair["refresh_token"], second.json()["refresh_token"]):
        assert_unauthorized(await refresh(client, token), "invalid_refresh_token")
    # The access token outlives the account only as a 401 here.
    assert_unauthorized(
        await client.get("/api/auth/me", headers=bearer(pair["access_token"])), "invalid_token"
    )
    events = await outbox(sessionmaker)
    assert [(stream, kind, key) for stream, kind, key, _ in events] == [
        (USERS_STREAM, USER_REGISTERED, user_id),
        (USERS_STREAM, USER_DELETED, user_id),
    ]
    # No email or name leaves the service: the id and the moment only.
    assert events[0][3]["user_id"] == events[1][3]["user_id"] == user_id
    assert set(events[0][3]) == {"user_id", "registered_at"}
    assert set(events[1][3]) == {"user_id", "deleted_at"}
    assert events[0][3]["registered_at"].endswith("Z")
    # On the stream, with the longest event id and moment, each is within the size Redis's
    # memory budget counts for the users stream.
    for _, kind, key, data in events:
        longest = Event(
            id="9" * EVENT_ID_MAX,
            type=kind,
            version=1,
            key=key,
            occurred_at="9999-12-31T23:59:59.999999Z",
            data=data,
        )
        assert len(longest.to_json()) <= USER_EVENT_MAX_BYTES


async def test_a_wrong_password_is_403_and_deletes_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    response = await delete_me(client, pair["access_token"], {"password": "not the password"})
    assert_error(response, 403, "wrong_password")
    assert await count(sessionmaker, User) == 1
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
    assert [kind for _, kind, _, _ in await outbox(sessionmaker)] == [USER_REGISTERED]


async def test_wrong_passwords_are_throttled_like_logins_even_for_the_right_one(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    for _ in range(3):  # the tests' threshold
        assert_error(await delete_me(client, pair["access_token"], {"password": "nope"}), 403)
    locked = await delete_me(client, pair["access_token"], {"password": PASSWORD})
    assert_error(locked, 429, "login_locked")
    assert int(locked.headers["retry-after"]) > 0
    assert await count(sessionmaker, User) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": ""},
        {"password": "x" * 129},
        {"password": 12345678},
        {"password": PASSWORD, "user_id": "someone else"},
        [PASSWORD],
        None,
    ],
    ids=["missing", "empty", "too long", "not a string", "unknown field", "a list", "no body"],
)
async def test_a_malformed_body_is_422_and_deletes_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], body: object
) -> None:
    pair = await signed_up(client)
    assert_error(await delete_me(client, pair["access_token"], body), 422, "validation_error")
    assert await count(sessionmaker, User) == 1


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "not_authenticated"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
    ],
)
async def test_without_a_valid_token_it_is_401_and_deletes_nothing(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    headers: dict[str, str],
    code: str,
) -> None:
    await signed_up(client)
    response = await client.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=headers
    )
    assert_unauthorized(response, code)
    assert await count(sessionmaker, User) == 1


async def test_a_second_deletion_with_the_same_token_is_401(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    assert (
        await delete_me(client, pair["access_token"], {"password": PASSWORD})
    ).status_code == 204
    again = await delete_me(client, pair["access_token"], {"password": PASSWORD})
    assert_unauthorized(again, "invalid_token")
    assert [kind for _, kind, _, _ in await outbox(sessionmaker)].count(USER_DELETED) == 1


async def test_deleting_one_account_leaves_another_untouched(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ann = await signed_up(client)
    bob = await signed_up(client, "bob@example.com")
    assert (await delete_me(client, ann["access_token"], {"password": PASSWORD})).status_code == 204
    me = await client.get("/api/auth/me", headers=bearer(bob["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == bob["user"]["id"]
    assert (await refresh(client, bob["refresh_token"])).status_code == 200
