"""Known defects of the refused form's way back (``responses.form_again``), each a test
expected to fail until it is fixed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from shared.clock import utcnow
from tests.support.serving import serve
from tests.web.conftest import (
    Platform,
    WebAppFactory,
    count,
    csrf_of,
    page_csrf,
    register,
)
from web_service.app import CSRF_REFUSED


@pytest.mark.xfail(
    strict=True,
    reason="form_again's JSON envelope takes its code from the status (_CODES): the auth "
    "service's wrong_password comes out as bad_request",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="change_password (and signout_everywhere, update_profile, signin) pass the API's "
    "status to form_again without its retry_after",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="render answers a recalled state with the Retry-After it was kept with, however "
    "long ago: the wait has passed and the header still says the whole of it",
)
async def test_a_refusal_gone_back_to_after_its_wait_asks_for_no_wait(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
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
        assert int(first.headers["retry-after"]) > 0
        now[0] += timedelta(minutes=20)
        later = await client.get(limited.headers["location"])
        assert "retry-after" not in later.headers


@pytest.mark.xfail(
    strict=True,
    reason="back_with_problem keeps the state for a page that answers a 404 of its own, and "
    "render recalls nothing for a non-200 page: the refusal is never said",
)
async def test_a_stale_form_sent_from_a_404_page_says_why(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """ "Sign out" on a task's 404 page with a token gone stale (a password changed in
    another tab)."""
    answer = await ann.post(
        "/signout",
        data={"csrf_token": "x" * 43},
        headers={"Referer": "http://testserver/tasks/999/edit"},
    )
    if answer.status_code == 303:
        answer = await ann.get(answer.headers["location"])
    assert CSRF_REFUSED in answer.text


@pytest.mark.xfail(
    strict=True,
    reason="back_with_problem falls back to '/' when the Referer's query, re-encoded by "
    "without_notes, passes safe_next's 2000 characters: '/' redirects and drops ?form=",
)
async def test_a_long_address_gone_back_to_still_says_why(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    referer = "http://testserver/tasks?q=" + "!" * 1900
    answer = await ann.post(
        "/tasks", data={"csrf_token": "x" * 43, "title": "t"}, headers={"Referer": referer}
    )
    if answer.status_code == 303:
        answer = await ann.get(answer.headers["location"], follow_redirects=True)
    assert answer.status_code == 403
    assert CSRF_REFUSED in answer.text
    assert await count(clean, "SELECT count(*) FROM web.form_states WHERE page = '/'") == 0
