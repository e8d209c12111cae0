"""The web client as a screen reader hears it: what its live regions say when the page
changes in place (``announcements.py`` records it), and the names and states of its
controls."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.announcements import heard, listen
from tests.browser.flows import add_task, row, sign_up


async def test_changes_to_the_task_list_are_not_read_out_row_by_row(page: Page) -> None:
    """The list is not a live region: a row swapped after a click, or the whole list read
    again after the assistant changed it, would be read aloud in full (every row of a page of
    50). What changed is said once: the pressed state of the focused button, the chat log's
    tool call and answer."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await add_task(page, "Pay the rent")
    await listen(page)

    await row(page, "Pay the rent").get_by_test_id("task-toggle").focus()
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await page.keyboard.press("Space")
    toggle = row(page, "Pay the rent").get_by_test_id("task-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(toggle).to_be_focused()

    await page.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("chat-message-assistant").last).not_to_have_attribute(
        "aria-busy", "true"
    )
    await expect(row(page, "Buy milk")).to_be_visible()
    said = await heard(page)
    assert "Add task: Buy milk" in said, said
    assert not [line for line in said if "Water the plants" in line or "Pay the rent" in line], said


async def test_the_done_button_keeps_its_name_and_says_done_by_being_pressed(
    page: Page,
) -> None:
    """A toggle button whose name changed with its state ("Mark done", then "Reopen ...
    pressed") would say two contradicting things; the name stays, ``aria-pressed`` tells."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    toggle = row(page, "Pay the rent").get_by_test_id("task-toggle")
    await expect(toggle).to_have_accessible_name("Mark done: Pay the rent")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(toggle).to_have_accessible_name("Mark done: Pay the rent")
    await page.reload()
    await expect(toggle).to_have_accessible_name("Mark done: Pay the rent")
    await expect(toggle).to_have_attribute("aria-pressed", "true")


async def test_the_overview_counts_say_what_they_count(page: Page) -> None:
    """Each count is a link to the tasks it counts; read from the Tab key or a list of links,
    "1, link" said nothing: its name says what the number is."""
    await sign_up(page)
    await add_task(page, "Pay the rent", priority="high")
    await page.goto("/overview")
    links = page.get_by_role("main").get_by_role("link")
    await expect(links).to_have_text(
        [
            "1 in all",
            "1 pending",
            "0 done",
            "0 overdue",
            "0 due today",
            "0 due this week",
            "1 with no due date",
            "1 high priority pending",
            "0 high priority done",
            "0 medium priority pending",
            "0 medium priority done",
            "0 low priority pending",
            "0 low priority done",
        ]
    )


async def test_undo_says_what_it_undoes_and_the_count_keeps_its_grammar(page: Page) -> None:
    """Focused after a deletion, "Undo" alone does not say which task comes back: it is
    described by the toast's message. The heading's count reads "1 task", not "1 tasks"."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await add_task(page, "Pay the rent")
    heading = page.locator("#list-heading")
    await expect(heading).to_have_text("2 tasks")

    async with page.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000):
        await row(page, "Pay the rent").get_by_test_id("task-delete").click()
        undo = page.get_by_test_id("toast-action")
        await expect(undo).to_be_focused()
        await expect(undo).to_have_accessible_name("Undo")
        await expect(undo).to_have_accessible_description("Deleted “Pay the rent”.")
    await expect(heading).to_have_text("1 task")


async def test_delete_is_announced_as_the_button_it_is(page: Page) -> None:
    """With the script a task's Delete acts in place (the row goes, with an Undo): it is a
    button, and named with its task. Without the script it is a link to the confirmation
    page (tests/browser/test_without_javascript.py)."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    rent = row(page, "Pay the rent")
    await expect(rent.get_by_role("button", name="Delete Pay the rent")).to_have_count(1)
    await expect(rent.get_by_role("link", name=re.compile("^Delete"))).to_have_count(0)
    # A row the script puts in place (after a completion) is a button too.
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await rent.get_by_test_id("task-toggle").click()
    await expect(rent.get_by_test_id("task-toggle")).to_have_attribute("aria-pressed", "true")
    await expect(rent.get_by_role("button", name="Delete Pay the rent")).to_have_count(1)
    await rent.get_by_role("button", name="Delete Pay the rent").press("Space")
    await expect(page.get_by_test_id("toast-action")).to_be_focused()


async def test_the_note_of_the_last_action_is_where_the_focus_starts(page: Page) -> None:
    """A screen reader reads a new page from its title, not its status: after an action that
    leads to a new page ("Task saved."), the focus starts on the note, so it is read out.
    A page that puts the focus somewhere itself keeps it there (the next task's title)."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await expect(page.get_by_test_id("task-title-input")).to_be_focused()

    await row(page, "Water the plants").get_by_role("link", name=re.compile("^Edit")).click()
    await page.get_by_test_id("task-title-input").fill("Water the garden")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("notice")).to_have_text("Task saved.")
    await expect(page.get_by_test_id("notice")).to_be_focused()
