"""The account's time zone, signing out everywhere, and which sessions a password change
keeps: the happy path and the unhappy edges of each."""

from __future__ import annotations

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import RefreshFamily, User
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import (
    PASSWORD,
    assert_unauthorized,
    bearer,
    login,
    refresh,
    register,
    signed_up,
)
from tests.support.errors import assert_error
from tests.support.serving import serve

NEW_PASSWORD = "a brand new secret"


async def stored_user(maker: async_sessionmaker[AsyncSession]) -> User:
    async with maker() as session:
        return (await session.exec(select(User))).one()


# --- time zone --------------------------------------------------------------------------


async def test_a_new_account_is_in_utc_unless_registration_names_a_zone(
    client: httpx.AsyncClient,
) -> None:
    plain = await register(client, "ann@example.com")
    response = await client.post(
        "/api/auth/register",
        json={"email": "bob@example.com", "password": PASSWORD, "timezone": "America/New_York"},
    )

    assert plain["timezone"] == "UTC"
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == "America/New_York"
    pair = await login(client, "bob@example.com")
    assert pair["user"]["timezone"] == "America/New_York"
    me = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))
    assert me.json()["timezone"] == "America/New_York"


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "",
        "../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "localtime",
        "x" * 65,
        5,
        None,
    ],
    ids=["unknown", "empty", "path", "absolute path", "server's", "too long", "number", "null"],
)
async def test_registration_with_a_bad_zone_is_422_and_creates_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], zone: object
) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": "ann@example.com", "password": PASSWORD, "timezone": zone},
    )

    assert_error(response, 422, "validation_error")
    async with sessionmaker() as session:
        assert (await session.exec(select(User))).first() is None


async def test_patch_me_changes_the_zone_and_keeps_the_name(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, name="Ann")
    pair = await login(client)
    headers = bearer(pair["access_token"])
    clock.advance(seconds=5)

    changed = await client.patch("/api/auth/me", json={"timezone": "Asia/Kolkata"}, headers=headers)
    kept = await client.patch("/api/auth/me", json={"name": "Ann Lee"}, headers=headers)

    assert changed.status_code == 200, changed.text
    assert changed.json()["timezone"] == "Asia/Kolkata"
    assert changed.json()["name"] == "Ann"
    assert changed.json()["updated_at"] > pair["user"]["updated_at"]
    assert kept.json()["timezone"] == "Asia/Kolkata"
    me = await client.get("/api/auth/me", headers=headers)
    assert me.json()["timezone"] == "Asia/Kolkata"


@pytest.mark.parametrize(
    "zone", ["Nowhere/Special", None, "", "UTC\x00", "Europe/../UTC"], ids=repr
)
async def test_patch_me_with_a_bad_zone_is_422_and_changes_nothing(
    client: httpx.AsyncClient, zone: object
) -> None:
    pair = await signed_up(client)
    headers = bearer(pair["access_token"])

    response = await client.patch("/api/auth/me", json={"timezone": zone}, headers=headers)

    assert_error(response, 422, "validation_error")
    me = (await client.get("/api/auth/me", headers=headers)).json()
    assert me == pair["user"]


async def test_patch_me_null_zone_is_not_in_the_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/auth/openapi.json")).json()

    zone = document["components"]["schemas"]["MeUpdate"]["properties"]["timezone"]
    assert zone["type"] == "string"
    assert "anyOf" not in zone


async def test_patch_me_of_the_zone_needs_a_token(client: httpx.AsyncClient) -> None:
    await register(client)

    response = await client.patch("/api/auth/me", json={"timezone": "Europe/Paris"})

    assert_unauthorized(response, "not_authenticated")


# --- sign out everywhere ----------------------------------------------------------------


async def test_logout_all_revokes_every_session_of_the_account_only(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    laptop = await signed_up(client)
    phone = await login(client)
    bob = await signed_up(client, "bob@example.com")

    response = await client.post("/api/auth/logout-all", headers=bearer(phone["access_token"]))

    assert response.status_code == 204, response.text
    assert response.content == b""
    for session in (laptop, phone):
        assert_unauthorized(
            await refresh(client, session["refresh_token"]), "invalid_refresh_token"
        )
    # Another account's session is untouched, and the password still signs in.
    assert (await refresh(client, bob["refresh_token"])).status_code == 200
    again = await login(client)
    assert (await refresh(client, again["refresh_token"])).status_code == 200
    async with sessionmaker() as session:
        families = (await session.exec(select(RefreshFamily))).all()
    ann_id = laptop["user"]["id"]
    revoked = {str(f.user_id) for f in families if f.revoked_at is not None}
    assert revoked == {ann_id}


async def test_logout_all_twice_is_still_204(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)
    headers = bearer(pair["access_token"])

    first = await client.post("/api/auth/logout-all", headers=headers)
    second = await client.post("/api/auth/logout-all", headers=headers)

    assert first.status_code == second.status_code == 204


async def test_logout_all_needs_a_valid_access_token_and_ends_nothing_without_one(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)
    forged = jwt.encode(
        {"sub": pair["user"]["id"]}, "not the key, though long enough for HS256", algorithm="HS256"
    )

    anonymous = await client.post("/api/auth/logout-all")
    with_refresh = await client.post("/api/auth/logout-all", headers=bearer(pair["refresh_token"]))
    with_forged = await client.post("/api/auth/logout-all", headers=bearer(forged))

    assert_unauthorized(anonymous, "not_authenticated")
    assert_unauthorized(with_refresh, "invalid_token")
    assert_unauthorized(with_forged, "invalid_token")
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_all_with_an_expired_access_token_is_401(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    pair = await signed_up(client)
    clock.advance(seconds=pair["expires_in"] + 3600)

    response = await client.post("/api/auth/logout-all", headers=bearer(pair["access_token"]))

    assert_unauthorized(response, "invalid_token")


async def test_logout_all_accepts_no_get(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)

    response = await client.get("/api/auth/logout-all", headers=bearer(pair["access_token"]))

    assert_error(response, 405)
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


# --- password change: this device stays, every other one goes ---------------------------


async def test_password_change_answers_a_fresh_pair_of_a_new_session(
    client: httpx.AsyncClient,
) -> None:
    laptop = await signed_up(client)
    phone = await login(client)

    response = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(laptop["access_token"]),
    )

    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["token_type"] == "bearer"
    assert fresh["user"]["id"] == laptop["user"]["id"]
    me = await client.get("/api/auth/me", headers=bearer(fresh["access_token"]))
    assert me.status_code == 200
    # The fresh session works and rotates; every session from before, this device's old one
    # included, is over.
    rotated = await refresh(client, fresh["refresh_token"])
    assert rotated.status_code == 200
    for old in (laptop, phone):
        assert_unauthorized(await refresh(client, old["refresh_token"]), "invalid_refresh_token")


async def test_failed_password_change_issues_no_tokens(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)

    wrong = await client.post(
        "/api/auth/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=bearer(pair["access_token"]),
    )

    body = assert_error(wrong, 400, "wrong_password")
    assert "refresh_token" not in body
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


# --- live sessions per account ------------------------------------------------------------


async def test_a_login_beyond_the_accounts_live_sessions_ends_the_oldest(
    auth_settings: AuthSettings, database: Database, clock: FrozenClock
) -> None:
    capped = auth_settings.model_copy(update={"max_sessions_per_user": 3})
    async with serve(create_app(capped, db=database, clock=clock)) as client:
        pairs = [await signed_up(client)]
        others = await signed_up(client, "bob@example.com")
        # A logged-out session does not count; an old one past the cap ends.
        ended = await login(client)
        assert (
            await client.post("/api/auth/logout", json={"refresh_token": ended["refresh_token"]})
        ).status_code == 204
        for _ in range(3):
            clock.advance(seconds=1)
            pairs.append(await login(client))
        assert_unauthorized(
            await refresh(client, pairs[0]["refresh_token"]), "invalid_refresh_token"
        )
        for pair in pairs[1:]:
            assert (await refresh(client, pair["refresh_token"])).status_code == 200
        # Another account's sessions are its own.
        assert (await refresh(client, others["refresh_token"])).status_code == 200
    row = await database.fetch_row(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL), count(*) FROM auth.refresh_families "
        "JOIN auth.users ON users.id = refresh_families.user_id WHERE email = 'ann@example.com'"
    )
    assert row is not None
    assert tuple(row) == (3, 5)


def test_the_live_sessions_of_an_account_default_to_a_hundred() -> None:
    assert AuthSettings(_env_file=None).max_sessions_per_user == 100  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_sessions_per_user"):
        AuthSettings(_env_file=None, max_sessions_per_user=0)  # type: ignore[call-arg]
