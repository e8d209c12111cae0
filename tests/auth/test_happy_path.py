"""The whole happy path of the auth API, with the unhappy edges of each step."""

from __future__ import annotations

import uuid

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.keys import parse_pem_keys
from auth_service.models import RefreshToken, User
from shared.clock import FrozenClock
from tests.auth.factories import (
    PASSWORD,
    assert_unauthorized,
    bearer,
    count,
    login,
    refresh,
    register,
    signed_up,
)
from tests.support.errors import assert_error

USER_KEYS = {"id", "email", "name", "timezone", "created_at", "updated_at"}


async def test_register_normalises_the_email_and_answers_the_public_user(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": "Ann.Lee@Example.COM", "password": PASSWORD, "name": "  Ann  "},
    )

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/auth/me"
    user = response.json()
    assert set(user) == USER_KEYS
    assert user["email"] == "ann.lee@example.com"
    assert user["name"] == "Ann"
    uuid.UUID(user["id"])
    async with sessionmaker() as session:
        stored = (await session.exec(select(User))).one()
    assert stored.email == "ann.lee@example.com"
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


async def test_email_is_unique_case_insensitively(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await register(client, "ann@example.com")

    response = await client.post(
        "/api/auth/register", json={"email": "ANN@example.com", "password": "another password"}
    )

    assert_error(response, 409, "email_taken")
    assert await count(sessionmaker, User) == 1


async def test_a_taken_email_costs_the_same_hashing_as_a_new_account(
    client: httpx.AsyncClient, auth_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 409 stays (usability), but its timing must not add a second, cheaper signal."""
    hasher = auth_app.state.auth.hasher
    real_hash = hasher.hash
    hashed: list[str] = []

    async def counting_hash(password: str) -> str:
        hashed.append(password)
        return str(await real_hash(password))

    monkeypatch.setattr(hasher, "hash", counting_hash)
    await register(client, "ann@example.com")

    taken = await client.post(
        "/api/auth/register", json={"email": "ANN@example.com", "password": "another password"}
    )

    assert_error(taken, 409, "email_taken")
    assert hashed == [PASSWORD, "another password"]


async def test_login_with_json_answers_a_token_pair_and_the_user(
    client: httpx.AsyncClient, signing_pem: str
) -> None:
    user = await register(client, "ann@example.com")

    pair = await login(client, "Ann@Example.com")

    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    assert pair["refresh_expires_in"] == 30 * 24 * 3600
    assert pair["user"] == user
    key = parse_pem_keys(signing_pem)[0]
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key.kid
    claims = jwt.decode(
        pair["access_token"],
        key.public_key,
        algorithms=["EdDSA"],
        audience="todo-platform",
        issuer="todo-platform-auth",
    )
    assert claims["sub"] == user["id"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]


async def test_login_accepts_the_oauth2_password_form(client: httpx.AsyncClient) -> None:
    await register(client, "ann@example.com")

    response = await client.post(
        "/api/auth/login", data={"username": "ann@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = await client.get("/api/auth/me", headers=bearer(token))
    assert me.json()["email"] == "ann@example.com"


async def test_me_answers_the_tokens_user(client: httpx.AsyncClient) -> None:
    ann = await signed_up(client, "ann@example.com")
    bob = await signed_up(client, "bob@example.com")

    ann_me = await client.get("/api/auth/me", headers=bearer(ann["access_token"]))
    bob_me = await client.get("/api/auth/me", headers=bearer(bob["access_token"]))

    assert ann_me.status_code == 200
    assert ann_me.json() == ann["user"]
    assert bob_me.json()["email"] == "bob@example.com"


async def test_patch_me_changes_the_name_and_nothing_else(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    pair = await signed_up(client)
    clock.advance(seconds=5)

    response = await client.patch(
        "/api/auth/me", json={"name": " Ann Lee "}, headers=bearer(pair["access_token"])
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Ann Lee"
    assert body["email"] == pair["user"]["email"]
    assert body["updated_at"] > pair["user"]["updated_at"]
    again = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))
    assert again.json()["name"] == "Ann Lee"


async def test_patch_me_with_null_clears_the_name_and_with_nothing_keeps_it(
    client: httpx.AsyncClient,
) -> None:
    await register(client, name="Ann")
    pair = await login(client)
    headers = bearer(pair["access_token"])

    kept = await client.patch("/api/auth/me", json={}, headers=headers)
    cleared = await client.patch("/api/auth/me", json={"name": None}, headers=headers)

    assert kept.json()["name"] == "Ann"
    assert cleared.json()["name"] is None


async def test_patch_me_rejects_other_fields_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)
    headers = bearer(pair["access_token"])

    email = await client.patch("/api/auth/me", json={"email": "x@example.com"}, headers=headers)
    too_long = await client.patch("/api/auth/me", json={"name": "n" * 101}, headers=headers)
    anonymous = await client.patch("/api/auth/me", json={"name": "Eve"})

    assert_error(email, 422, "validation_error")
    assert_error(too_long, 422, "validation_error")
    assert_unauthorized(anonymous, "not_authenticated")
    me = (await client.get("/api/auth/me", headers=headers)).json()
    assert me == pair["user"]


async def test_refresh_answers_a_new_pair_and_spends_the_old_token(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)

    first = await refresh(client, pair["refresh_token"])

    assert first.status_code == 200, first.text
    renewed = first.json()
    assert renewed["refresh_token"] != pair["refresh_token"]
    assert renewed["user"] == pair["user"]
    me = await client.get("/api/auth/me", headers=bearer(renewed["access_token"]))
    assert me.status_code == 200
    spent = await refresh(client, pair["refresh_token"])
    assert_unauthorized(spent, "refresh_token_reused")


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pair = await signed_up(client)

    async with sessionmaker() as session:
        stored = (await session.exec(select(RefreshToken))).one()
    assert stored.token_hash != pair["refresh_token"]
    assert len(stored.token_hash) == 64
    assert str(stored.user_id) == pair["user"]["id"]


async def test_logout_answers_204_and_the_refresh_token_stops_working(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)

    response = await client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 204
    assert response.content == b""
    assert_unauthorized(await refresh(client, pair["refresh_token"]), "invalid_refresh_token")


async def test_logout_with_an_unknown_token_is_harmless(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)

    response = await client.post("/api/auth/logout", json={"refresh_token": "never-issued"})

    assert response.status_code == 204
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_ends_one_session_and_leaves_the_others(client: httpx.AsyncClient) -> None:
    laptop = await signed_up(client)
    phone = await login(client)

    await client.post("/api/auth/logout", json={"refresh_token": laptop["refresh_token"]})

    assert (await refresh(client, laptop["refresh_token"])).status_code == 401
    assert (await refresh(client, phone["refresh_token"])).status_code == 200


async def test_password_change_revokes_every_session_and_swaps_the_password(
    client: httpx.AsyncClient,
) -> None:
    laptop = await signed_up(client)
    phone = await login(client)

    response = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(laptop["access_token"]),
    )

    # The laptop stays signed in with a fresh pair (a new session); its old tokens and every
    # other session's are revoked.
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["refresh_token"] not in (laptop["refresh_token"], phone["refresh_token"])
    assert (await refresh(client, fresh["refresh_token"])).status_code == 200
    for session in (laptop, phone):
        assert_unauthorized(
            await refresh(client, session["refresh_token"]), "invalid_refresh_token"
        )
    old = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert_unauthorized(old, "invalid_credentials")
    await login(client, password="a brand new secret")


async def test_password_change_with_a_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)

    response = await client.post(
        "/api/auth/password",
        json={"current_password": "not my password", "new_password": "a brand new secret"},
        headers=bearer(pair["access_token"]),
    )

    assert_error(response, 400, "wrong_password")
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
    await login(client)


async def test_password_change_refuses_the_email_as_password(client: httpx.AsyncClient) -> None:
    pair = await signed_up(client)

    response = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "ANN@example.com"},
        headers=bearer(pair["access_token"]),
    )

    assert_error(response, 400, "weak_password")
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
    await login(client)


async def test_password_change_needs_an_access_token(client: httpx.AsyncClient) -> None:
    await register(client)

    response = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
    )

    assert_unauthorized(response, "not_authenticated")
    await login(client)


async def test_jwks_is_public_cacheable_and_holds_only_public_keys(
    client: httpx.AsyncClient, signing_pem: str
) -> None:
    response = await client.get("/api/auth/jwks")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    (jwk,) = response.json()["keys"]
    assert jwk["kid"] == parse_pem_keys(signing_pem)[0].kid
    assert {jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]} == {"OKP", "Ed25519", "EdDSA", "sig"}
    assert "d" not in jwk
    public = jwt.PyJWK(jwk).key
    pair = await signed_up(client)
    claims = jwt.decode(
        pair["access_token"], public, algorithms=["EdDSA"], audience="todo-platform"
    )
    assert claims["sub"] == pair["user"]["id"]


async def test_the_jwks_answers_head_as_its_get_without_the_body(
    client: httpx.AsyncClient,
) -> None:
    got = await client.get("/api/auth/jwks")
    head = await client.head("/api/auth/jwks")

    # The gateway lets HEAD through as public for this route: the service must answer it.
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "cache-control"):
        assert head.headers[name] == got.headers[name]


async def test_probes_answer(client: httpx.AsyncClient) -> None:
    live = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert live.json() == {"status": "ok"}
    assert ready.json() == {"status": "ready", "checks": {"database": True}}


async def test_a_name_is_stored_composed_and_bounded_as_composed(
    client: httpx.AsyncClient,
) -> None:
    pair = await signed_up(client)
    # "Zoë" with a combining diaeresis (NFD), long enough to pass the 100-character bound
    # only once composed.
    name = "Zoe\u0308 " + "e\u0301" * 90
    response = await client.patch(
        "/api/auth/me", json={"name": name}, headers=bearer(pair["access_token"])
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Zo\u00eb " + "\u00e9" * 90
