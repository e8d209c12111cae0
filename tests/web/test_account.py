"""Sign-up with the browser's time zone, the profile, password change, sign out everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.web.conftest import (
    PASSWORD,
    Platform,
    WebAppFactory,
    api_token,
    count,
    create_form,
    csrf_of,
    page_csrf,
    register,
    shown_again,
    sign_in,
)


async def sign_up(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/signup")
    data = {
        "csrf_token": csrf_of(page.text),
        "email": "ann@example.com",
        "password": PASSWORD,
        "name": "Ann",
        "timezone": "Asia/Tokyo",
        **fields,
    }
    return await client.post("/signup", data=data)


async def test_sign_up_saves_the_time_zone_and_signs_in(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    answer = await sign_up(browser)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/tasks?notice=registered"
    page = await browser.get("/tasks?notice=registered")
    assert "Your account is ready." in page.text
    assert "Asia/Tokyo" in page.text
    token = (await api_token(clean))["access_token"]
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["timezone"] == "Asia/Tokyo"
    # Due dates are entered in it.
    await create_form(browser, title="Tokyo morning", due_date="2027-05-01", due_time="09:00")
    row = await clean.db.fetch_row("SELECT due_at FROM todo.tasks")
    assert row is not None
    assert row[0] == datetime(2027, 5, 1, 0, 0, tzinfo=UTC)


async def test_signed_out_pages_name_no_time_zone_the_person_has_not_chosen(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """Before sign-in there is no zone to show times in (and no times): the footer does not
    say "UTC" under a sign-up form whose zone field the browser filled with another."""
    for path in ("/signin", "/signup", "/nowhere"):
        page = await browser.get(path)
        assert "<footer" in page.text, path
        assert "Times are shown in" not in page.text, path
    await sign_up(browser)
    assert "Times are shown in Asia/Tokyo." in (await browser.get("/tasks")).text


async def test_sign_up_errors_are_named(clean: Platform, browser: httpx.AsyncClient) -> None:
    answer = await shown_again(
        browser, await sign_up(browser, email="", password="short", timezone="Mars/Olympus")
    )
    assert answer.status_code == 422
    for field in ("email", "password", "timezone"):
        assert f'id="{field}-error"' in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 0


async def test_a_password_too_long_for_the_api_is_refused_not_cut_short(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """Cut to the first 128 characters it would be another password than the person chose."""
    answer = await shown_again(browser, await sign_up(browser, password="x" * 129))
    assert answer.status_code == 422
    assert 'id="password-error"' in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 0


async def test_a_password_is_measured_as_the_api_measures_it(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """Four "fi" ligatures are eight characters in the form the API hashes: not "too short"
    here; eight decomposed accents are sixteen code points typed and eight there."""
    assert (await sign_up(browser, password="\ufb01" * 4)).status_code == 303
    browser.cookies.clear()
    answer = await shown_again(
        browser, await sign_up(browser, email="bob@example.com", password="e\u0301" * 7)
    )
    assert answer.status_code == 422
    assert 'id="password-error"' in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 1


async def test_an_email_address_the_api_cannot_read_is_explained_in_our_words(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """The API's validator refuses it; the page says what to enter and why, not the
    validator's "value is not a valid email address: ..."."""
    for email, reason in (
        ("ann.example.com", "must have an @-sign"),
        ("ann@example", "after the @-sign is not valid"),
    ):
        answer = await shown_again(browser, await sign_up(browser, email=email))
        assert answer.status_code == 422
        assert 'id="email-error"' in answer.text
        assert "Enter an email address such as name@example.com." in answer.text
        assert reason in answer.text
        assert "value is not" not in answer.text
        assert f'value="{email}"' in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 0


async def test_an_email_address_without_an_at_sign_is_named_with_the_other_problems(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """Only the API could tell a malformed address, and it was asked only once the rest was
    right: a form with a short password and "ann.example.com" named the password, then, sent
    again, the address. Both are named at once."""
    answer = await shown_again(
        browser, await sign_up(browser, email="ann.example.com", password="short")
    )
    assert answer.status_code == 422
    for field in ("email", "password"):
        assert f'id="{field}-error"' in answer.text
    assert "must have an @-sign" in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 0


async def test_a_taken_email_is_explained(clean: Platform, browser: httpx.AsyncClient) -> None:
    await register(clean, "ann@example.com")
    answer = await shown_again(
        browser, await sign_up(browser, password="not the password of that account")
    )
    assert answer.status_code == 409
    assert "already exists: sign in with it, or use another address" in answer.text
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 0


async def test_a_sign_up_sent_twice_signs_in_to_the_account_the_first_made(
    clean: Platform, browser: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    """Without the script a double click on "Create account" sends the form twice, and the
    browser shows the second answer only: it met the account the first had made ("already
    exists"). An address that has an account, with that account's password, is a sign-in."""
    assert (await sign_up(browser)).status_code == 303
    async with serve(make_web_app()) as second:  # no cookie of the first answer
        second.headers["Sec-Fetch-Site"] = "same-origin"
        again = await sign_up(second)
        assert again.status_code == 303, again.text
        assert again.headers["location"] == "/tasks?notice=registered"
        assert (await second.get("/tasks")).status_code == 200
    assert await count(clean, "SELECT count(*) FROM auth.users") == 1
    # Counted as a sign-in from this network, as the sign-in form's are: the form is no
    # second way to try passwords.
    signins = "SELECT coalesce(sum(count), 0) FROM web.auth_attempts WHERE bucket LIKE 'signin:%'"
    assert await count(clean, signins) == 1


async def test_a_sign_up_that_signs_in_to_an_account_made_long_ago_says_so(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """The sign-up form with an existing account's password signs in; "Your account is
    ready." is for an account just made (a form sent twice), not one the person already had."""
    await register(clean, "ann@example.com")
    await clean.db.fetch_row(
        "UPDATE auth.users SET created_at = now() - interval '1 year' RETURNING id", write=True
    )
    answer = await sign_up(browser)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/tasks?notice=existing_account"
    page = await browser.get(answer.headers["location"])
    assert "You already had an account: you are signed in." in page.text
    assert "Your account is ready." not in page.text


async def test_a_sign_up_with_the_email_as_password_is_refused_at_the_password(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    answer = await shown_again(browser, await sign_up(browser, password="ann@example.com"))
    assert answer.status_code == 400
    assert 'id="password-error"' in answer.text
    assert "Choose a password that is not your email address" in answer.text
    assert await count(clean, "SELECT count(*) FROM auth.users") == 0


async def test_profile_update(clean: Platform, ann: httpx.AsyncClient) -> None:
    page = await ann.get("/account")
    answer = await ann.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "name": "Annie", "timezone": "America/Denver"},
    )
    assert answer.headers["location"] == "/account?notice=profile"
    shown = await ann.get("/account?notice=profile")
    assert "Your profile is saved." in shown.text
    assert 'value="Annie"' in shown.text
    assert "America/Denver" in shown.text
    bad = await ann.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "name": "X", "timezone": "Nowhere/Town"},
    )
    bad = await shown_again(ann, bad)
    assert bad.status_code == 422
    assert 'id="timezone-error"' in bad.text


async def change_password(client: httpx.AsyncClient, csrf: str) -> httpx.Response:
    """The account page's password form, sent with the right current password."""
    answer = await client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
        },
    )
    assert answer.headers["location"] == "/account?notice=password"
    return answer


async def test_password_change_keeps_this_session_and_ends_the_others(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    other_device = await api_token(clean)
    async with serve(make_web_app()) as second:
        second.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(second)
        assert await count(clean, "SELECT count(*) FROM web.sessions") == 2
        csrf = await page_csrf(ann, "/account")
        await change_password(ann, csrf)
        assert (await ann.get("/tasks")).status_code == 200
        assert (await second.get("/tasks")).status_code == 303
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 1
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        refused = await api.post(
            "/api/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
        )
    assert refused.status_code == 401


async def test_ending_ones_own_sessions_leaves_other_peoples_alone(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    """A password change and "sign out everywhere" end the sessions of the user who asked,
    never another account's."""
    await register(clean, "bob@example.com", name="Bob")
    async with serve(make_web_app()) as bob:
        bob.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(bob, "bob@example.com")

        await change_password(ann, await page_csrf(ann, "/account"))
        assert (await bob.get("/tasks")).status_code == 200
        ended = await ann.post(
            "/signout-everywhere", data={"csrf_token": await page_csrf(ann, "/account")}
        )
        assert ended.status_code == 303
        assert (await ann.get("/tasks")).status_code == 303
        assert (await bob.get("/tasks")).status_code == 200
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 1


async def test_a_copy_of_the_cookie_taken_before_a_password_change_is_refused_after_it(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    """Someone who copied this browser's cookie is signed out by the password change too:
    the browser carries on under a new session id (and a new CSRF token); the old one ends."""
    stolen = ann.cookies["session"]
    old_csrf = await page_csrf(ann, "/account")
    await change_password(ann, old_csrf)
    assert ann.cookies["session"] != stolen
    new_csrf = await page_csrf(ann, "/account")
    assert new_csrf != old_csrf
    async with serve(make_web_app()) as thief:
        thief.headers["Sec-Fetch-Site"] = "same-origin"
        thief.cookies.set("session", stolen)
        refused = await thief.get("/tasks")
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/signin")
        thief.cookies.set("session", stolen)
        posted = await thief.post("/signout-everywhere", data={"csrf_token": old_csrf})
        assert posted.headers["location"].startswith("/signin")
    assert (await ann.get("/tasks")).status_code == 200
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 1


async def test_a_page_whose_token_went_stale_gets_the_sessions_current_one(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    """Another tab changed the password: this tab's token is refused, and its script reads the
    session's new one from /session/csrf (refused without a session)."""
    stale = await page_csrf(ann, "/account")
    await change_password(ann, stale)
    json = {"Accept": "application/json"}
    refused = await ann.post("/signout-everywhere", headers={**json, "X-CSRF-Token": stale})
    assert_error(refused, 403, "csrf_refused")
    renewed = await ann.get("/session/csrf", headers=json)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json() == {"csrf_token": await page_csrf(ann, "/account")}
    async with serve(make_web_app()) as anonymous:
        assert_error(await anonymous.get("/session/csrf", headers=json), 401, "signed_out")


async def test_a_password_change_that_first_refreshes_the_token_keeps_the_browser_signed_in(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The refresh before the change queues a cookie for the old id; only the new id's is
    set, so the browser is not signed out by its own password change."""
    csrf = await page_csrf(ann, "/account")
    await _expire_access(clean)
    answer = await change_password(ann, csrf)
    assert len(_session_cookies(answer)) == 1
    assert (await ann.get("/tasks")).status_code == 200


async def _expire_access(platform: Platform) -> None:
    await platform.db.fetch_row(
        "UPDATE web.sessions SET access_expires_at = $1", datetime.now(UTC) - timedelta(minutes=1)
    )


def _session_cookies(answer: httpx.Response) -> list[str]:
    return [c for c in answer.headers.get_list("set-cookie") if c.startswith("session=")]


async def test_ending_a_session_just_refreshed_leaves_the_browser_no_cookie(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The refresh before the API call queues the session's cookie with its new end; the
    answer that ends the session deletes the cookie, and the queued one is not set after."""
    csrf = await page_csrf(ann, "/account")
    await _expire_access(clean)
    answer = await ann.post("/signout-everywhere", data={"csrf_token": csrf})
    assert answer.headers["location"] == "/signin?notice=signed_out_everywhere"
    [cookie] = _session_cookies(answer)
    assert "Max-Age=0" in cookie
    assert "session" not in ann.cookies
    await sign_in(ann)
    csrf = await page_csrf(ann, "/account/delete")
    await _expire_access(clean)
    answer = await ann.post(
        "/account/delete",
        data={"csrf_token": csrf, "delete_password": PASSWORD, "delete_confirm": "yes"},
    )
    assert answer.headers["location"] == "/signin?notice=account_deleted"
    [cookie] = _session_cookies(answer)
    assert "Max-Age=0" in cookie
    assert "session" not in ann.cookies


async def test_wrong_current_passwords_never_lock_the_person_out_of_signing_in(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The password form once tried its new password as a sign-in whenever the current one
    was refused (for a form sent twice): five typos there were five failed sign-ins, and
    the person's next sign-in was refused for 15 minutes."""
    for _ in range(5):
        csrf = await page_csrf(ann, "/account")
        answer = await ann.post(
            "/account/password",
            data={"csrf_token": csrf, "current_password": "a typo of it", "new_password": "x" * 12},
        )
        answer = await shown_again(ann, answer)
        assert answer.status_code == 400, answer.text
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        login = await api.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text


async def test_a_wrong_current_password_changes_nothing(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    csrf = await page_csrf(ann, "/account")
    answer = await ann.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": "not it at all", "new_password": "x" * 12},
    )
    answer = await shown_again(ann, answer)
    assert answer.status_code == 400
    assert 'id="current_password-error"' in answer.text
    assert (await ann.get("/tasks")).status_code == 200
    await api_token(clean)  # the old password still works


async def test_a_locked_password_change_says_when_to_try_again(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The auth service's 429 for too many wrong current passwords: the page answers 429
    with the Retry-After the API gave."""
    shown = None
    for _ in range(6):
        csrf = await page_csrf(ann, "/account")
        answer = await ann.post(
            "/account/password",
            data={
                "csrf_token": csrf,
                "current_password": "not it at all",
                "new_password": "x" * 12,
            },
        )
        shown = await ann.get(answer.headers["location"])
    assert shown is not None
    assert shown.status_code == 429
    assert int(shown.headers["retry-after"]) > 0


async def test_a_new_password_that_is_the_email_is_refused_at_the_new_password(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The auth service refuses it as ``weak_password``: the current password was right, and
    the page says what is wrong with the new one, beside it."""
    csrf = await page_csrf(ann, "/account")
    answer = await ann.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": "ANN@example.com",
        },
    )
    answer = await shown_again(ann, answer)
    assert 'id="new_password-error"' in answer.text
    assert 'id="current_password-error"' not in answer.text
    assert answer.status_code == 400
    assert "Choose a password that is not your email address" in answer.text
    assert "Your current password is not right" not in answer.text
    await api_token(clean)  # the password is as it was


async def test_a_new_password_too_long_is_refused_at_the_new_password_in_our_words(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    csrf = await page_csrf(ann, "/account")
    answer = await ann.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": PASSWORD, "new_password": "x" * 129},
    )
    answer = await shown_again(ann, answer)
    assert answer.status_code == 422
    assert 'id="new_password-error"' in answer.text
    assert "Choose a new password of 8 to 128 characters" in answer.text
    await api_token(clean)


async def test_a_current_password_too_long_is_refused_at_the_current_password_in_our_words(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """Longer than any password the auth service reads (512 characters as typed, 128 in its
    normal form): not the account's, said as a wrong current password, not in the API's
    words."""
    for current in ("x" * 200, "x" * 513):
        csrf = await page_csrf(ann, "/account")
        answer = await ann.post(
            "/account/password",
            data={"csrf_token": csrf, "current_password": current, "new_password": "y" * 12},
        )
        answer = await shown_again(ann, answer)
        assert answer.status_code == 422
        assert 'id="current_password-error"' in answer.text
        assert "Your current password is not right" in answer.text
        assert "String should" not in answer.text
    await api_token(clean)  # the password is as it was


async def test_sign_out_everywhere(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    other_device = await api_token(clean)
    async with serve(make_web_app()) as second:
        second.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(second)
        csrf = await page_csrf(ann, "/account")
        answer = await ann.post("/signout-everywhere", data={"csrf_token": csrf})
        assert answer.headers["location"] == "/signin?notice=signed_out_everywhere"
        assert (await ann.get("/tasks")).status_code == 303
        assert (await second.get("/tasks")).status_code == 303
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 0
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        refused = await api.post(
            "/api/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
        )
    assert refused.status_code == 401


async def test_localtime_is_not_a_zone(ann: httpx.AsyncClient) -> None:
    page = await ann.get("/account")
    assert '<option value="localtime">' not in page.text
    answer = await ann.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "name": "Ann", "timezone": "localtime"},
    )
    answer = await shown_again(ann, answer)
    assert answer.status_code == 422
    assert 'id="timezone-error"' in answer.text
