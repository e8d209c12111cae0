"""The web client as a browser reaches it: real processes, every request through the gateway."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.e2e.stack import Stack

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def token(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None
    return match.group(1)


async def test_a_person_signs_up_adds_a_task_and_signs_out(stack: Stack) -> None:
    base = stack.url("gateway")
    # A browser without fetch metadata: its Origin must be the site the gateway serves.
    async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
        browser.headers["Origin"] = base
        first = await browser.get("/")
        assert first.status_code == 303
        assert first.headers["location"] == "/signin"
        page = await browser.get("/signup")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["content-type"].startswith("text/html")
        email = f"web-{uuid.uuid4().hex[:10]}@example.com"
        signed_up = await browser.post(
            "/signup",
            data={
                "csrf_token": token(page.text),
                "email": email,
                "password": "correct horse battery staple",
                "name": "Web",
                "timezone": "Europe/Paris",
            },
        )
        assert signed_up.status_code == 303, signed_up.text
        tasks = await browser.get("/tasks")
        assert tasks.status_code == 200
        key = KEY.search(tasks.text)
        assert key is not None
        created = await browser.post(
            "/tasks",
            data={
                "csrf_token": token(tasks.text),
                "idempotency_key": key.group(1),
                "title": "Through the gateway",
                "priority": "medium",
                "recurrence": "none",
            },
        )
        assert created.status_code == 303, created.text
        assert "Through the gateway" in (await browser.get("/tasks")).text
        # The cookie opens pages only: the API takes bearer tokens.
        assert (await browser.get("/api/tasks")).status_code == 401
        out = await browser.post("/signout", data={"csrf_token": token(tasks.text)})
        assert out.status_code == 303
        assert (await browser.get("/tasks")).headers["location"].startswith("/signin")

    async with httpx.AsyncClient(base_url=base, timeout=30) as other_site:
        page = await other_site.get("/signin")
        refused = await other_site.post(
            "/signin",
            data={"csrf_token": token(page.text), "email": email, "password": "x"},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403
