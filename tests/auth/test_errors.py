"""The error envelope, request ids, body limits and probes, as the auth service answers them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import User
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database, create_engine
from shared.log import DevFormatter, JsonFormatter
from tests.auth.factories import PASSWORD, bearer, count, signed_up
from tests.support.errors import assert_error
from tests.support.serving import serve

LIMIT = 1024


@pytest.fixture
async def small_client(
    auth_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = auth_settings.model_copy(update={"max_body_bytes": LIMIT})
    async with serve(create_app(settings, db=database, clock=clock)) as client:
        yield client


def oversized_registration() -> bytes:
    padding = "x" * LIMIT
    return f'{{"email": "ann@example.com", "password": "{PASSWORD}", "name": "{padding}"}}'.encode()


async def test_unknown_route_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/nothing-here")

    assert_error(response, 404, "not_found")


async def test_wrong_method_is_a_405_envelope_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/login")

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


async def test_a_declared_body_over_the_limit_is_413_and_stores_nothing(
    small_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = oversized_registration()

    response = await small_client.post(
        "/api/auth/register", content=body, headers={"Content-Type": "application/json"}
    )

    assert "content-length" in response.request.headers
    assert_error(response, 413, "payload_too_large")
    assert await count(sessionmaker, User) == 0


def registration_of_size(size: int) -> bytes:
    body = f'{{"email": "ann@example.com", "password": "{PASSWORD}"}}'.encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize(
    "body",
    [registration_of_size(LIMIT + 1), oversized_registration()],
    ids=["one byte over", "far over"],
)
async def test_a_streamed_body_over_the_limit_is_413_and_stores_nothing(
    small_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], body: bytes
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256):
            yield body[start : start + 256]

    response = await small_client.post(
        "/api/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    assert await count(sessionmaker, User) == 0


async def test_a_streamed_login_form_over_the_limit_is_413(
    small_client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"username=ann%40example.com&password="
        for _ in range(8):
            yield b"x" * 256

    response = await small_client.post(
        "/api/auth/login",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_error(response, 413, "payload_too_large")


async def test_a_body_at_the_limit_is_accepted(small_client: httpx.AsyncClient) -> None:
    body = registration_of_size(LIMIT)
    assert len(body) == LIMIT

    response = await small_client.post(
        "/api/auth/register", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text


async def test_a_declared_body_one_byte_over_the_limit_is_refused_before_routing(
    small_client: httpx.AsyncClient,
) -> None:
    # Refused by its Content-Length alone: even a route that would never read the body
    # (here none at all) answers 413, not 404.
    response = await small_client.post(
        "/api/auth/nothing-here",
        content=registration_of_size(LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )

    assert response.request.headers["content-length"] == str(LIMIT + 1)
    assert_error(response, 413, "payload_too_large")


async def test_a_safe_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/nothing-here", headers={"X-Request-ID": "req-42.a:b"})

    assert response.headers["x-request-id"] == "req-42.a:b"
    assert response.json()["request_id"] == "req-42.a:b"


@pytest.mark.parametrize(
    "request_id",
    [None, "", "has spaces", "x" * 129, "<script>", "a;b"],
    ids=["absent", "empty", "spaces", "too long", "markup", "semicolon"],
)
async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(
    client: httpx.AsyncClient, request_id: str | None
) -> None:
    headers = {"X-Request-ID": request_id} if request_id is not None else {}

    response = await client.get("/api/auth/nothing-here", headers=headers)

    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["request_id"] == generated


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/auth/jwks")
    first = await client.get("/api/auth/jwks")

    assert ok.headers["x-request-id"] != first.headers["x-request-id"]


async def test_an_unexpected_error_is_a_500_envelope_without_details(
    auth_app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def explode() -> None:
        raise RuntimeError("SELECT password_hash FROM auth.users -- internal detail")

    auth_app.add_api_route("/api/auth/explode", explode)

    response = await client.get("/api/auth/explode", headers={"X-Request-ID": "boom-1"})

    body = assert_error(response, 500, "internal_error")
    assert body["request_id"] == "boom-1"
    assert "password_hash" not in response.text
    assert "Traceback" not in response.text


async def test_readiness_is_503_when_the_database_is_unreachable(
    auth_settings: AuthSettings, clock: FrozenClock
) -> None:
    # Nothing listens on port 1 of the loopback interface: the connection is refused at once.
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    app = create_app(auth_settings, db=Database(engine), clock=clock)
    try:
        async with serve(app) as client:
            live = await client.get("/healthz")
            ready = await client.get("/readyz")
    finally:
        await engine.dispose()

    assert live.status_code == 200
    body = assert_error(ready, 503, "not_ready")
    assert body["detail"] == {"checks": {"database": False}}


async def test_an_unexpected_database_error_logs_no_email_or_password_hash(
    client: httpx.AsyncClient, db_connection: AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    # Any statement's failure the service does not expect (a bug, a full disk, a trigger)
    # ends in a logged traceback; SQLAlchemy's message carries the statement's parameters,
    # here the new account's email and its password's argon2 hash, unless the engine hides
    # them.
    await db_connection.execute(
        text(
            "CREATE FUNCTION auth.refuse_every_user() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'refused by a test trigger'; END$$"
        )
    )
    await db_connection.execute(
        text(
            "CREATE TRIGGER refuse_every_user BEFORE INSERT ON auth.users "
            "FOR EACH ROW EXECUTE FUNCTION auth.refuse_every_user()"
        )
    )

    response = await client.post(
        "/api/auth/register", json={"email": "secret.ann@example.com", "password": PASSWORD}
    )

    assert_error(response, 500, "internal_error")
    assert "refused by a test trigger" in caplog.text  # the error itself is logged
    assert "INSERT INTO auth.users" in caplog.text  # and its statement
    assert "secret.ann@example.com" not in caplog.text
    assert "$argon2" not in caplog.text


async def test_an_unexpected_constraint_violation_logs_none_of_the_rows_values(
    client: httpx.AsyncClient, db_connection: AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    # hide_parameters keeps the statement's values out of SQLAlchemy's message, but the
    # server's own DETAIL line repeats them, and the driver's error text carries it into the
    # traceback: here a check the row fails, whose DETAIL is the whole row ("Failing row
    # contains (..., the email, the name, the argon2 hash, ...)").
    pair = await signed_up(client, "secret.ann@example.com")
    await db_connection.execute(
        text(
            "ALTER TABLE auth.users ADD CONSTRAINT test_refusal "
            "CHECK (name <> 'Secret Ann') NOT VALID"
        )
    )
    response = await client.patch(
        "/api/auth/me", json={"name": "Secret Ann"}, headers=bearer(pair["access_token"])
    )
    assert_error(response, 500, "internal_error")
    [record] = [r for r in caplog.records if r.exc_info]
    for formatter in (JsonFormatter("auth"), DevFormatter("auth")):
        written = formatter.format(record)
        assert "test_refusal" in written  # the error itself is logged
        assert "DETAIL" in written  # and that there was a detail
        for secret in ("secret.ann", "$argon2", "Secret Ann"):
            assert secret not in written, formatter


async def test_a_registration_refused_by_another_constraint_is_not_called_a_taken_email(
    client: httpx.AsyncClient,
    db_connection: AsyncConnection,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Only the email's uniqueness is a 409 ``email_taken``; any other refusal of the new
    row is the server's fault, said as one."""
    await db_connection.execute(
        text("ALTER TABLE auth.users ADD CONSTRAINT test_refusal CHECK (name <> 'Bob') NOT VALID")
    )

    response = await client.post(
        "/api/auth/register",
        json={"email": "bob@example.com", "password": PASSWORD, "name": "Bob"},
    )

    assert_error(response, 500, "internal_error")
    assert await count(sessionmaker, User) == 0
