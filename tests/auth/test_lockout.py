"""Exponential login lockout per email, identical for accounts that exist and ones that do not.

The test settings lock after 3 failures for 30 s, doubling per further failure, at most 600 s.
"""

from __future__ import annotations

import httpx

from shared.clock import FrozenClock
from tests.auth.factories import PASSWORD, assert_error, assert_unauthorized, login, register

WRONG = "not the password"


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
    assert response.headers["retry-after"] == "30"


async def test_failures_below_the_threshold_do_not_lock(client: httpx.AsyncClient) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 2)

    await login(client, "ann@example.com")


async def test_lockout_releases_once_the_wait_is_over(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)

    clock.advance(seconds=29)
    still_locked = await attempt(client, "ann@example.com", PASSWORD)
    clock.advance(seconds=1)
    released = await attempt(client, "ann@example.com", PASSWORD)

    assert_error(still_locked, 429, "login_locked")
    assert still_locked.headers["retry-after"] == "1"
    assert released.status_code == 200, released.text


async def test_a_successful_login_resets_the_failure_count(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 2)
    await login(client, "ann@example.com")

    await fail(client, "ann@example.com", 2)

    await login(client, "ann@example.com")


async def test_each_failure_after_the_threshold_doubles_the_wait_up_to_the_cap(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)
    waits = []
    for _ in range(6):
        locked = await attempt(client, "ann@example.com", PASSWORD)
        assert_error(locked, 429, "login_locked")
        waits.append(int(locked.headers["retry-after"]))
        clock.advance(seconds=waits[-1])
        await fail(client, "ann@example.com", 1)

    assert waits == [30, 60, 120, 240, 480, 600]


async def test_attempts_during_a_lockout_do_not_extend_it(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await fail(client, "ann@example.com", 3)

    for _ in range(5):
        assert (await attempt(client, "ann@example.com", WRONG)).status_code == 429
    clock.advance(seconds=30)

    await login(client, "ann@example.com")


async def test_lockout_never_reveals_whether_the_account_exists(
    client: httpx.AsyncClient, clock: FrozenClock
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


async def test_lockout_is_per_email_and_ignores_its_case(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await register(client, "ann@example.com")
    await register(client, "bob@example.com")

    await fail(client, "ANN@Example.com", 3)

    assert (await attempt(client, "ann@example.com", PASSWORD)).status_code == 429
    await login(client, "bob@example.com")


async def test_a_wrong_current_password_counts_towards_the_lockout(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ann@example.com")
    pair = await login(client, "ann@example.com")
    headers = {"Authorization": f"Bearer {pair['access_token']}"}

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
    assert (await attempt(client, "ann@example.com", PASSWORD)).status_code == 429
