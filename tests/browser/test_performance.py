"""How fast the tasks page paints on loopback: reported with the run's figures, not asserted
(the shared machine's load decides most of it)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Page, expect

from tests.browser.flows import PASSWORD, sign_up
from tests.browser.site import first_contentful_paint
from tests.e2e.stack import Stack

TASKS = 50


async def test_tasks_page_first_contentful_paint_is_reported(
    page: Page, site: Stack, record_property: Callable[[str, object], None]
) -> None:
    email = await sign_up(page)
    async with httpx.AsyncClient(base_url=site.url("gateway"), timeout=30) as api:
        login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        for number in range(TASKS):
            created = await api.post("/api/tasks", json={"title": f"Task number {number}"})
            assert created.status_code == 201, created.text

    await page.goto("/tasks")  # warm: the session's token and the static files cached
    fcps = []
    for _ in range(3):
        await page.goto("/tasks")
        await expect(page.get_by_test_id("task-total")).to_have_text(str(TASKS))
        fcp = await first_contentful_paint(page)
        assert fcp is not None, "the tasks page never painted"
        fcps.append(fcp)
    record_property(f"tasks page ({TASKS} tasks) first contentful paint, ms, 3 loads", fcps)
