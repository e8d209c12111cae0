"""A refused form carried across its redirect (``web_service.form_states``): shown again only
on its own page, to its own browser, for a while; never with a password in it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import utcnow
from shared.db import Database
from tests.support.serving import serve
from tests.web.conftest import (
    Platform,
    WebAppFactory,
    api_create,
    api_token,
    count,
    create_form,
    csrf_of,
    idempotency_key_of,
    page_csrf,
    refusal_of,
    register,
    shown_again,
    sign_in,
)
from tests.web.test_chat_pages import chat_form
from web_service.crypto import TokenBox
from web_service.form_states import KEEP_SECONDS, PER_SESSION, STATE_MAX, FormStates

SECRET = "my secret passphrase 42"


def form_id_of(answer: httpx.Response) -> str:
    return parse_qs(urlsplit(answer.headers["location"]).query)["form"][0]


async def test_a_refused_form_is_shown_on_its_page_to_its_session_only(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory
) -> None:
    refused = await create_form(ann, title="", description="Typed before the error")
    page = await shown_again(ann, refused)
    assert "Typed before the error" in page.text
    location = refused.headers["location"]
    # Shown again on each visit while it lasts (Back, Forward, a reload).
    assert "Typed before the error" in (await ann.get(location)).text
    # Another page of the same session does not show it.
    other_page = await ann.get(f"/account?form={form_id_of(refused)}")
    assert other_page.status_code == 200
    assert "Typed before the error" not in other_page.text
    # Another session of the same user, given the address, sees the plain page.
    async with serve(make_web_app()) as second:
        second.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(second)
        elsewhere = await second.get(location)
        assert elsewhere.status_code == 200
        assert "Typed before the error" not in elsewhere.text
        assert 'data-testid="error-summary"' not in elsewhere.text
    # Expired: the page as it is, without it; an id that names nothing is the same.
    await clean.db.fetch_row("UPDATE web.form_states SET expires_at = now()", write=True)
    for address in (location, "/tasks?form=" + "A" * 22, "/tasks?form=%00"):
        gone = await ann.get(address)
        assert gone.status_code == 200, address
        assert 'data-testid="error-summary"' not in gone.text, address


async def test_a_session_keeps_its_latest_states_and_they_end_with_it(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    locations = []
    for number in range(PER_SESSION + 3):
        refused = await create_form(ann, title="", description=f"Try {number}")
        locations.append(refused.headers["location"])
    assert await count(clean, "SELECT count(*) FROM web.form_states") == PER_SESSION
    # The oldest are gone, the latest shown again.
    for number, location in enumerate(locations):
        page = await ann.get(location)
        assert (f"Try {number}" in page.text) == (number >= 3), number
    csrf = await page_csrf(ann)
    await ann.post("/signout", data={"csrf_token": csrf})
    assert await count(clean, "SELECT count(*) FROM web.form_states") == 0


async def test_no_password_is_kept_or_shown_again(
    clean: Platform, ann: httpx.AsyncClient, box: TokenBox
) -> None:
    """The password forms come back with their errors and empty password fields: what was
    typed there is in no stored state."""
    csrf = await page_csrf(ann, "/account")
    for path, data in (
        ("/account/password", {"current_password": SECRET, "new_password": "short"}),
        ("/account/password", {"current_password": SECRET, "new_password": SECRET + "!"}),
        ("/account/delete", {"delete_password": SECRET}),
        ("/account/delete", {"delete_password": SECRET, "delete_confirm": "yes"}),
    ):
        page = await shown_again(ann, await ann.post(path, data={"csrf_token": csrf, **data}))
        assert 'data-testid="error-summary"' in page.text, path
        assert SECRET not in page.text, path
    rows = await clean.db.fetch_row("SELECT array_agg(state) FROM web.form_states")
    assert rows is not None
    states = [box.open(bytes(sealed)) for sealed in rows[0]]
    assert len(states) == 4
    assert not [state for state in states if SECRET in state]


async def test_a_refused_sign_in_is_kept_in_a_sealed_cookie_of_that_browser(
    clean: Platform, browser: httpx.AsyncClient, make_web_app: WebAppFactory, box_key: bytes
) -> None:
    """Before sign-in no row is written: the state is a cookie sealed with the session keys,
    bound to the browser's anonymous cookie, holding the email and never the password."""
    await register(clean, "ann@example.com")
    page = await browser.get("/signin?next=/overview")
    answer = await browser.post(
        "/signin?next=/overview",
        data={"csrf_token": csrf_of(page.text), "email": "ann@example.com", "password": SECRET},
    )
    shown = await shown_again(browser, answer)
    assert answer.headers["location"].startswith("/signin?next=%2Foverview&form=")
    assert 'value="ann@example.com"' in shown.text
    assert 'action="/signin?next=/overview"' in shown.text
    assert "The email address or password is not right" in shown.text
    assert SECRET not in shown.text
    assert await count(clean, "SELECT count(*) FROM web.form_states") == 0
    sealed = browser.cookies["form-signin"]
    state = json.loads(TokenBox([box_key]).open(sealed.encode()))
    assert SECRET not in json.dumps(state)
    assert state["state"]["email"] == "ann@example.com"
    location = answer.headers["location"]

    # A copy of the cookie in another browser (its own anonymous cookie), a cookie past its
    # time, or a forged one: the plain form.
    anon = browser.cookies["anon"]
    stale = Fernet(box_key).encrypt_at_time(
        json.dumps(state).encode(), int(time.time()) - KEEP_SECONDS - 60
    )
    for cookies in (
        f"anon=another-{anon}; form-signin={sealed}",
        f"anon={anon}; form-signin={stale.decode()}",
        f"anon={anon}; form-signin={sealed[:-4]}AAAA",
        f"anon={anon}; form-signin={'x' * 5000}",
    ):
        page = await browser.get(location, headers={"Cookie": cookies})
        assert page.status_code == 200
        assert "ann@example.com" not in page.text, cookies
    assert "ann@example.com" in (await browser.get(location)).text

    # Signed in, the cookie is deleted with the anonymous one.
    signed_in = await sign_in(browser)
    ended = {
        header.partition("=")[0]
        for header in signed_in.headers.get_list("set-cookie")
        if "Max-Age=0" in header
    }
    assert {"form-signin", "form-signup"} <= ended


async def test_a_state_of_another_shape_shows_the_page_as_it_is(
    clean: Platform, ann: httpx.AsyncClient, make_web_app: WebAppFactory, box: TokenBox
) -> None:
    """A state kept by another version of the web client (one deployed meanwhile) may lack
    what this one reads: the page is shown all the same, never a 500."""
    token = await api_token(clean)
    task = await api_create(clean, token["access_token"], title="Pay the rent")
    edit = await ann.get(f"/tasks/{task['id']}/edit")
    chat = await chat_form(ann)
    csrf = csrf_of(edit.text)
    refusals = [
        await create_form(ann, title=""),
        await ann.post(
            f"/tasks/{task['id']}/edit",
            data={"csrf_token": csrf, "version": "1", "title": "", "priority": "medium"},
        ),
        await ann.post("/account/delete", data={"csrf_token": csrf}),
        await ann.post("/chat", data={**chat, "message": "   "}),
    ]
    await clean.db.fetch_row("UPDATE web.form_states SET state = $1", box.seal("{}"), write=True)
    for refusal in refusals:
        location = refusal.headers["location"]
        page = await ann.get(location)
        assert page.status_code == 200, (location, page.text)

    async with serve(make_web_app()) as visitor:
        visitor.headers["Sec-Fetch-Site"] = "same-origin"
        for path in ("/signin", "/signup"):
            page = await visitor.get(path)
            refusal = await visitor.post(path, data={"csrf_token": csrf_of(page.text)})
            cookie = refusal.headers["set-cookie"].partition("=")[0]
            value = {"id": form_id_of(refusal), "anon": visitor.cookies["anon"], "page": path}
            sealed = box.seal(json.dumps({**value, "state": {}})).decode()
            page = await visitor.get(
                refusal.headers["location"],
                headers={"Cookie": f"anon={visitor.cookies['anon']}; {cookie}={sealed}"},
            )
            assert page.status_code == 200, (path, page.text)


async def test_a_state_too_large_keeps_its_errors_without_what_was_typed(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """Whatever a form sends within the body's limit, a kept state is at most ``STATE_MAX``
    sealed: over it, the errors are shown again with the form as it is when opened. Text is
    kept as typed (an emoji in 4 bytes), so a form's own fields fit."""
    emoji = "\N{GRINNING FACE}"
    fits = await create_form(ann, title="", description=emoji * 2000)
    page = await shown_again(ann, fits)
    assert refusal_of(page.text) == "Enter a title"
    assert emoji * 2000 in page.text

    too_large = await create_form(
        ann, title=emoji * 400, description=emoji * 2000 + "x", tags=emoji * 1000
    )
    page = await shown_again(ann, too_large)
    assert 'data-testid="error-summary"' in page.text
    assert emoji * 20 not in page.text
    largest = await count(clean, "SELECT max(length(state)) FROM web.form_states")
    assert largest <= STATE_MAX


async def test_the_purge_deletes_every_expired_state_batch_after_batch(
    clean: Platform, ann: httpx.AsyncClient, box: TokenBox
) -> None:
    for number in range(PER_SESSION):
        await create_form(ann, title="", description=f"Try {number}")
    await clean.db.fetch_row(
        "UPDATE web.form_states SET expires_at = now() - interval '1 minute'", write=True
    )
    forms = FormStates(clean.db, box, utcnow)
    # Bounded: at most ``rounds`` batches at a time, the rest next time.
    assert await forms.purge(batch=2, rounds=1) == 2
    assert await forms.purge(batch=2) == PER_SESSION - 2
    assert await count(clean, "SELECT count(*) FROM web.form_states") == 0


async def test_a_fetch_gets_the_refusal_itself_not_a_redirect(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The page's scripts send forms asking for JSON: a refusal is the error envelope with
    its status and every problem named, and no state is kept for a page never shown."""
    page = await ann.get("/tasks")
    answer = await ann.post(
        "/tasks",
        data={
            "csrf_token": csrf_of(page.text),
            "idempotency_key": idempotency_key_of(page.text),
            "title": "",
            "description": "x" * 1001,
            "priority": "medium",
            "recurrence": "none",
        },
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["code"] == "validation_error"
    assert "Enter a title." in body["detail"]
    assert "The description can be at most 1000 characters." in body["detail"]
    assert await count(clean, "SELECT count(*) FROM web.form_states") == 0


async def test_a_refusal_of_the_api_keeps_its_code_for_a_script(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """A form asked for JSON gets the API's own code, as a row action's refusal does
    (``json_problem``): one way for both."""
    csrf = await page_csrf(ann, "/account")
    answer = await ann.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": "not it at all", "new_password": "x" * 12},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "wrong_password"


async def test_a_refusal_gone_back_to_after_its_wait_asks_for_no_wait(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    """A refusal's page gone back to (or reloaded) still says why, with its status; the wait
    it asked for is what is left of it, and none once it has passed."""
    now = [utcnow()]
    app = make_web_app(clock=lambda: now[0], auth_post_limit=1, auth_post_window_seconds=60)
    await register(clean, "ann@example.com")
    async with serve(app) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        page = await client.get("/signin")
        data = {"csrf_token": csrf_of(page.text), "email": "ann@example.com", "password": "x"}
        await client.post("/signin", data=data)
        limited = await client.post("/signin", data=data)
        first = await client.get(limited.headers["location"])
        assert first.status_code == 429
        wait = int(first.headers["retry-after"])
        assert wait > 0
        now[0] += timedelta(seconds=10)
        sooner = await client.get(limited.headers["location"])
        assert int(sooner.headers.get("retry-after", "0")) == max(0, wait - 10)
        now[0] += timedelta(minutes=20)
        later = await client.get(limited.headers["location"])
        assert later.status_code == 429
        assert "Too many sign-in attempts" in refusal_of(later.text)
        assert "retry-after" not in later.headers


async def test_a_refused_sign_in_and_sign_up_are_each_kept(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """A refused sign-in, then a refused sign-up: Back to the sign-in form shows it as it was
    refused (each page has its own cookie)."""
    signin = await browser.get("/signin")
    refused_signin = await browser.post(
        "/signin", data={"csrf_token": csrf_of(signin.text), "email": "ann@example.com"}
    )
    signup = await browser.get("/signup")
    refused_signup = await browser.post(
        "/signup", data={"csrf_token": csrf_of(signup.text), "email": "bob@example.com"}
    )
    back = await browser.get(refused_signin.headers["location"])
    assert 'value="ann@example.com"' in back.text
    assert 'id="password-error"' in back.text
    forward = await browser.get(refused_signup.headers["location"])
    assert 'value="bob@example.com"' in forward.text


def test_a_sign_in_state_too_large_for_a_cookie_keeps_its_errors(box: TokenBox) -> None:
    """A browser drops a cookie over 4096 bytes: such a state keeps its errors, not what was
    typed, rather than being lost whole."""
    forms = FormStates(cast(Database, None), box, utcnow)
    errors = {"email": "Enter an email address such as name@example.com."}
    state = {"errors": errors, "email": "\N{GRINNING FACE}" * 2000, "status": 422}
    form_id, sealed = forms.seal("the-anon", "/signin", state)
    assert len(f"__Host-form-signin={sealed}") <= 4096
    assert forms.unseal(sealed, "the-anon", "/signin", form_id) == {"errors": errors, "status": 422}


async def test_a_state_kept_as_its_session_ends_is_dropped_not_a_500(
    clean: Platform, ann: httpx.AsyncClient, box: TokenBox, engine: AsyncEngine
) -> None:
    """A sign-out in another tab deletes the session's row while a refused form is being
    kept: the state's insert read the row before the delete committed and then failed its
    foreign key (a 500). The row is locked while it is read, so the state is simply not
    kept."""
    await ann.get("/tasks")
    row = await clean.db.fetch_row("SELECT id_hash FROM web.sessions")
    assert row is not None
    session = row[0]
    forms = FormStates(clean.db, box, utcnow)
    async with engine.connect() as signing_out:
        await signing_out.execute(
            text("DELETE FROM web.sessions WHERE id_hash = :session"), {"session": session}
        )
        keeping = asyncio.create_task(forms.keep(session, "/tasks", {"problem": "Refused."}))
        await asyncio.sleep(0.3)  # the keep waits on the delete's lock
        await signing_out.commit()
    await asyncio.wait_for(keeping, 10)
    assert await count(clean, "SELECT count(*) FROM web.form_states") == 0
