"""Bad request bodies: each answers the envelope, stores nothing and never echoes a password."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import AttemptCounter, RefreshToken, User
from tests.auth.factories import PASSWORD, count, register
from tests.support.errors import assert_error

SECRET = "Sup3r-secret-value"
EMAIL = "ann@example.com"

# name -> (request body as JSON-able value or raw bytes, status, code)
BAD_REGISTRATIONS: dict[str, tuple[Any, int, str]] = {
    "unknown field": (
        {"email": EMAIL, "password": SECRET, "is_admin": True},
        422,
        "validation_error",
    ),
    "id supplied": ({"email": EMAIL, "password": SECRET, "id": "0" * 32}, 422, "validation_error"),
    "password of 7": ({"email": EMAIL, "password": "Sup3r-s"}, 422, "validation_error"),
    "password of 129": ({"email": EMAIL, "password": SECRET + "x" * 111}, 422, "validation_error"),
    "password equal to the email": ({"email": EMAIL, "password": EMAIL}, 400, "weak_password"),
    "password equal to the email in capitals": (
        {"email": EMAIL, "password": "ANN@EXAMPLE.COM"},
        400,
        "weak_password",
    ),
    "name of 101": (
        {"email": EMAIL, "password": SECRET, "name": "n" * 101},
        422,
        "validation_error",
    ),
    "blank name": ({"email": EMAIL, "password": SECRET, "name": "   "}, 422, "validation_error"),
    "email too long": (
        {"email": "a" * 64 + "@" + "b" * 250 + ".com", "password": SECRET},
        422,
        "validation_error",
    ),
    "not an email": ({"email": "ann.example.com", "password": SECRET}, 422, "validation_error"),
    "missing password": ({"email": EMAIL}, 422, "validation_error"),
    "password not a string": ({"email": EMAIL, "password": 12345678}, 422, "validation_error"),
    "email not a string": (
        {"email": ["ann@example.com"], "password": SECRET},
        422,
        "validation_error",
    ),
    "name not a string": ({"email": EMAIL, "password": SECRET, "name": 7}, 422, "validation_error"),
    "body is a list": ([EMAIL, SECRET], 422, "validation_error"),
    "body is null": (None, 422, "validation_error"),
    "malformed json": (
        b'{"email": "ann@example.com", "password": "' + SECRET.encode(),
        422,
        "validation_error",
    ),
    "empty body": (b"", 422, "validation_error"),
}


@pytest.mark.parametrize("case", list(BAD_REGISTRATIONS))
async def test_bad_registration_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], case: str
) -> None:
    body, status, code = BAD_REGISTRATIONS[case]
    if isinstance(body, bytes):
        response = await client.post(
            "/api/auth/register", content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = await client.post("/api/auth/register", json=body)

    assert_error(response, status, code)
    assert SECRET not in response.text
    assert await count(sessionmaker, User) == 0


@pytest.mark.parametrize(
    ("password", "name"),
    [("p" * 8, None), ("p" * 128, None), (SECRET, "n" * 100), (SECRET, "Ann")],
    ids=["password of 8", "password of 128", "name of 100", "plain"],
)
async def test_registration_accepts_the_boundaries(
    client: httpx.AsyncClient, password: str, name: str | None
) -> None:
    user = await register(client, EMAIL, password, name)

    assert user["name"] == name
    login = await client.post("/api/auth/login", json={"email": EMAIL, "password": password})
    assert login.status_code == 200


async def test_validation_errors_name_the_field_but_not_the_value(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/auth/register", json={"email": EMAIL, "password": "short"})

    body = assert_error(response, 422, "validation_error")
    (error,) = body["detail"]
    assert error["loc"] == ["body", "password"]
    assert error["type"] == "string_too_short"
    assert "input" not in error
    assert "short" not in response.text.replace("string_too_short", "")


# name -> (content type, raw body)
BAD_LOGINS: dict[str, tuple[str, bytes]] = {
    "unknown field": (
        "application/json",
        b'{"email": "ann@example.com", "password": "' + SECRET.encode() + b'", "remember": true}',
    ),
    "password too long": (
        "application/json",
        b'{"email": "ann@example.com", "password": "' + b"x" * 129 + b'"}',
    ),
    "empty password": ("application/json", b'{"email": "ann@example.com", "password": ""}'),
    "malformed json": (
        "application/json",
        b'{"email": "ann@example.com", "password": "' + SECRET.encode(),
    ),
    "wrong types": ("application/json", b'{"email": 1, "password": ["' + SECRET.encode() + b'"]}'),
    "form without username": (
        "application/x-www-form-urlencoded",
        b"password=" + SECRET.encode(),
    ),
    "form without password": ("application/x-www-form-urlencoded", b"username=ann%40example.com"),
}


@pytest.mark.parametrize("case", list(BAD_LOGINS))
async def test_bad_login_is_refused_without_counting_a_failure(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], case: str
) -> None:
    await register(client, EMAIL, PASSWORD)
    content_type, body = BAD_LOGINS[case]

    response = await client.post(
        "/api/auth/login", content=body, headers={"Content-Type": content_type}
    )

    assert_error(response, 422, "validation_error")
    assert SECRET not in response.text
    assert await count(sessionmaker, RefreshToken) == 0
    assert await count(sessionmaker, AttemptCounter) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": "x" * 129},
        {"current_password": PASSWORD, "new_password": SECRET, "user_id": "someone-else"},
        {"new_password": SECRET},
        {"current_password": PASSWORD, "new_password": None},
    ],
    ids=["new too short", "new too long", "unknown field", "current missing", "new null"],
)
async def test_bad_password_change_keeps_the_old_password(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await register(client, EMAIL, PASSWORD)
    login = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    response = await client.post("/api/auth/password", json=body, headers=headers)

    assert_error(response, 422, "validation_error")
    assert PASSWORD not in response.text
    again = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert again.status_code == 200
