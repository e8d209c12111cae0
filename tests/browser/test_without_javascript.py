"""Every core task action with JavaScript disabled: plain forms and links, each answered
with a redirect to a page that shows the result (POST-redirect-GET)."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.flows import add_task, at, row, sign_up, titles


async def test_task_actions_work_with_javascript_disabled(no_js_page: Page) -> None:
    page = no_js_page
    await sign_up(page, timezone="UTC")
    await expect(page.locator("footer")).to_contain_text("UTC")

    await add_task(page, "Water the plants", due_date="2031-05-04", tags="home")
    await add_task(page, "Sort the post", priority="high")
    await expect(page.get_by_test_id("task-total")).to_have_text("2")
    await expect(row(page, "Water the plants").get_by_test_id("task-due")).to_contain_text(
        "04 May 2031"
    )

    # Filter and search: a GET form.
    await page.get_by_test_id("filter-q").fill("plants")
    await page.get_by_test_id("filter-apply").click()
    # The address carries only the filter set, not every field the form sent.
    await expect(page).to_have_url(re.compile(r"/tasks\?q=plants$"))
    await expect(titles(page)).to_have_text(["Water the plants"])
    await page.goto("/tasks")

    # Complete and reopen: each a POST answered with a redirect and a note (with JavaScript
    # the page would stay where it is).
    await row(page, "Sort the post").get_by_test_id("task-toggle").click()
    await expect(page).to_have_url(re.compile(r"/tasks\?notice=completed"))
    toggle = row(page, "Sort the post").get_by_test_id("task-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await toggle.click()
    await expect(page).to_have_url(re.compile(r"/tasks\?notice=reopened"))
    await expect(toggle).to_have_attribute("aria-pressed", "false")

    # Edit: the form page, saved, back at the list.
    await row(page, "Water the plants").get_by_test_id("task-edit").click()
    await expect(page).to_have_url(re.compile(r"/tasks/\d+/edit$"))
    await page.get_by_test_id("edit-form").get_by_label("Title").fill("Water the garden")
    await page.get_by_test_id("edit-submit").click()
    await expect(page).to_have_url(at("/tasks"))
    await expect(row(page, "Water the garden")).to_be_visible()
    await expect(row(page, "Water the plants")).to_have_count(0)

    # Delete: a confirmation page instead of the undo.
    # Without the script Delete leads to a page: a link.
    delete = row(page, "Water the garden").get_by_role("link", name="Delete Water the garden")
    await delete.click()
    await expect(page).to_have_url(re.compile(r"/tasks/\d+/delete$"))
    await page.get_by_test_id("delete-confirm").click()
    await expect(page).to_have_url(re.compile(r"/tasks\?notice=deleted"))
    await expect(row(page, "Water the garden")).to_have_count(0)
    await expect(page.get_by_test_id("task-total")).to_have_text("1")

    # A chat turn is answered when it is done, then shown on the conversation's page.
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add renew the passport")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+"))
    await expect(page.get_by_test_id("chat-message-assistant")).to_have_count(1)
    await page.goto("/tasks")
    await expect(page.get_by_test_id("task-total")).to_have_text("2")

    await page.get_by_test_id("signout").click()
    await expect(page).to_have_url(at("/signin"))
