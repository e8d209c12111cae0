"""Retention of login sessions: a session that ended (logged out, revoked, or past its
absolute end) is deleted with its refresh tokens once the retention has passed, in bounded
batches, by the auth worker. Live sessions stay, and a token of a deleted session is refused
exactly as one of an ended session was. Without it every login and every rotation left a row
in ``auth.refresh_families`` / ``auth.refresh_tokens`` for good, and anyone could grow those
tables by logging in and refreshing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from auth_service.service import forget_ended_sessions
from auth_service.settings import AuthSettings
from auth_service.worker import create_app as create_worker
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import assert_unauthorized, login, refresh, signed_up
from tests.support.events import eventually
from tests.support.serving import serve


async def families(db: Database) -> set[str]:
    row = await db.fetch_row(
        "SELECT coalesce(array_agg(id::text), '{}') FROM auth.refresh_families"
    )
    assert row is not None
    return set(row[0])


async def tokens_of(db: Database, family: str) -> int:
    row = await db.fetch_row(
        "SELECT count(*) FROM auth.refresh_tokens WHERE family_id = $1::uuid", family
    )
    assert row is not None
    return int(row[0])


async def family_of(db: Database, pair: dict[str, Any]) -> str:
    row = await db.fetch_row(
        "SELECT family_id::text FROM auth.refresh_tokens "
        "WHERE token_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        pair["refresh_token"],
    )
    assert row is not None
    return str(row[0])


async def test_ended_sessions_are_deleted_with_their_tokens_in_batches(
    client: httpx.AsyncClient, database: Database, clock: FrozenClock
) -> None:
    expired = await signed_up(client)
    expired_family = await family_of(database, expired)
    # Past the first session's absolute end (90 days): it ended, unrevoked.
    clock.advance(days=91)
    now = clock()
    logged_out = await login(client)
    logged_out_family = await family_of(database, logged_out)
    rotated = (await refresh(client, logged_out["refresh_token"])).json()
    assert (
        await client.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    ).status_code == 204
    live = await login(client)
    live_family = await family_of(database, live)
    live = (await refresh(client, live["refresh_token"])).json()
    assert await tokens_of(database, logged_out_family) == 2

    # Only what ended before the bound: the logged-out session ended at `now`.
    assert await forget_ended_sessions(database, before=now, batch=10) == 1
    assert await families(database) == {logged_out_family, live_family}
    assert await tokens_of(database, expired_family) == 0
    # Past the bound: at most a batch per statement, the live session never.
    later = now + timedelta(seconds=1)
    assert await forget_ended_sessions(database, before=later, batch=1) == 1
    assert await forget_ended_sessions(database, before=later, batch=1) == 0
    assert await families(database) == {live_family}
    assert await tokens_of(database, logged_out_family) == 0
    assert await tokens_of(database, live_family) == 2

    # A deleted session's tokens are refused as an ended session's were; the live one works.
    for pair in (expired, logged_out, rotated):
        assert_unauthorized(await refresh(client, pair["refresh_token"]), "invalid_refresh_token")
    assert (await refresh(client, live["refresh_token"])).status_code == 200


async def test_a_live_session_is_kept_whatever_its_age_up_to_its_end(
    client: httpx.AsyncClient, database: Database, clock: FrozenClock
) -> None:
    pair = await signed_up(client)
    for _ in range(3):  # refreshed every 29 days (the refresh token lives 30), to day 87
        clock.advance(days=29)
        assert await forget_ended_sessions(database, before=clock(), batch=100) == 0
        response = await refresh(client, pair["refresh_token"])
        assert response.status_code == 200
        pair = response.json()


def test_the_retention_of_ended_sessions_defaults_to_a_week() -> None:
    assert AuthSettings(_env_file=None).ended_sessions_retention_days == 7  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ended_sessions_retention_days"):
        AuthSettings(_env_file=None, ended_sessions_retention_days=-1)  # type: ignore[call-arg]


@pytest.fixture
def worker_settings(auth_settings: AuthSettings, redis_url: str) -> AuthSettings:
    return auth_settings.model_copy(
        update={"events_redis_url": redis_url, "events_idle_seconds": 0.05}
    )


async def test_the_auth_worker_deletes_sessions_ended_past_the_retention(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    worker_settings: AuthSettings,
    clock: FrozenClock,
) -> None:
    ended = await signed_up(committed_client)
    ended_family = await family_of(committed_database, ended)
    assert (
        await committed_client.post(
            "/api/auth/logout", json={"refresh_token": ended["refresh_token"]}
        )
    ).status_code == 204
    clock.advance(days=8)  # past the week's retention of the logged-out session
    live = await login(committed_client)
    live_family = await family_of(committed_database, live)
    assert await families(committed_database) == {ended_family, live_family}

    worker = create_worker(worker_settings, db=committed_database, clock=clock)
    async with serve(worker):

        async def forgotten() -> bool:
            return await families(committed_database) == {live_family}

        await eventually(forgotten)
    assert await tokens_of(committed_database, ended_family) == 0
