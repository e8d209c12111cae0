"""The platform's error envelope, as every test checks it.

Every error body of every process, the gateway's own answers included, is
``{"detail": ..., "code": ..., "request_id": ...}`` and its request id is the response's
``X-Request-ID`` (ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

import httpx

ENVELOPE_KEYS = {"detail", "code", "request_id"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is the error envelope with this status (and code); returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    if code is not None:
        assert body["code"] == code, body
    assert body["detail"], body
    assert body["request_id"], body
    assert body["request_id"] == response.headers["x-request-id"], body
    assert "Traceback" not in response.text
    return body


def assert_error_page(response: httpx.Response, status: int) -> str:
    """``response`` is the gateway's HTML refusal page with this status (a web client's
    path): a page a person can read, naming the request id, with nothing it could load or
    run. Returns the page."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!doctype html>"), page
    assert response.headers["x-request-id"] in page
    for loaded in ("<script", "<link", "<style", "<img"):
        assert loaded not in page
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY"
    assert "Traceback" not in page
    return page
