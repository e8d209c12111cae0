"""Password hashing: OWASP floor, rehash on login, low-priority hashing threads."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import User
from auth_service.passwords import PasswordHasher
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import assert_unauthorized, login, register
from tests.support.errors import assert_error
from tests.support.serving import serve


async def stored_hash(maker: async_sessionmaker[AsyncSession]) -> str:
    async with maker() as session:
        return (await session.exec(select(User.password_hash))).one()


@pytest.mark.parametrize(
    "weaker",
    [{"argon2_memory_kib": 19 * 1024 - 1}, {"argon2_time_cost": 1}],
    ids=["memory", "time"],
)
def test_argon2_parameters_below_the_owasp_minimum_are_refused(weaker: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="OWASP"):
        AuthSettings(_env_file=None, **weaker)


async def test_a_hash_with_other_parameters_is_replaced_at_the_next_login(
    auth_settings: AuthSettings,
    database: Database,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    stronger = auth_settings.model_copy(update={"argon2_time_cost": 3})
    async with serve(create_app(stronger, db=database, clock=clock)) as client:
        await register(client)
    before = await stored_hash(sessionmaker)

    async with serve(create_app(auth_settings, db=database, clock=clock)) as client:
        await login(client)
        after = await stored_hash(sessionmaker)
        await login(client)

    assert "t=3" in before
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in after


async def test_an_unknown_email_is_checked_against_a_hash_of_the_same_cost(
    auth_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = PasswordHasher(auth_settings)
    checked: list[str] = []
    verify = hasher.verify

    async def seeing_verify(password: str, hashed: str) -> tuple[bool, str | None]:
        checked.append(hashed)
        return await verify(password, hashed)

    monkeypatch.setattr(hasher, "verify", seeing_verify)
    try:
        await hasher.verify_dummy("whatever")
    finally:
        hasher.close()

    assert len(checked) == 1
    assert checked[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux")
async def test_hashing_threads_yield_to_the_event_loop_thread(auth_settings: AuthSettings) -> None:
    loop_thread = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, loop_thread)
    running = set(threading.enumerate())
    hasher = PasswordHasher(auth_settings)
    try:
        await hasher.hash("whatever")
        hashing = [
            thread
            for thread in threading.enumerate()
            if thread not in running and thread.name.startswith("password-hash")
        ]
        niceness = [os.getpriority(os.PRIO_PROCESS, thread.native_id) for thread in hashing]
    finally:
        hasher.close()

    assert auth_settings.password_hash_niceness == 10
    assert niceness == [min(19, before + 10)]
    assert os.getpriority(os.PRIO_PROCESS, loop_thread) == before


# "Crème brûlée 2024" with each accent one code point (NFC) and as a letter and a combining
# mark (NFD, as some keyboards and file systems write it); a full-width spelling (NFKC makes
# it ASCII).
COMPOSED = "Cr\u00e8me br\u00fbl\u00e9e 2024"
DECOMPOSED = "Cre\u0300me bru\u0302le\u0301e 2024"
FULL_WIDTH = "\uff43\uff4f\uff52\uff52\uff45\uff43\uff54 horse battery"


@pytest.mark.parametrize(
    ("registered", "typed"),
    [(COMPOSED, DECOMPOSED), (DECOMPOSED, COMPOSED), (FULL_WIDTH, "correct horse battery")],
    ids=["nfc-then-nfd", "nfd-then-nfc", "full-width-then-ascii"],
)
async def test_a_password_signs_in_however_its_characters_are_composed(
    client: httpx.AsyncClient, registered: str, typed: str
) -> None:
    await register(client, password=registered)

    await login(client, password=typed)


async def test_a_wrong_password_that_normalisation_changes_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await register(client, password=COMPOSED)

    response = await client.post(
        "/api/auth/login",
        json={"email": "ann@example.com", "password": DECOMPOSED.replace("2024", "2025")},
    )

    assert_unauthorized(response, "invalid_credentials")


async def test_a_hash_of_the_password_as_typed_signs_in_and_is_made_again_normalised(
    auth_settings: AuthSettings,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """An account whose hash was made of the typed (decomposed) password, before passwords
    were normalised, still signs in with what it typed, and from then on with either form."""
    await register(client, password=COMPOSED)
    legacy = PasswordHash((Argon2Hasher(),)).hash(DECOMPOSED)
    async with sessionmaker() as session:
        await session.exec(update(User).values(password_hash=legacy))
        await session.commit()

    await login(client, password=DECOMPOSED)
    renewed = await stored_hash(sessionmaker)
    await login(client, password=COMPOSED)

    assert renewed != legacy
    assert PasswordHash((Argon2Hasher(),)).verify(COMPOSED, renewed)


async def test_a_password_set_before_normalising_whose_normal_form_is_longer_still_signs_in(
    auth_settings: AuthSettings,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A rule change never locks anyone out (docs/auth.md): 100 characters were a valid
    password as typed, and each ligature is two letters in NFKC (200, past 128), so the bound
    on the normal form alone refused its login before the typed form could be checked."""
    typed = "\ufb00" * 100
    await register(client)
    legacy = PasswordHash((Argon2Hasher(),)).hash(typed)
    async with sessionmaker() as session:
        await session.exec(update(User).values(password_hash=legacy))
        await session.commit()

    await login(client, password=typed)


async def test_an_unknown_email_costs_as_many_checks_as_a_known_one(
    auth_settings: AuthSettings,
) -> None:
    """A guess that normalisation changes is checked twice against a real hash (the normal
    form, then as typed); against the dummy hash of an unknown email as well."""
    hasher = PasswordHasher(auth_settings)
    real = await hasher.hash(COMPOSED)
    await hasher.verify_dummy("warm the dummy hash")
    checks = 0
    run = hasher._run

    async def counting_run(function: Callable[..., Any], *args: str) -> Any:
        nonlocal checks
        checks += 1
        return await run(function, *args)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(hasher, "_run", counting_run)
            await hasher.verify(FULL_WIDTH, real)
            known = checks
            await hasher.verify_dummy(FULL_WIDTH)
            unknown = checks - known
    finally:
        hasher.close()

    assert known == unknown == 2


@pytest.mark.parametrize(
    ("password", "status"),
    [
        ("e\u0301" * 8, 201),  # 16 code points typed, 8 characters normalised
        ("e\u0301" * 7, 422),
        ("\ufdfa" * 8, 422),  # 8 typed, 144 normalised
        ("\uff41" * 128, 201),
        ("\uff41" * 129, 422),
    ],
    ids=["8-decomposed", "7-decomposed", "expands-past-128", "128-full-width", "129-full-width"],
)
async def test_password_lengths_are_counted_in_the_normal_form(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    password: str,
    status: int,
) -> None:
    response = await client.post(
        "/api/auth/register", json={"email": "ann@example.com", "password": password}
    )

    assert response.status_code == status, response.text
    async with sessionmaker() as session:
        stored = (await session.exec(select(User))).all()
    assert len(stored) == (status == 201)


async def test_the_email_in_full_width_letters_is_a_weak_password(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    full_width_email = "".join(chr(ord(c) + 0xFEE0) for c in "ann@example.com")

    response = await client.post(
        "/api/auth/register", json={"email": "ann@example.com", "password": full_width_email}
    )

    assert_error(response, 400, "weak_password")
    async with sessionmaker() as session:
        assert (await session.exec(select(User))).all() == []
