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
from auth_service.passwords import PasswordHasher, _lower_thread_priority
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import login, register, serve


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
    async for client in serve(create_app(stronger, db=database, clock=clock)):
        await register(client)
    before = await stored_hash(sessionmaker)

    async for client in serve(create_app(auth_settings, db=database, clock=clock)):
        await login(client)
        after = await stored_hash(sessionmaker)
        await login(client)

    assert "t=3" in before
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in after


async def test_an_unknown_email_is_checked_against_a_hash_of_the_same_cost(
    auth_settings: AuthSettings,
) -> None:
    hasher = PasswordHasher(auth_settings)
    try:
        await hasher.verify_dummy("whatever")
        dummy = hasher._dummy_hash
    finally:
        hasher.close()

    assert dummy is not None
    assert dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux")
def test_hashing_threads_yield_to_the_event_loop_thread() -> None:
    seen: list[int] = []

    def worker() -> None:
        _lower_thread_priority(10)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=5)

    assert seen == [min(19, before + 10)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
