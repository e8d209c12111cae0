"""How fast the tasks page paints on loopback: reported with the run's figures, not asserted
(the shared machine's load decides most of it)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.async_api import Page, expect

from tests.browser.flows import api_tasks, sign_up
from tests.browser.site import first_contentful_paint
from tests.e2e.stack import Stack

TASKS = 50


async def test_tasks_page_first_contentful_paint_is_reported(
    page: Page, site: Stack, record_property: Callable[[str, object], None]
) -> None:
    email = await sign_up(page)
    await api_tasks(site.url("gateway"), email, (f"Task number {n}" for n in range(TASKS)))

    await page.goto("/tasks")  # warm: the session's token and the static files cached
    fcps = []
    for _ in range(3):
        await page.goto("/tasks")
        await expect(page.get_by_test_id("task-total")).to_have_text(str(TASKS))
        fcp = await first_contentful_paint(page)
        assert fcp is not None, "the tasks page never painted"
        fcps.append(fcp)
    record_property(f"tasks page ({TASKS} tasks) first contentful paint, ms, 3 loads", fcps)
