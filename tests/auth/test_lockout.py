"""Throttling of password guesses per (account, client address) and per account.

The test settings allow 3 failures per account and address (IPv6: per /64) in 10 minutes,
and 5 per account from addresses it never signed in from in an hour. The default client's
address is 127.0.0.1.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.app import create_app
from auth_service.models import AttemptCounter, KnownAddress
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import (
    PASSWORD,
    assert_unauthorized,
    bearer,
    count,
    login,
    register,
)
from tests.support.errors import assert_error
from tests.support.serving import from_address, serve

WRONG = "not the password"
WINDOW = 600
CEILING = 5
ACCOUNT_WINDOW = 3600


async def attempt(
    client: httpx.AsyncClient, email: str, password: str, request_id: str = "lockout-test"
) -> httpx.Response:
    return await client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Request-ID": request_id},
    )


async def fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        assert_unauthorized(await attempt(client, email, WRONG), "invalid_credentials")


async def guess_from(app: FastAPI, host: str, email: str, password: str = WRONG) -> int:
    async with from_address(app, host) as client:
        return (await attempt(client, email, password)).status_code


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ann@example.com")

    wrong_password = await attempt(client, "ann@example.com", WRONG)
    unknown_email = await attempt(client, "nobody@example.com", WRONG)

    assert_unauthorized(wrong_password, "invalid_credentials")
    assert wrong_password.status_code == unknown_email.status_code
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.headers.keys() == unknown_email.headers.keys()
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


async def test_lockout_engages_after_the_threshold_even_for_the_right_password(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)

    response = await attempt(client, "ann@example.com", PASSWORD)

    assert_error(response, 429, "login_locked")
    assert response.headers["retry-after"] == str(WINDOW)


async def test_failures_below_the_threshold_do_not_lock(client: httpx.AsyncClient) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 2)

    await login(client, "ann@example.com")


async def test_failures_decay_when_their_window_ends(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)

    clock.advance(seconds=WINDOW - 1)
    still_locked = await attempt(client, "ann@example.com", PASSWORD)
    clock.advance(seconds=1)
    released = await attempt(client, "ann@example.com", PASSWORD)

    assert_error(still_locked, 429, "login_locked")
    assert still_locked.headers["retry-after"] == "1"
    assert released.status_code == 200, released.text


async def test_a_guess_per_window_never_locks_the_account(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Slow guessing (the old lock never forgot a failure) ends up locking nobody."""
    await register(client, "ann@example.com")
    for _ in range(6):
        await fail(client, "ann@example.com", 2)
        clock.advance(seconds=ACCOUNT_WINDOW)

    await login(client, "ann@example.com")


async def test_a_successful_login_resets_the_failure_count(client: httpx.AsyncClient) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 2)
    await login(client, "ann@example.com")

    await fail(client, "ann@example.com", 2)

    await login(client, "ann@example.com")


async def test_attempts_during_a_lockout_do_not_extend_it(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)

    for _ in range(5):
        assert (await attempt(client, "ann@example.com", WRONG)).status_code == 429
    clock.advance(seconds=WINDOW)

    await login(client, "ann@example.com")


async def test_lockout_never_reveals_whether_the_account_exists(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ann@example.com")
    answers: dict[str, list[tuple[int, dict[str, object], str | None]]] = {}

    for email in ("ann@example.com", "nobody@example.com"):
        answers[email] = []
        for password in (WRONG, WRONG, WRONG, PASSWORD, WRONG):
            response = await attempt(client, email, password)
            answers[email].append(
                (response.status_code, response.json(), response.headers.get("retry-after"))
            )

    assert answers["ann@example.com"] == answers["nobody@example.com"]
    assert [status for status, _, _ in answers["nobody@example.com"]] == [401, 401, 401, 429, 429]


async def test_lockout_is_per_email_and_ignores_its_case(client: httpx.AsyncClient) -> None:
    await register(client, "ann@example.com")
    await register(client, "bob@example.com")

    await fail(client, "ANN@Example.com", 3)

    assert (await attempt(client, "ann@example.com", PASSWORD)).status_code == 429
    await login(client, "bob@example.com")


async def test_one_address_locked_out_leaves_other_addresses_alone(
    client: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    await register(client, "ann@example.com")
    for _ in range(3):
        assert await guess_from(auth_app, "198.51.100.7", "ann@example.com") == 401

    assert await guess_from(auth_app, "198.51.100.7", "ann@example.com", PASSWORD) == 429
    assert await guess_from(auth_app, "203.0.113.50", "ann@example.com", PASSWORD) == 200


async def test_ipv6_clients_are_throttled_by_their_64(
    client: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    await register(client, "ann@example.com")
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        assert await guess_from(auth_app, host, "ann@example.com") == 401

    same_64 = await guess_from(auth_app, "2001:db8:1:2:abcd::9", "ann@example.com", PASSWORD)
    other_64 = await guess_from(auth_app, "2001:db8:1:3::1", "ann@example.com", PASSWORD)

    assert same_64 == 429
    assert other_64 == 200


async def test_the_account_ceiling_bounds_guesses_from_every_new_address(
    client: httpx.AsyncClient, auth_app: FastAPI, clock: FrozenClock
) -> None:
    """One guess from each of many addresses: only the ceiling's worth reach the check."""
    await register(client, "ann@example.com")

    statuses = [
        await guess_from(auth_app, f"198.51.100.{host}", "ann@example.com") for host in range(12)
    ]
    async with from_address(auth_app, "203.0.113.50") as newcomer:
        refused = await attempt(newcomer, "ann@example.com", PASSWORD)
        clock.advance(seconds=ACCOUNT_WINDOW)
        later = await attempt(newcomer, "ann@example.com", PASSWORD)

    assert statuses == [401] * CEILING + [429] * (12 - CEILING)
    assert_error(refused, 429, "login_locked")
    assert refused.headers["retry-after"] == str(ACCOUNT_WINDOW)
    assert later.status_code == 200, later.text


async def test_the_owner_signs_in_from_a_known_address_while_others_hammer_the_account(
    client: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    await register(client, "ann@example.com")
    await login(client, "ann@example.com")  # 127.0.0.1 is now a known address of the account
    for host in range(10):
        for _ in range(3):
            await guess_from(auth_app, f"198.51.100.{host}", "ann@example.com")
    assert await guess_from(auth_app, "203.0.113.50", "ann@example.com", PASSWORD) == 429

    owner = await attempt(client, "ann@example.com", PASSWORD)

    assert owner.status_code == 200, owner.text


async def test_strangers_failed_logins_never_block_a_password_change(
    client: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    await register(client, "ann@example.com")
    pair = await login(client, "ann@example.com")
    for host in range(10):
        for _ in range(3):
            await guess_from(auth_app, f"198.51.100.{host}", "ann@example.com")
    await fail(client, "ann@example.com", 3)  # even the owner's own address is locked now

    response = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(pair["access_token"]),
    )

    assert response.status_code == 200, response.text


async def test_wrong_current_passwords_are_throttled_apart_from_logins(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    pair = await login(client, "ann@example.com")
    headers = bearer(pair["access_token"])

    for _ in range(3):
        response = await client.post(
            "/api/auth/password",
            json={"current_password": WRONG, "new_password": "a brand new secret"},
            headers=headers,
        )
        assert_error(response, 400, "wrong_password")
    guessed_right = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=headers,
    )

    assert_error(guessed_right, 429, "login_locked")
    assert guessed_right.headers["retry-after"] == str(WINDOW)
    await login(client, "ann@example.com")
    clock.advance(seconds=WINDOW)
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text


async def test_counters_of_ended_windows_are_purged_as_new_windows_start(
    client: httpx.AsyncClient, clock: FrozenClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Made-up emails and addresses cannot grow the table without bound."""
    for n in range(3):
        await fail(client, f"made-up-{n}@example.com", 1)
    assert await count(sessionmaker, AttemptCounter) == 6  # per address and per account, each

    clock.advance(seconds=ACCOUNT_WINDOW + 1)
    await fail(client, "late@example.com", 1)

    assert await count(sessionmaker, AttemptCounter) == 2


async def test_a_known_address_is_forgotten_after_the_known_address_days(
    client: httpx.AsyncClient,
    auth_app: FastAPI,
    clock: FrozenClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await register(client, "ann@example.com")
    await login(client, "ann@example.com")
    clock.advance(days=90)
    async with from_address(auth_app, "203.0.113.50") as elsewhere:
        await login(elsewhere, "ann@example.com")
    for host in range(CEILING):
        await guess_from(auth_app, f"198.51.100.{host}", "ann@example.com")

    stale = await attempt(client, "ann@example.com", PASSWORD)

    assert_error(stale, 429, "login_locked")
    assert await count(sessionmaker, KnownAddress) == 1


async def test_addresses_trusted_under_the_old_password_are_not_trusted_after_a_change(
    client: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    """A thief who signed in with a stolen password made their address a known one, which
    the account's ceiling on guesses lets through. Changing the password ends that trust:
    the thief's guesses at the new one count under the ceiling again, while the address the
    owner changed it from stays known."""
    await register(client, "ann@example.com")
    async with from_address(auth_app, "203.0.113.66") as thief:
        await login(thief, "ann@example.com")
        pair = await login(client, "ann@example.com")
        changed = await client.post(
            "/api/auth/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=bearer(pair["access_token"]),
        )
        assert changed.status_code == 200, changed.text
        for host in range(CEILING):
            await guess_from(auth_app, f"198.51.100.{host}", "ann@example.com")

        guess = await attempt(thief, "ann@example.com", "a guess at the new one")

    assert_error(guess, 429, "login_locked")
    owner = await attempt(client, "ann@example.com", "a brand new secret")
    assert owner.status_code == 200, owner.text


async def test_password_confirmations_share_one_count_and_the_accounts_ceiling(
    auth_settings: AuthSettings, database: Database, clock: FrozenClock
) -> None:
    # A stolen session (refreshed for as long as it lasts) guesses the password at POST
    # /password and DELETE /me: one count for both, and no faster over an account window
    # than a stranger at the login. Short windows, so that one access token spans them.
    window, account_window = 100, 400
    settings = auth_settings.model_copy(
        update={"lockout_window_seconds": window, "lockout_account_window_seconds": account_window}
    )
    async with serve(create_app(settings, db=database, clock=clock)) as client:
        await register(client, "ann@example.com")
        headers = bearer((await login(client, "ann@example.com"))["access_token"])

        async def change(password: str) -> httpx.Response:
            return await client.post(
                "/api/auth/password",
                json={"current_password": password, "new_password": "a brand new secret"},
                headers=headers,
            )

        async def delete(password: str) -> httpx.Response:
            return await client.request(
                "DELETE", "/api/auth/me", json={"password": password}, headers=headers
            )

        assert_error(await change(WRONG), 400, "wrong_password")
        assert_error(await change(WRONG), 400, "wrong_password")
        assert_error(await delete(WRONG), 403, "wrong_password")
        assert_error(await delete(PASSWORD), 429, "login_locked")  # the window's 3, shared
        clock.advance(seconds=window)
        assert_error(await delete(WRONG), 403, "wrong_password")
        assert_error(await change(WRONG), 400, "wrong_password")  # the account's 5
        clock.advance(seconds=window)
        refused = await change(PASSWORD)
        assert_error(refused, 429, "login_locked")
        assert int(refused.headers["retry-after"]) == account_window - 2 * window
        clock.advance(seconds=account_window - 2 * window)
        assert (await change(PASSWORD)).status_code == 200


async def test_a_confirmed_password_gives_its_count_back_to_the_ceiling(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    pair = await login(client, "ann@example.com")
    headers = bearer(pair["access_token"])
    for _ in range(CEILING + 2):  # the owner changing the password often is never refused
        clock.advance(seconds=1)
        response = await client.post(
            "/api/auth/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        headers = bearer(response.json()["access_token"])
        response = await client.post(
            "/api/auth/password",
            json={"current_password": "a brand new secret", "new_password": PASSWORD},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        headers = bearer(response.json()["access_token"])
