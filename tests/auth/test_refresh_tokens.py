"""Refresh-token rotation, reuse detection per family, and revocation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import RefreshFamily, RefreshToken
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import assert_unauthorized, bearer, count, login, refresh, signed_up
from tests.support.errors import assert_error
from tests.support.serving import serve


async def test_reusing_a_spent_token_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    first = await signed_up(client)
    second = (await refresh(client, first["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()

    replay = await refresh(client, first["refresh_token"])

    assert_unauthorized(replay, "refresh_token_reused")
    assert_unauthorized(await refresh(client, third["refresh_token"]), "invalid_refresh_token")


async def test_reuse_revokes_the_token_issued_from_the_first_use(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)
    legitimate = (await refresh(client, pair["refresh_token"])).json()

    stolen = await refresh(client, pair["refresh_token"])

    assert_unauthorized(stolen, "refresh_token_reused")
    assert_unauthorized(await refresh(client, legitimate["refresh_token"]), "invalid_refresh_token")


async def test_reuse_leaves_the_users_other_sessions_alone(client: httpx.AsyncClient) -> None:
    laptop = await signed_up(client)
    phone = await login(client)
    await refresh(client, laptop["refresh_token"])

    await refresh(client, laptop["refresh_token"])

    assert (await refresh(client, phone["refresh_token"])).status_code == 200


async def test_a_revoked_family_stays_revoked_after_the_failed_request(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    await refresh(client, pair["refresh_token"])

    await refresh(client, pair["refresh_token"])

    async with sessionmaker() as session:
        tokens = (await session.exec(select(RefreshToken))).all()
    assert len(tokens) == 2
    assert all(token.revoked_at is not None for token in tokens)


async def test_two_concurrent_refreshes_with_one_token_have_exactly_one_winner(
    committed_client: httpx.AsyncClient,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    pair = await signed_up(committed_client)

    responses = await asyncio.gather(
        refresh(committed_client, pair["refresh_token"]),
        refresh(committed_client, pair["refresh_token"]),
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401]
    loser = next(response for response in responses if response.status_code == 401)
    assert_unauthorized(loser, "refresh_token_reused")
    # One login token plus exactly one rotated token: the loser minted nothing.
    assert await count(committed_sessionmaker, RefreshToken) == 2
    # The loser presented a spent token, which is reuse: the winner's new token is revoked
    # too. Clients keep one refresh in flight per session.
    winner = next(response for response in responses if response.status_code == 200)
    assert (await refresh(committed_client, winner.json()["refresh_token"])).status_code == 401


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    pair = await signed_up(client)

    clock.advance(days=30)
    expired = await refresh(client, pair["refresh_token"])

    assert_unauthorized(expired, "invalid_refresh_token")


async def test_a_refresh_token_works_until_just_before_it_expires(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    pair = await signed_up(client)

    clock.advance(days=30, seconds=-1)

    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_unknown_and_access_tokens_are_not_refresh_tokens(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)

    unknown = await refresh(client, "x" * 43)
    access = await refresh(client, pair["access_token"])

    assert_unauthorized(unknown, "invalid_refresh_token")
    # An access token is longer than any refresh token, so the body bound refuses it first.
    assert_error(access, 422, "validation_error")
    assert await count(sessionmaker, RefreshToken) == 1


async def test_refresh_rejects_bad_bodies(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)

    empty = await refresh(client, "")
    too_long = await refresh(client, "x" * 257)
    extra = await client.post(
        "/api/auth/refresh", json={"refresh_token": pair["refresh_token"], "user_id": "x"}
    )
    missing = await client.post("/api/auth/refresh", json={})

    for response in (empty, too_long, extra, missing):
        assert_error(response, 422, "validation_error")
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_revokes_tokens_already_rotated_in_the_family(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)
    rotated = (await refresh(client, pair["refresh_token"])).json()

    response = await client.post(
        "/api/auth/logout", json={"refresh_token": rotated["refresh_token"]}
    )

    assert response.status_code == 204
    assert_unauthorized(await refresh(client, rotated["refresh_token"]), "invalid_refresh_token")
    async with sessionmaker() as session:
        active = await session.exec(
            select(RefreshToken).where(col(RefreshToken.revoked_at).is_(None))
        )
        assert active.all() == []


async def test_access_tokens_outlive_a_logout_until_they_expire(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Access tokens are stateless by design (15 minutes); logout ends the refresh session."""
    pair = await signed_up(client)
    await client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]})

    still = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))
    clock.advance(minutes=16)
    later = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))

    assert still.status_code == 200
    assert_unauthorized(later, "invalid_token")


async def test_rotation_never_extends_a_session_past_its_absolute_lifetime(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Sessions end 90 days (AUTH_SESSION_MAX_DAYS) after the login, however often refreshed."""
    pair = await signed_up(client)
    for _ in range(4):  # day 20, 40, 60, 80
        clock.advance(days=20)
        response = await refresh(client, pair["refresh_token"])
        assert response.status_code == 200, response.text
        pair = response.json()

    # Rotated on day 80: the new token lives 10 days, not 30.
    assert pair["refresh_expires_in"] == 10 * 86400
    clock.advance(days=10, seconds=-1)
    last = await refresh(client, pair["refresh_token"])
    assert last.status_code == 200, last.text
    assert last.json()["refresh_expires_in"] == 1
    clock.advance(seconds=1)
    assert_unauthorized(
        await refresh(client, last.json()["refresh_token"]), "invalid_refresh_token"
    )


async def test_a_token_outliving_its_session_is_refused_when_the_session_ends(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The session's end is checked, not only the token's: a family the 0002 migration made
    ends 90 days after its first token, while a token rotated late in it by the code before
    (no cap) lives 30 days from its rotation."""
    pair = await signed_up(client)
    clock.advance(days=10)
    async with sessionmaker() as session:
        await session.exec(update(RefreshFamily).values(expires_at=clock() - timedelta(seconds=1)))
        await session.commit()

    response = await refresh(client, pair["refresh_token"])

    assert_unauthorized(response, "invalid_refresh_token")


async def test_a_new_login_starts_a_new_session_lifetime(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await signed_up(client)
    clock.advance(days=89)

    second = await login(client)

    assert second["refresh_expires_in"] == 30 * 86400
    clock.advance(days=1)
    assert_unauthorized(await refresh(client, first["refresh_token"]), "invalid_refresh_token")
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_a_shorter_session_lifetime_applies_to_sessions_begun_before_it(
    client: httpx.AsyncClient,
    auth_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> None:
    """AUTH_SESSION_MAX_DAYS lowered (90 to 7, say, after an incident): a session begun
    under the old setting ends 7 days after its login too, not 90."""
    pair = await signed_up(client)
    shorter = create_app(
        auth_settings.model_copy(update={"session_max_days": 7}), db=database, clock=clock
    )
    async with serve(shorter) as restarted:
        clock.advance(days=6)
        renewed = await refresh(restarted, pair["refresh_token"])
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["refresh_expires_in"] == 86400
        clock.advance(days=1)
        assert_unauthorized(
            await refresh(restarted, renewed.json()["refresh_token"]), "invalid_refresh_token"
        )


async def test_a_shorter_refresh_token_lifetime_applies_to_tokens_issued_before_it(
    client: httpx.AsyncClient,
    auth_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> None:
    """AUTH_REFRESH_TOKEN_TTL_DAYS lowered (30 to 1): a token issued under the old setting
    is refused a day after it was issued too, not 30."""
    pair = await signed_up(client)
    settings = auth_settings.model_copy(update={"refresh_token_ttl_days": 1})
    async with serve(create_app(settings, db=database, clock=clock)) as restarted:
        clock.advance(days=1)
        assert_unauthorized(
            await refresh(restarted, pair["refresh_token"]), "invalid_refresh_token"
        )
