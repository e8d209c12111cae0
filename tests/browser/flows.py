"""What a person does in the web client, as steps the tests and ``make screenshots`` share.

Every step goes through the page as a person would (labels, buttons, the stable
``data-testid``s of docs/web.md) and waits for what the page shows next, never for a time.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable

import httpx
from playwright.async_api import Locator, Page, expect

PASSWORD = "correct horse battery staple"
# The tasks page's rows per page (WEB_PAGE_SIZE's default).
PAGE_SIZE = 50


def new_email() -> str:
    return f"browser-{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(page: Page, *, name: str = "Ada", timezone: str | None = None) -> str:
    """A new account through the sign-up form; the page ends on the tasks list. Returns the
    email. Without ``timezone`` the field keeps what the page filled in (the browser's zone
    with JavaScript on)."""
    email = new_email()
    await page.goto("/signup")
    form = page.get_by_test_id("signup-form")
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("Email address").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    if timezone is not None:
        await form.get_by_label("Time zone").fill(timezone)
    await page.get_by_test_id("signup-submit").click()
    await expect(page).to_have_url(at("/tasks"))
    await expect(page.get_by_test_id("task-list")).to_be_attached()
    return email


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/signin")
    form = page.get_by_test_id("signin-form")
    await form.get_by_label("Email address").fill(email)
    await form.get_by_label("Password").fill(password)
    await page.get_by_test_id("signin-submit").click()
    await expect(page).to_have_url(at("/tasks"))


async def api_tasks(site_url: str, email: str, titles: Iterable[str]) -> None:
    """Tasks of ``email`` made through the API at ``site_url`` (as another device would), in
    the order given: the list, newest first, shows the last one first."""
    async with httpx.AsyncClient(base_url=site_url, timeout=30) as api:
        login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        for title in titles:
            created = await api.post("/api/tasks", json={"title": title})
            assert created.status_code == 201, created.text


async def add_task(
    page: Page,
    title: str,
    *,
    due_date: str = "",
    due_time: str = "",
    priority: str = "medium",
    tags: str = "",
    recurrence: str = "none",
) -> None:
    """Fill and send the create form on the tasks page; waits for the new row."""
    toggle = page.get_by_test_id("create-toggle")
    if await page.locator("details#create").get_attribute("open") is None:
        await toggle.click()
    form = page.get_by_test_id("create-form")
    await form.get_by_test_id("task-title-input").fill(title)
    await form.get_by_test_id("task-priority-input").select_option(priority)
    await form.get_by_test_id("task-tags-input").fill(tags)
    await form.get_by_test_id("task-due-date-input").fill(due_date)
    await form.get_by_test_id("task-due-time-input").fill(due_time)
    await form.get_by_test_id("task-recurrence-input").select_option(recurrence)
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_test_id("notice")).to_be_visible()
    await expect(row(page, title)).to_be_visible()


def row(page: Page, title: str) -> Locator:
    """The list's row of the task with exactly this title."""
    return page.get_by_test_id("task-row").filter(
        has=page.get_by_test_id("task-title").get_by_text(title, exact=True)
    )


def titles(page: Page) -> Locator:
    return page.get_by_test_id("task-list").get_by_test_id("task-title")


def at(path: str) -> re.Pattern[str]:
    """Matches a page URL of this site with this path and any query."""
    return re.compile(rf"^[^?#]*//[^/]+{re.escape(path)}(\?.*)?$")


async def double_click(button: Locator) -> None:
    """Two clicks a person's double click apart, the second where the first was: a
    locator's own click would wait for the page the first one opened."""
    box = await button.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    await button.page.mouse.click(x, y)
    await asyncio.sleep(0.15)
    await button.page.mouse.click(x, y)
