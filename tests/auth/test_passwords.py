"""Password hashing: OWASP floor, rehash on login, low-priority hashing threads."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import User
from auth_service.passwords import PasswordHasher
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import login, register
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
