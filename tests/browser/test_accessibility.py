"""axe-core on every page of the web client, at desktop and phone width: no serious or
critical violation (WCAG A and AA rules, colour contrast included), and no page wider than
the screen."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

from tests.browser.accessibility import AXE_OPTIONS, BLOCKING, blocking
from tests.browser.conftest import NewContext
from tests.browser.flows import PASSWORD, add_task, at, new_email, row, sign_up

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 375, "height": 812}}


async def test_the_scan_finds_what_it_looks_for(new_context: NewContext, axe: Axe) -> None:
    """The check itself: grey on white and an unlabelled field are reported as serious or
    critical, so a clean report on the real pages means something."""
    page = await (await new_context()).new_page()
    await page.set_content(
        '<html lang="en"><title>t</title><main><p style="color:#ccc">faint</p>'
        '<input type="text"></main></html>'
    )
    results = await axe.run(page, options=AXE_OPTIONS)
    found = {v["id"] for v in results.response["violations"] if v["impact"] in BLOCKING}
    assert {"color-contrast", "label"} <= found


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_every_page_has_no_serious_accessibility_violation(
    new_context: NewContext, axe: Axe, viewport: str
) -> None:
    page = await (await new_context(viewport=VIEWPORTS[viewport])).new_page()
    found: dict[str, list[str]] = {}

    async def scan(name: str, shows: str) -> None:
        """axe on the page as it is now, once it shows the element with test id ``shows``
        (so that an error page is never what gets scanned)."""
        await expect(page.get_by_test_id(shows).first).to_be_visible()
        results = await axe.run(page, options=AXE_OPTIONS)
        assert results.response["url"] == page.url  # axe ran on this page, under its CSP
        problems = blocking(results.response["violations"])
        # Usable at this width: nothing makes the page scroll sideways.
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            problems.append(f"the page is {overflow} px wider than the {viewport} viewport")
        if problems:
            found[name] = problems

    for path in ("/signin", "/signup"):
        await page.goto(path)
        await scan(path, path.strip("/") + "-form")
    # The forms as they come back with errors next to their fields.
    await page.get_by_test_id("signup-submit").click()
    await expect(page.get_by_role("alert").first).to_be_visible()
    await scan("/signup with errors", "signup-form")
    await page.goto("/signin")
    await page.get_by_label("Email address").fill(new_email())
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_role("alert").first).to_be_visible()
    await scan("/signin with errors", "signin-form")

    await sign_up(page)
    await scan("/tasks, empty", "empty")
    await add_task(page, "Pay the rent", due_date="2020-01-01", priority="high", tags="home")
    await add_task(page, "Plan the trip", due_date="2040-01-01", priority="low")
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await row(page, "Plan the trip").get_by_test_id("task-toggle").click()
    await expect(row(page, "Plan the trip").get_by_test_id("task-toggle")).to_have_attribute(
        "aria-pressed", "true"
    )
    await page.goto("/tasks")
    await scan("/tasks", "task-list")
    await page.get_by_test_id("create-toggle").click()
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_role("alert").first).to_be_visible()
    await scan("/tasks, create form with errors", "create-form")
    await page.goto("/tasks?due=overdue&priority=high&q=rent")
    await scan("/tasks, filtered", "task-row")

    await page.goto("/tasks")
    await row(page, "Pay the rent").get_by_test_id("task-edit").click()
    await expect(page).to_have_url(re.compile(r"/tasks/\d+/edit$"))
    edit_url = page.url
    await scan("/tasks/<id>/edit", "edit-form")
    await page.goto(edit_url.replace("/edit", "/delete"))
    await scan("/tasks/<id>/delete", "delete-form")

    await page.goto("/chat")
    await scan("/chat", "chat-form")
    await page.get_by_test_id("chat-input").fill("add call mum on friday")
    await page.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("tool-call").first).to_be_visible()
    await page.goto("/chat")
    await page.get_by_test_id("conversation-link").first.click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+"))
    await expect(page.get_by_test_id("chat-message-assistant").first).to_be_visible()
    await scan("/chat/<id>", "chat-log")
    await page.get_by_test_id("conversation-delete").click()
    await scan("/chat/<id>/delete", "conversation-delete-form")

    await page.goto("/overview")
    await scan("/overview", "completions-chart")
    await page.goto("/account")
    await scan("/account", "profile-form")
    await page.get_by_test_id("delete-account").click()
    await expect(page).to_have_url(at("/account/delete"))
    await scan("/account/delete", "delete-account-form")
    await page.get_by_test_id("delete-account-submit").click()
    await expect(page.get_by_test_id("error-summary")).to_be_visible()
    await scan("/account/delete with errors", "delete-account-form")
    await page.goto("/account")
    await page.get_by_test_id("signout").click()
    await expect(page).to_have_url(at("/signin"))
    await scan("/signin after signing out", "signin-form")

    assert not found, "\n".join(
        f"{name}: {line}" for name, lines in found.items() for line in lines
    )
