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
    register,
)
from web_service.app import CSRF_REFUSED


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
