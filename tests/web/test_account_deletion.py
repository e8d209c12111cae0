"""Deleting the account from the account page: the password re-entered and the box ticked,
``DELETE /api/auth/me`` through the gateway, every session ended, a note on the sign-in page.
Every refusal shows the form again with nothing deleted."""

from __future__ import annotations

import hashlib
import re

import httpx

from tests.support.serving import serve
from tests.web.conftest import (
    PASSWORD,
    Platform,
    WebAppFactory,
    api_token,
    count,
    create_form,
    page_csrf,
    refusal_of,
    register,
    shown_again,
    sign_in,
)


async def users(platform: Platform) -> int:
    return await count(platform, "SELECT count(*) FROM auth.users")


async def wrong_deletion_passwords(platform: Platform) -> int:
    """The auth service's count of wrong passwords confirming the account (at deletion or a
    password change; 0 when it was never asked)."""
    row = await platform.db.fetch_row("SELECT id FROM auth.users")
    assert row is not None
    key = hashlib.sha256(f"confirm:{row[0]}".encode()).hexdigest()
    return await count(
        platform,
        "SELECT coalesce(sum(failures), 0) FROM auth.attempt_counters WHERE key_hash = $1",
        key,
    )


async def delete_form(
    client: httpx.AsyncClient, *, password: str = PASSWORD, confirm: str | None = "yes"
) -> httpx.Response:
    """The confirmation page's form, filled in and sent."""
    data = {"csrf_token": await page_csrf(client, "/account/delete"), "delete_password": password}
    if confirm is not None:
        data["delete_confirm"] = confirm
    return await client.post("/account/delete", data=data)


async def test_the_account_page_leads_to_a_confirmation_page(ann: httpx.AsyncClient) -> None:
    account = await ann.get("/account")
    assert 'href="/account/delete"' in account.text
    assert 'data-testid="delete-account"' in account.text
    page = await ann.get("/account/delete")
    assert page.status_code == 200
    assert "ann@example.com" in page.text
    assert 'id="delete_password"' in page.text
    assert 'id="delete_confirm"' in page.text
    assert re.search(r'<label for="delete_confirm">', page.text)


async def test_deleting_the_account_ends_every_session_and_lands_on_sign_in(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    await create_form(ann, title="Call the dentist")
    other_device = await api_token(clean)
    async with serve(make_web_app()) as second:
        second.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(second)
        assert await count(clean, "SELECT count(*) FROM web.sessions") == 2

        answer = await delete_form(ann)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/signin?notice=account_deleted"
        assert "max-age=0" in answer.headers["set-cookie"].lower()
        landing = await ann.get(answer.headers["location"])
        assert landing.status_code == 200
        assert "Your account and everything in it have been deleted." in landing.text
        # This browser and the other one are signed out.
        assert (await ann.get("/tasks")).status_code == 303
        assert (await second.get("/tasks")).status_code == 303
    assert await users(clean) == 0
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 0
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        refused = await api.post(
            "/api/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
        )
        assert refused.status_code == 401
        login = await api.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
        )
        assert login.status_code == 401


async def test_a_wrong_password_shows_the_form_again_and_deletes_nothing(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    answer = await shown_again(ann, await delete_form(ann, password="not my password"))
    assert 'id="delete_password-error"' in answer.text
    assert answer.status_code == 403
    assert "Nothing was deleted." in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert 'data-testid="error-summary"' in answer.text
    assert await users(clean) == 1
    assert (await ann.get("/tasks")).status_code == 200
    await api_token(clean)  # the account still signs in


async def test_a_wrong_password_keeps_the_deletion_box_ticked(ann: httpx.AsyncClient) -> None:
    """The person retypes only the password: the box they ticked stays ticked, and the
    password they typed is never sent back to the page."""
    answer = await shown_again(ann, await delete_form(ann, password="not my password"))
    assert answer.status_code == 403
    assert re.search(r'<input id="delete_confirm"[^>]* checked', answer.text)
    assert "not my password" not in answer.text
    assert re.search(r'<input id="delete_password"(?![^>]*value=)[^>]*>', answer.text)
    # Refused for the box itself: it is shown as it was sent, unticked.
    unticked = await shown_again(
        ann, await delete_form(ann, password="not my password", confirm=None)
    )
    assert unticked.status_code == 422
    assert not re.search(r'<input id="delete_confirm"[^>]* checked', unticked.text)
    # A page opened afresh starts unticked.
    page = await ann.get("/account/delete")
    assert not re.search(r'<input id="delete_confirm"[^>]* checked', page.text)


async def test_the_box_must_be_ticked(clean: Platform, ann: httpx.AsyncClient) -> None:
    for confirm in (None, "", "no", "on"):
        answer = await shown_again(ann, await delete_form(ann, confirm=confirm))
        assert answer.status_code == 422, confirm
        assert 'id="delete_confirm-error"' in answer.text
        assert 'href="#delete_confirm"' in answer.text
    assert await users(clean) == 1
    # Refused before the API is asked: a wrong password is not even counted.
    answer = await shown_again(ann, await delete_form(ann, password="not it", confirm=None))
    assert answer.status_code == 422
    assert await wrong_deletion_passwords(clean) == 0
    assert (await shown_again(ann, await delete_form(ann, password="not it"))).status_code == 403
    assert await wrong_deletion_passwords(clean) == 1


async def test_an_empty_or_oversized_password_is_refused_before_the_api(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    for password in ("", "x" * 513):
        answer = await shown_again(ann, await delete_form(ann, password=password))
        assert answer.status_code == 422
        assert 'id="delete_password-error"' in answer.text
    assert await users(clean) == 1


async def test_too_many_wrong_passwords_are_throttled(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    refusals, statuses = [], []
    for _ in range(6):
        answer = await shown_again(ann, await delete_form(ann, password="still not it"))
        refusals.append(refusal_of(answer.text))
        statuses.append(answer.status_code)
    assert statuses[:5] == [403] * 5
    assert statuses[5] == 429
    assert int(answer.headers["retry-after"]) > 0
    assert refusals[:5] == ["The password is not right. Nothing was deleted."] * 5
    assert refusals[5].startswith("Too many wrong passwords. Please wait "), refusals[5]
    # Even the right password waits out the window: nothing is deleted.
    answer = await shown_again(ann, await delete_form(ann))
    assert answer.status_code == 429
    assert refusal_of(answer.text).startswith("Too many wrong passwords.")
    assert await users(clean) == 1


async def test_deletion_needs_the_csrf_token_and_this_site(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    data = {"delete_password": PASSWORD, "delete_confirm": "yes"}
    assert (await ann.post("/account/delete", data=data)).status_code == 403
    forged = {**data, "csrf_token": "x" * 43}
    assert (await ann.post("/account/delete", data=forged)).status_code == 403
    real = {**data, "csrf_token": await page_csrf(ann, "/account/delete")}
    cross = await ann.post("/account/delete", data=real, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert await users(clean) == 1


async def test_deletion_without_a_session_signs_in_first(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    await register(clean, "ann@example.com")
    page = await browser.get("/account/delete")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Faccount%2Fdelete"
    answer = await browser.post(
        "/account/delete",
        data={"csrf_token": "x", "delete_password": PASSWORD, "delete_confirm": "yes"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?notice=session_ended"
    assert await users(clean) == 1


async def test_nothing_is_deleted_on_get(clean: Platform, ann: httpx.AsyncClient) -> None:
    await ann.get("/account/delete?delete_password=x&delete_confirm=yes")
    assert await users(clean) == 1
