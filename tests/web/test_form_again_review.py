"""Known defects of the refused form's way back (``responses.form_again``), each a test
expected to fail until it is fixed."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import (
    Platform,
    count,
)
from web_service.app import CSRF_REFUSED


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
