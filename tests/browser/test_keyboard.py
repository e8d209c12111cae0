"""The web client from the keyboard alone: a skip link first, a visible focus indicator on
every control the Tab key reaches, and the task actions done with keys."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.flows import PAGE_SIZE, add_task, api_tasks, at, row, sign_in, sign_up
from tests.e2e.stack import Stack

# More stops than the tasks page has with a few tasks: the walk wraps around to the start.
MAX_TAB_STOPS = 120

FOCUS_SHOWN = """() => {
    const element = document.activeElement;
    if (!element || element === document.body) return null;
    const style = getComputedStyle(element);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    return {
        id: element.getAttribute("data-testid") || element.id || element.tagName,
        text: (element.textContent || element.getAttribute("aria-label") || "").trim().slice(0, 40),
        shown: outline || style.boxShadow !== "none",
    };
}"""


async def test_every_tab_stop_shows_its_focus(page: Page) -> None:
    await sign_up(page)
    await add_task(page, "Pay the rent", due_date="2030-01-01", tags="home")
    await add_task(page, "Plan the trip")
    await page.goto("/tasks")

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()

    unseen = []
    seen = []
    first = None
    for _ in range(MAX_TAB_STOPS):
        stop = await page.evaluate(FOCUS_SHOWN)
        if stop is None:
            break
        key = (stop["id"], stop["text"])
        if key == first:
            break  # wrapped around
        first = first or key
        seen.append(key)
        if not stop["shown"]:
            unseen.append(key)
        await page.keyboard.press("Tab")
    assert not unseen, f"focus not visible on: {unseen}"
    # The walk went through the page: header, filters, the create form's toggle, each row's
    # controls and the assistant.
    reached = {name for name, _ in seen}
    assert {"nav-tasks", "filter-q", "create-toggle", "task-toggle", "chat-input"} <= reached, seen


async def test_task_actions_from_the_keyboard(page: Page) -> None:
    await sign_up(page)
    await page.goto("/tasks")

    # The skip link leads into the page's main content.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("main#main")).to_be_focused()

    # Create: open the form with Enter, fill it, send it with Enter from the title.
    await page.get_by_test_id("create-toggle").focus()
    await page.keyboard.press("Enter")
    title = page.get_by_test_id("task-title-input")
    await expect(title).to_be_visible()
    await title.focus()
    await page.keyboard.type("Renew the passport")
    await page.keyboard.press("Enter")
    await expect(row(page, "Renew the passport")).to_be_visible()

    # Complete and reopen with the space bar; focus stays on the row's button.
    await row(page, "Renew the passport").get_by_test_id("task-toggle").focus()
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await page.keyboard.press("Space")
    toggle = row(page, "Renew the passport").get_by_test_id("task-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(toggle).to_be_focused()
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await page.keyboard.press("Space")
    await expect(toggle).to_have_attribute("aria-pressed", "false")

    # Edit: follow the link with Enter, save with Enter.
    await row(page, "Renew the passport").get_by_test_id("task-edit").focus()
    await page.keyboard.press("Enter")
    field = page.get_by_test_id("edit-form").get_by_label("Title")
    await field.focus()
    await page.keyboard.press("End")
    await page.keyboard.type(" and the ID card")
    await page.keyboard.press("Enter")
    await expect(row(page, "Renew the passport and the ID card")).to_be_visible()


async def test_a_form_sent_back_with_errors_starts_at_its_summary(page: Page) -> None:
    """The summary names each problem and links to its field: the focus lands on it, so a
    keyboard or screen reader user starts there instead of at the top of the page."""
    await sign_up(page)
    await page.get_by_test_id("create-toggle").click()
    title = page.get_by_test_id("task-title-input")
    await title.focus()
    await page.keyboard.press("Enter")  # sent without a title
    summary = page.get_by_test_id("error-summary")
    await expect(summary).to_be_focused()
    # Its link leads to the field.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(title).to_be_focused()


async def test_an_edit_refused_for_a_change_made_meanwhile_starts_at_the_conflict(
    new_context: NewContext,
) -> None:
    """The conflict is what the person has to read before saving again: the focus lands on
    it, as on an error summary, instead of at the top of the page."""
    page = await (await new_context()).new_page()
    email = await sign_up(page)
    await add_task(page, "Call the bank")
    await row(page, "Call the bank").get_by_test_id("task-edit").click()
    edit_url = page.url

    other = await (await new_context()).new_page()
    await sign_in(other, email)
    await other.goto(edit_url)
    await other.get_by_test_id("edit-form").get_by_label("Title").fill("Call the bank at nine")
    await other.get_by_test_id("edit-submit").click()
    await expect(other).to_have_url(at("/tasks"))

    title = page.get_by_test_id("edit-form").get_by_label("Title")
    await title.fill("Call the bank and ask")
    await title.press("Enter")
    conflict = page.get_by_test_id("conflict")
    await expect(conflict).to_be_visible()
    await expect(conflict).to_be_focused()


async def test_deleting_moves_the_focus_to_undo_then_to_the_next_task(page: Page) -> None:
    await sign_up(page)
    await add_task(page, "Water the plants")
    await add_task(page, "Pay the rent")
    await add_task(page, "Call the bank")
    # Newest first: Call the bank, Pay the rent, Water the plants.
    await row(page, "Pay the rent").get_by_test_id("task-delete").focus()
    await page.keyboard.press("Enter")
    undo = page.get_by_test_id("toast-action")
    await expect(undo).to_be_focused()
    # Undone: the focus is back on the task.
    await page.keyboard.press("Enter")
    await expect(row(page, "Pay the rent").get_by_test_id("task-toggle")).to_be_focused()

    await row(page, "Pay the rent").get_by_test_id("task-delete").focus()
    async with page.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000):
        await page.keyboard.press("Enter")
        await expect(undo).to_be_focused()
    # Sent: the focus goes on to the next task, not to the start of the page.
    await expect(row(page, "Water the plants").get_by_test_id("task-toggle")).to_be_focused()


async def test_escape_closes_the_add_task_form_and_the_undo_note(page: Page) -> None:
    """Escape closes what the page opened: the "Add a task" form (the focus back on its
    toggle) and the undo note (the focus on the next task; the deletion still goes ahead)."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await add_task(page, "Pay the rent")
    # After an add the form stays open with the focus in its title.
    title = page.get_by_test_id("task-title-input")
    await expect(title).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(title).to_be_hidden()
    await expect(page.get_by_test_id("create-toggle")).to_be_focused()
    # Opened again and closed from another of its fields.
    await page.keyboard.press("Enter")
    await page.get_by_test_id("task-priority-input").focus()
    await page.keyboard.press("Escape")
    await expect(title).to_be_hidden()
    await expect(page.get_by_test_id("create-toggle")).to_be_focused()

    await row(page, "Pay the rent").get_by_test_id("task-delete").focus()
    async with page.expect_response(re.compile(r"/tasks/\d+/delete$"), timeout=15_000):
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("toast-action")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(page.get_by_test_id("toast")).to_be_hidden()
        await expect(row(page, "Water the plants").get_by_test_id("task-toggle")).to_be_focused()
    await page.reload()
    await expect(row(page, "Pay the rent")).to_have_count(0)


async def test_load_more_moves_the_focus_to_the_first_task_it_loaded(
    page: Page, site: Stack
) -> None:
    email = await sign_up(page)
    await api_tasks(site.url("gateway"), email, (f"Task {n:02d}" for n in range(PAGE_SIZE + 1)))
    await page.goto("/tasks")
    await expect(page.get_by_test_id("task-row")).to_have_count(PAGE_SIZE)
    await page.get_by_test_id("load-more").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("task-row")).to_have_count(PAGE_SIZE + 1)
    # Newest first: the oldest task is the one the second page brought.
    await expect(row(page, "Task 00").get_by_test_id("task-toggle")).to_be_focused()


async def test_deleting_a_second_task_keeps_its_undo_when_the_first_is_sent(page: Page) -> None:
    """Two deletions within the wait: when the first is sent, the toast (and the focus on its
    Undo) belongs to the second, which can still be undone."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    await add_task(page, "Pay the rent")
    await add_task(page, "Call the bank")
    # The page's clock is Playwright's: the second deletion comes 3 s after the first.
    await page.clock.install()
    await page.goto("/tasks")
    await page.clock.pause_at(await page.evaluate("Date.now() / 1000") + 0.1)  # in seconds
    await row(page, "Pay the rent").get_by_test_id("task-delete").focus()
    await page.keyboard.press("Enter")
    undo = page.get_by_test_id("toast-action")
    await expect(undo).to_be_focused()
    await page.clock.run_for(3_000)
    await row(page, "Call the bank").get_by_test_id("task-delete").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("toast")).to_contain_text("Call the bank")
    await expect(undo).to_be_focused()

    # The first deletion is sent and its row goes; the second's Undo stays, focused.
    async with page.expect_response(re.compile(r"/tasks/\d+/delete$")):
        await page.clock.run_for(2_500)
    await expect(row(page, "Pay the rent")).to_have_count(0)
    await expect(page.get_by_test_id("toast")).to_be_visible()
    await expect(page.get_by_test_id("toast")).to_contain_text("Call the bank")
    await expect(undo).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(row(page, "Call the bank").get_by_test_id("task-toggle")).to_be_focused()
    await expect(page.get_by_test_id("toast")).to_be_hidden()


# The focused element's outline against its outline unfocused (blurred, then focused again so
# the walk goes on): the site shows focus by its outline, and a box shadow in the header's
# own colour is not seen there.
OUTLINE_CHANGES = """() => {
    const element = document.activeElement;
    if (!element || element === document.body) return null;
    const look = () => {
        const style = getComputedStyle(element);
        const { outlineStyle, outlineWidth, outlineColor, outlineOffset } = style;
        return [outlineStyle, outlineWidth, outlineColor, outlineOffset].join(" ");
    };
    const focused = look();
    element.blur();
    const plain = look();
    element.focus();
    return {
        id: element.getAttribute("data-testid") || element.id || element.tagName,
        text: (element.textContent || "").trim().slice(0, 40),
        shown: focused !== plain && getComputedStyle(element).outlineStyle !== "none",
    };
}"""


async def test_every_tab_stop_of_the_other_pages_changes_its_outline_on_focus(page: Page) -> None:
    """The notifications, chat, account and overview pages and the sign-in form: each Tab stop
    looks different focused, the header's links included (the bell on its own page, whose
    "current page" frame is an outline too)."""
    await page.goto("/signin")
    unseen = [("/signin", *stop) for stop in await unseen_focus(page)]
    await sign_up(page)
    for path in ("/notifications", "/chat", "/account", "/overview"):
        await page.goto(path)
        unseen += [(path, *stop) for stop in await unseen_focus(page)]
    assert not unseen, f"focus not visible on: {unseen}"


async def unseen_focus(page: Page) -> list[tuple[str, str]]:
    """The Tab stops of the page whose outline does not change when focused."""
    unseen = []
    first = None
    await page.keyboard.press("Tab")
    for _ in range(MAX_TAB_STOPS):
        stop = await page.evaluate(OUTLINE_CHANGES)
        if stop is None:
            break
        key = (stop["id"], stop["text"])
        if key == first:
            break
        first = first or key
        if not stop["shown"]:
            unseen.append(key)
        await page.keyboard.press("Tab")
    return unseen


async def test_after_adding_a_task_the_focus_waits_in_the_form_for_the_next(page: Page) -> None:
    """Adding several tasks should not mean tabbing back through the header and the
    filters each time: after one is added the form stays open, its title focused and
    described by the note that the task was added. Opened afresh, the page starts closed."""
    await sign_up(page)
    await add_task(page, "Water the plants")
    title = page.get_by_test_id("task-title-input")
    await expect(title).to_be_focused()
    await expect(title).to_have_accessible_description("Task added.")

    await page.keyboard.type("Pay the rent")
    await page.keyboard.press("Enter")
    await expect(row(page, "Pay the rent")).to_be_visible()
    await expect(page.get_by_test_id("task-title-input")).to_be_focused()

    await page.goto("/tasks")
    await expect(page.locator("details#create")).not_to_have_attribute("open", "")
    await expect(page.get_by_test_id("task-title-input")).not_to_be_focused()
