"""A person's whole session in the web client, JavaScript on, in Chromium through the gateway:
sign up, add tasks, filter and search, an edit that meets a change made in another browser,
complete and reopen, the assistant adding a task to the list in place, delete with undo, sign
out."""

from __future__ import annotations

import datetime
import re
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import NewContext
from tests.browser.flows import (
    PAGE_SIZE,
    PASSWORD,
    add_task,
    api_tasks,
    at,
    row,
    sign_in,
    sign_up,
    titles,
)
from tests.browser.site import ACTION_TIMEOUT_MS
from tests.e2e.stack import Stack

ZONE = "Europe/Paris"


def local_day(offset: int) -> datetime.date:
    return datetime.datetime.now(ZoneInfo(ZONE)).date() + datetime.timedelta(days=offset)


async def apply_filters(page: Page, **fields: str) -> None:
    """Set the filter form's fields (by test id suffix) and apply it from an unfiltered list."""
    await page.goto("/tasks")
    filters = page.get_by_test_id("filters")
    for name, value in fields.items():
        control = filters.get_by_test_id(f"filter-{name}")
        if await control.evaluate("element => element.tagName") == "SELECT":
            await control.select_option(value)
        else:
            await control.fill(value)
    await filters.get_by_test_id("filter-apply").click()
    # The address carries only the filters set, not every field the form sent.
    query = urlencode(fields)
    await expect(page).to_have_url(re.compile(rf"/tasks\?{re.escape(query)}$"))


async def test_sign_up_add_filter_edit_complete_chat_and_sign_out(
    new_context: NewContext,
) -> None:
    context = await new_context(timezone_id=ZONE)
    page = await context.new_page()

    # Sign up: the browser's time zone fills the form and becomes the profile's.
    email = await sign_up(page)
    await expect(page.locator("footer")).to_contain_text(ZONE)
    await expect(page.get_by_test_id("empty")).to_be_visible()

    # Three tasks with due dates: one overdue, one today (a date alone is due at the
    # end of the day, shown as the day alone),
    # one in ten days at a time of day.
    yesterday, today, later = local_day(-1), local_day(0), local_day(10)
    await add_task(
        page, "Pay the rent", due_date=yesterday.isoformat(), priority="high", tags="home"
    )
    await add_task(page, "Call the bank", due_date=today.isoformat())
    await add_task(
        page,
        "Plan the trip",
        due_date=later.isoformat(),
        due_time="09:30",
        priority="low",
        tags="travel",
    )
    await expect(page.get_by_test_id("task-total")).to_have_text("3")
    await expect(row(page, "Pay the rent")).to_contain_text("Overdue")
    await expect(row(page, "Call the bank").get_by_test_id("task-due")).to_have_text(
        re.compile(rf"{today.strftime('%d %b %Y')}$")
    )
    await expect(row(page, "Plan the trip").get_by_test_id("task-due")).to_contain_text(
        later.strftime("%d %b %Y, 09:30")
    )

    # Filters and search narrow the list and its total.
    for fields, expected in (
        ({"due": "overdue"}, ["Pay the rent"]),
        ({"due": "today"}, ["Call the bank"]),
        ({"priority": "low"}, ["Plan the trip"]),
        ({"tag": "home"}, ["Pay the rent"]),
        ({"q": "bank"}, ["Call the bank"]),
        ({"q": "no such words"}, []),
    ):
        await apply_filters(page, **fields)
        await expect(titles(page)).to_have_text(expected)
        await expect(page.get_by_test_id("task-total")).to_have_text(str(len(expected)))
    await page.goto("/tasks?sort=title&order=asc")
    await expect(titles(page)).to_have_text(["Call the bank", "Pay the rent", "Plan the trip"])

    # An edit that meets a change made meanwhile in another browser: both versions shown,
    # nothing overwritten until this person chooses to save theirs.
    await page.goto("/tasks")
    await row(page, "Call the bank").get_by_test_id("task-edit").click()
    await expect(page.get_by_test_id("edit-form")).to_be_visible()
    edit_url = page.url

    other = await (await new_context(timezone_id=ZONE)).new_page()
    await sign_in(other, email)
    await other.goto(edit_url)
    await other.get_by_test_id("edit-form").get_by_label("Title").fill("Call the bank at nine")
    await other.get_by_test_id("edit-submit").click()
    await expect(other).to_have_url(at("/tasks"))
    await expect(row(other, "Call the bank at nine")).to_be_visible()

    await page.get_by_test_id("edit-form").get_by_label("Title").fill("Call the bank and ask")
    await page.get_by_test_id("edit-submit").click()
    await expect(page.get_by_test_id("conflict")).to_be_visible()
    await expect(page.get_by_test_id("conflict-current")).to_contain_text("Call the bank at nine")
    await expect(page.get_by_test_id("conflict-yours")).to_contain_text("Call the bank and ask")
    await other.reload()
    await expect(row(other, "Call the bank at nine")).to_be_visible()
    await expect(row(other, "Call the bank and ask")).to_have_count(0)

    await page.get_by_test_id("edit-submit").click()
    await expect(page).to_have_url(at("/tasks"))
    await expect(row(page, "Call the bank and ask")).to_be_visible()
    await expect(row(page, "Call the bank at nine")).to_have_count(0)

    # Complete and reopen in one click each, kept by the server (seen after a reload).
    toggle = row(page, "Pay the rent").get_by_test_id("task-toggle")
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")) as completed:
        await toggle.click()
    assert (await completed.value).ok
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await page.get_by_test_id("tab-done").click()
    await expect(titles(page)).to_have_text(["Pay the rent"])
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")) as reopened:
        await toggle.click()
    assert (await reopened.value).ok
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await page.get_by_test_id("tab-pending").click()
    await expect(page.get_by_test_id("task-total")).to_have_text("3")
    await expect(row(page, "Pay the rent")).to_be_visible()

    # The assistant beside the list: the tool call shows, and the new task appears in the
    # list without the page being loaded again.
    await page.goto("/tasks")
    await page.evaluate("() => { window.sameDocument = true; }")
    panel = page.get_by_test_id("chat-panel")
    await panel.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await panel.get_by_test_id("chat-send").click()
    await expect(panel.get_by_test_id("tool-call")).to_have_count(1)
    await expect(panel.get_by_test_id("chat-message-assistant").last).not_to_have_text("…")
    milk = page.get_by_test_id("task-row").filter(
        has=page.get_by_test_id("task-title").get_by_text(re.compile("^buy milk$", re.I))
    )
    await expect(milk).to_be_visible()
    await expect(milk.get_by_test_id("task-due")).to_contain_text(local_day(1).strftime("%d %b"))
    await expect(page.get_by_test_id("task-total")).to_have_text("4")
    assert await page.evaluate("() => window.sameDocument === true")

    # Delete with a few seconds to undo: undone, the row is back; not undone, it is gone for
    # good once the wait is over.
    trip = row(page, "Plan the trip")
    await trip.get_by_test_id("task-delete").click()
    await expect(trip).to_be_hidden()
    await page.get_by_test_id("toast-action").click()
    await expect(trip).to_be_visible()
    async with page.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000) as sent:
        await trip.get_by_test_id("task-delete").click()
        await expect(trip).to_be_hidden()
    assert (await sent.value).ok
    await expect(page.get_by_test_id("task-total")).to_have_text("3")
    await page.reload()
    await expect(trip).to_have_count(0)
    await expect(page.get_by_test_id("task-total")).to_have_text("3")

    # Sign out: back at the sign-in page, and the list is no longer reachable.
    await page.get_by_test_id("signout").click()
    await expect(page).to_have_url(at("/signin"))
    await expect(page.get_by_test_id("notice")).to_be_visible()
    await page.goto("/tasks")
    await expect(page).to_have_url(at("/signin"))
    # The other browser's session is its own and goes on.
    await other.goto("/tasks")
    await expect(other).to_have_url(at("/tasks"))
    await expect(other.get_by_test_id("task-total")).to_have_text("3")


async def test_a_list_refresh_that_cannot_reach_the_site_leaves_the_list_and_no_error(
    browser: Browser, site: Stack
) -> None:
    """The rows' refresh after a repeating task's completion failed on the network: the
    rejection went unhandled. The list stays as it was, the note is said all the same. (A
    context of its own: the aborted request's console line is this test's doing.)"""
    context = await browser.new_context(base_url=site.url("gateway"), timezone_id=ZONE)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await sign_up(page)
        due = local_day(3).isoformat()
        await add_task(page, "Water the plants", due_date=due, recurrence="weekly")
        await page.goto("/tasks")
        await page.route("**/tasks?*fragment=rows*", lambda route: route.abort())
        await row(page, "Water the plants").get_by_test_id("task-toggle").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("The next one is due")
        await expect(row(page, "Water the plants")).to_have_count(1)
        await page.wait_for_timeout(300)  # the refresh's failure has been met
        assert errors == []
    finally:
        await context.close()


async def test_completing_a_repeating_task_shows_the_next_one_and_when_it_is_due(
    new_context: NewContext,
) -> None:
    """The next occurrence appears in the list without a reload, the toast says when it is
    due (in the person's zone), and the focus stays on the task just completed."""
    page = await (await new_context(timezone_id=ZONE)).new_page()
    await sign_up(page)
    due, following = local_day(3), local_day(10)
    await add_task(
        page, "Water the plants", due_date=due.isoformat(), due_time="09:30", recurrence="weekly"
    )
    await page.goto("/tasks")
    loaded = await page.evaluate("() => performance.timeOrigin")
    toggle = row(page, "Water the plants").get_by_test_id("task-toggle")
    await toggle.click()
    await expect(page.get_by_test_id("toast")).to_have_text(
        f"Task marked done. The next one is due {following:%a %d %b %Y}, 09:30."
    )
    rows = row(page, "Water the plants")
    await expect(rows).to_have_count(2)
    await expect(page.get_by_test_id("task-total")).to_have_text("2")
    await expect(rows.nth(0).get_by_test_id("task-due")).to_contain_text(
        f"{following:%a %d %b %Y}, 09:30"
    )
    await expect(rows.nth(0).get_by_test_id("task-toggle")).to_have_attribute(
        "aria-pressed", "false"
    )
    await expect(rows.nth(1).get_by_test_id("task-toggle")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(rows.nth(1).get_by_test_id("task-toggle")).to_be_focused()
    assert await page.evaluate("() => performance.timeOrigin") == loaded


async def test_a_session_ended_under_the_page_signs_in_back_to_it(page: Page) -> None:
    """An action the page's script sends after the session has ended (the cookie gone, as
    after an idle timeout or a sign-out elsewhere): the sign-in form says why, and signing in
    again returns to the list as it was filtered."""
    email = await sign_up(page)
    await add_task(page, "Pay the rent")
    await page.goto("/tasks?status=pending")
    await page.context.clear_cookies()
    await row(page, "Pay the rent").get_by_test_id("task-toggle").click()
    await expect(page).to_have_url(at("/signin"))
    await expect(page.get_by_test_id("notice")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    form = page.get_by_test_id("signin-form")
    await form.get_by_label("Email address").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
    await expect(page).to_have_url(re.compile(r"/tasks\?status=pending$"))
    await expect(row(page, "Pay the rent")).to_be_visible()


async def test_a_refused_completion_says_why_and_the_row_stays_as_it_was(page: Page) -> None:
    """The task was deleted in another tab: the click is rolled back, and the toast reads the
    refusal's own words (the error envelope's ``detail``), not a generic failure."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    await page.goto("/tasks")
    edit = await row(page, "Pay the rent").get_by_test_id("task-edit").get_attribute("href")
    assert edit is not None
    other = await page.context.new_page()
    await other.goto(edit.replace("/edit", "/delete"))
    await other.get_by_test_id("delete-confirm").click()
    await expect(other).to_have_url(at("/tasks"))
    await row(page, "Pay the rent").get_by_test_id("task-toggle").click()
    await expect(page.get_by_test_id("toast")).to_contain_text(
        "no longer exists. Nothing was changed."
    )
    await expect(row(page, "Pay the rent").get_by_test_id("task-toggle")).to_have_attribute(
        "aria-pressed", "false"
    )


async def test_a_tab_open_before_a_password_change_elsewhere_still_completes_a_task(
    page: Page,
) -> None:
    """The change gave the session a new CSRF token; this tab's script takes it and sends the
    completion again, instead of asking for a reload."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    await page.goto("/tasks")
    other = await page.context.new_page()
    await other.goto("/account")
    form = other.get_by_test_id("password-form")
    await form.get_by_label("Current password").fill(PASSWORD)
    await form.get_by_label("New password").fill("a brand new passphrase")
    await form.get_by_test_id("password-submit").click()
    await expect(other).to_have_url(at("/account"))
    toggle = row(page, "Pay the rent").get_by_test_id("task-toggle")
    # The new token fetched, then the completion sent again and answered (the reload below
    # would otherwise race it: the page shows the completion before the server has it).
    async with (
        page.expect_response(lambda r: r.url.endswith("/session/csrf")),
        page.expect_response(lambda r: r.url.endswith("/complete") and r.ok),
    ):
        await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("toast")).to_be_hidden()
    await page.reload()
    await expect(toggle).to_have_attribute("aria-pressed", "true")


async def test_a_note_after_an_action_sits_above_the_columns_on_a_wide_screen(
    new_context: NewContext,
) -> None:
    """At 1440 px the list and the assistant are two columns; the note an action leaves
    ("Task added.") is a row above both, not a column of its own pushing them aside."""
    page = await (await new_context(viewport={"width": 1440, "height": 900})).new_page()
    await sign_up(page)
    await add_task(page, "Pay the rent")
    for path, column, aside in (
        ("/tasks?notice=created", ".tasks-column", "[data-testid=chat-panel]"),
        ("/chat?notice=conversation_deleted", ".conversations", "section.conversation"),
    ):
        await page.goto(path)
        notice = await page.get_by_test_id("notice").bounding_box()
        left = await page.locator(column).bounding_box()
        right = await page.locator(aside).bounding_box()
        assert notice is not None, path
        assert left is not None, path
        assert right is not None, path
        assert notice["height"] < 100, (path, notice)
        # Both columns start below the note, side by side, and the note spans them.
        assert left["y"] >= notice["y"] + notice["height"], (path, notice, left)
        assert right["y"] >= notice["y"] + notice["height"], (path, notice, right)
        assert right["x"] >= left["x"] + left["width"], (path, left, right)
        assert notice["width"] >= right["x"] + right["width"] - left["x"] - 1, (path, notice)


async def test_deleting_the_last_task_says_there_are_none(page: Page) -> None:
    await sign_up(page)
    await add_task(page, "Pay the rent")
    await page.goto("/tasks")
    empty = page.get_by_test_id("empty")
    await expect(empty).to_be_hidden()
    async with page.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000):
        await row(page, "Pay the rent").get_by_test_id("task-delete").click()
    await expect(page.get_by_test_id("task-total")).to_have_text("0")
    await expect(empty).to_be_visible()
    await expect(empty).to_have_text("No tasks yet. Add one above, or ask the assistant.")
    # A task the assistant adds takes its place.
    panel = page.get_by_test_id("chat-panel")
    await panel.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await panel.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("task-row")).to_have_count(1)
    await expect(empty).to_be_hidden()


async def test_a_deletion_waiting_for_undo_stays_hidden_when_the_list_refreshes(
    page: Page,
) -> None:
    """The assistant changes the list (which refreshes it) while a deletion can still be
    undone: the deleted task does not come back, and Undo still brings it back."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    # The page's clock is Playwright's, stopped once the deletion waits: the chat turn and
    # the refresh below may outlast the 5 s undo window on a loaded machine.
    await page.clock.install()
    await page.goto("/tasks")
    rent = row(page, "Pay the rent")
    await rent.get_by_test_id("task-delete").click()
    await expect(rent).to_be_hidden()
    await page.clock.pause_at(await page.evaluate("Date.now() / 1000") + 0.1)  # in seconds
    panel = page.get_by_test_id("chat-panel")
    async with page.expect_response(re.compile(r"fragment=rows")):
        await panel.get_by_test_id("chat-input").fill("add buy milk tomorrow")
        await panel.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("task-row").filter(has_text="buy milk")).to_be_visible()
    await expect(rent).to_be_hidden()
    await page.get_by_test_id("toast-action").click()
    await expect(rent).to_be_visible()


async def test_cancel_and_go_back_lead_to_the_list_as_it_was_filtered(
    new_context: NewContext,
) -> None:
    """The edit page's Cancel (also once the form came back with its errors) and the "Go back"
    of a task deleted meanwhile lead to the list with the filters that were on."""
    context = await new_context()
    page = await context.new_page()
    email = await sign_up(page)
    await add_task(page, "Pay the rent", priority="high")
    await add_task(page, "Pay the gas", priority="high")
    filtered = re.compile(r"/tasks\?status=pending&priority=high&q=pay$")
    await page.goto("/tasks?status=pending&priority=high&q=pay")

    await row(page, "Pay the rent").get_by_test_id("task-edit").click()
    await expect(page).to_have_url(re.compile(r"/tasks/\d+/edit$"))
    await page.get_by_test_id("edit-cancel").click()
    await expect(page).to_have_url(filtered)

    await row(page, "Pay the rent").get_by_test_id("task-edit").click()
    await page.get_by_test_id("edit-form").get_by_label("Title").fill("")
    await page.get_by_test_id("edit-submit").click()
    await expect(page.get_by_test_id("error-summary")).to_be_visible()
    await page.get_by_test_id("edit-cancel").click()
    await expect(page).to_have_url(filtered)
    await expect(row(page, "Pay the rent")).to_be_visible()

    # The task is deleted in another browser; this list still shows it.
    other = await (await new_context()).new_page()
    await sign_in(other, email)
    await other.goto("/tasks")
    async with other.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000):
        await row(other, "Pay the gas").get_by_test_id("task-delete").click()
    await row(page, "Pay the gas").get_by_test_id("task-edit").click()
    await expect(page.get_by_role("heading", name="Task not found")).to_be_visible()
    await page.get_by_role("link", name="Go back").click()
    await expect(page).to_have_url(filtered)
    await expect(titles(page)).to_have_text(["Pay the rent"])


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_an_edit_of_a_task_that_load_more_brought_returns_to_its_page(
    new_context: NewContext, site: Stack, javascript: bool
) -> None:
    """With JavaScript "Load more tasks" adds the next page's rows to the list in place (the
    address stays the first page's); without it, it opens the next page. Either way a task of
    that page, edited and saved (or not: Cancel), leads back to its page of the list, the
    filters kept, not to the first page where it is not."""
    page = await (await new_context(java_script_enabled=javascript)).new_page()
    email = await sign_up(page)
    await api_tasks(site.url("gateway"), email, (f"Task {n:02d}" for n in range(PAGE_SIZE + 2)))
    await page.goto("/tasks?priority=medium")
    await expect(page.get_by_test_id("task-row")).to_have_count(PAGE_SIZE)
    await page.get_by_test_id("load-more").click()
    # Newest first: the two oldest tasks are the ones the second page brought.
    await expect(row(page, "Task 00")).to_be_visible()
    await expect(row(page, "Task 01")).to_be_visible()

    second_page = re.compile(r"/tasks\?priority=medium&cursor=[^&#]+$")
    await row(page, "Task 01").get_by_test_id("task-edit").click()
    await expect(page.get_by_test_id("edit-form")).to_be_visible()
    await page.get_by_test_id("edit-cancel").click()
    await expect(page).to_have_url(second_page)
    await expect(row(page, "Task 01")).to_be_visible()

    await row(page, "Task 00").get_by_test_id("task-edit").click()
    await page.get_by_test_id("edit-form").get_by_label("Title").fill("Task 00, edited")
    await page.get_by_test_id("edit-submit").click()
    await expect(page.get_by_test_id("notice")).to_have_text("Task saved.")
    await expect(row(page, "Task 00, edited")).to_be_visible()
    await expect(page).to_have_url(
        second_page if javascript else re.compile(second_page.pattern[:-1] + "&notice=updated$")
    )
    await expect(page.get_by_role("link", name="Back to the first page")).to_be_visible()


async def test_a_note_is_said_once_not_again_on_a_reload(page: Page) -> None:
    """The note of the last action ("Task added.") is for the page the action led to: the
    address loses it at once, so a reload or a bookmark shows the list as it is, closed."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await expect(page.get_by_test_id("notice")).to_have_text("Task added.")
    await expect(page).to_have_url(re.compile(r"/tasks$"))

    await page.reload()
    await expect(row(page, "Water the plants")).to_be_visible()
    await expect(page.get_by_test_id("notice")).to_have_count(0)
    await expect(page.locator("details#create")).not_to_have_attribute("open", "")
