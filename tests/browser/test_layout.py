"""The pages' layout at the widths people use: a desktop (1280 px) and a phone (390 px).
Measured from the boxes the browser lays out, so a rule that loses to another (specificity, a
media query) shows up here, where a screenshot would only be looked at."""

from __future__ import annotations

import itertools
import re

from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.flows import add_task, row, sign_up

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


async def test_the_conversation_takes_the_wide_column_of_the_chat_page(
    new_context: NewContext,
) -> None:
    """On a desktop the conversation (what is read and typed in) is the wide column and the
    list of conversations the narrow one beside it; its heading starts at the top of its box."""
    page = await (await new_context(viewport=DESKTOP)).new_page()
    await sign_up(page)
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add pay the rent tomorrow")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    await expect(page.get_by_test_id("chat-message-assistant")).to_have_count(1)
    # The script puts the conversation's own heading in place once the turn is done.
    await expect(page.locator("#conversation-heading")).to_have_text("add pay the rent tomorrow")
    conversations = await box(page, "[data-testid=conversation-list]")
    conversation = await box(page, "section.conversation")
    assert conversation["x"] > conversations["x"] + conversations["width"] - 1
    assert conversation["width"] > 1.5 * conversations["width"], (conversations, conversation)
    heading = await box(page, "#conversation-heading")
    # The section's padding (1rem) and no more above the heading.
    assert heading["y"] - conversation["y"] <= 24, (conversation, heading)


async def test_a_long_name_leaves_sign_out_on_one_line_on_a_phone(
    new_context: NewContext,
) -> None:
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page, name="Augusta Ada King, Countess of Lovelace, née Byron")
    signout = await box(page, "[data-testid=signout]")
    assert signout["height"] < 40, signout  # one line of text, not "Sign / out"
    assert signout["x"] + signout["width"] <= PHONE["width"]
    # The name is cut short on screen; the whole of it is its title.
    who = page.locator(".signout .who")
    await expect(who).to_have_attribute(
        "title", "Augusta Ada King, Countess of Lovelace, née Byron"
    )
    name = await box(page, ".signout .who")
    assert name["height"] < 40, name
    # The bell, the name and Sign out share the row under the navigation: two rows in all.
    bell = await box(page, "[data-testid=nav-notifications]")
    assert abs((bell["y"] + bell["height"] / 2) - (name["y"] + name["height"] / 2)) < 4
    header = await box(page, "header")
    assert header["height"] < 112, header


async def test_the_header_keeps_two_rows_on_every_page_of_a_phone(
    new_context: NewContext,
) -> None:
    """The current page's link is bold: on a 375 px phone that pushed the navigation off the
    brand's row on some pages (a third row, and a header that jumped between pages), and on a
    360 px one on every page."""
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page)
    for width in (360, 375):
        await page.set_viewport_size({"width": width, "height": 780})
        for path in ("/tasks", "/overview", "/chat", "/account", "/notifications"):
            await page.goto(path)
            header = await box(page, "header")
            assert header["height"] < 112, (width, path, header)
            assert await sideways(page) == 0, (width, path)


async def test_the_header_keeps_two_rows_on_a_320_px_phone_with_whole_words_and_44_px_targets(
    new_context: NewContext,
) -> None:
    """At 320 px (and up to 360) the brand and the four links were wider than the row: the
    navigation took a row of its own, three in all. Each link keeps its whole word and a
    target of at least 44 by 44 px, as the bell has."""
    page = await (await new_context(viewport={"width": 320, "height": 640})).new_page()
    await sign_up(page)
    for width, path in itertools.product(
        (320, 340), ("/tasks", "/overview", "/chat", "/account", "/notifications")
    ):
        await page.set_viewport_size({"width": width, "height": 640})
        await page.goto(path)
        header = await box(page, "header")
        assert header["height"] < 112, (width, path, header)
        overflow = await page.locator("header").evaluate("(h) => h.scrollWidth - h.clientWidth")
        assert overflow == 0, (width, path)
        brand = await box(page, ".brand")
        targets = page.locator("header nav a, [data-testid=nav-notifications]")
        for target in await targets.all():
            shown = await target.bounding_box()
            assert shown is not None
            assert shown["width"] >= 44, (width, path, shown)
            assert shown["height"] >= 44, (width, path, shown)
            assert shown["x"] + shown["width"] <= width, (width, path, shown)
            cut = await target.evaluate("(link) => link.scrollWidth > link.clientWidth")
            assert not cut, (width, path, await target.text_content())
        first_link = await box(page, "header nav a")
        # The navigation shares the brand's row.
        assert first_link["y"] < brand["y"] + brand["height"], (width, path, brand, first_link)


async def test_a_tasks_title_keeps_the_rows_width_on_a_phone(new_context: NewContext) -> None:
    """On a phone Edit and Delete go under the task rather than beside it, where they would
    squeeze its title into a column a word or two wide."""
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page)
    title = "Book the car in for its annual service and ask about the brakes"
    await add_task(page, title)
    task = row(page, title)
    body = await task.locator(".task-body").bounding_box()
    actions = await task.locator(".task-actions").bounding_box()
    whole = await task.bounding_box()
    assert body is not None
    assert actions is not None
    assert whole is not None
    assert body["width"] > 0.7 * whole["width"], (body, whole)
    assert actions["y"] >= body["y"] + body["height"] - 1, (body, actions)
    assert actions["x"] + actions["width"] <= whole["x"] + whole["width"], (actions, whole)


async def test_a_tasks_number_stays_whole_in_its_rows_muted_line_on_a_phone(
    new_context: NewContext,
) -> None:
    """The number the assistant names a task by ("Task 7") ends the row's meta line, in its
    muted colour (not a tag's link colour), on one line, and the page does not widen."""
    page = await (await new_context(viewport={"width": 375, "height": 812})).new_page()
    await sign_up(page)
    title = "Water the plants"
    await add_task(page, title, due_date="2040-01-01", due_time="09:30", tags="home, garden")
    await page.goto("/tasks")
    number = row(page, title).get_by_test_id("task-number")
    await expect(number).to_have_text(re.compile(r"^Task \d+$"))
    meta = row(page, title).locator(".task-meta")
    colours = await meta.evaluate(
        """(line) => [getComputedStyle(line).color,
            getComputedStyle(line.querySelector("[data-testid=task-number]")).color]"""
    )
    assert colours[0] == colours[1], colours
    shown = await number.bounding_box()
    whole = await row(page, title).bounding_box()
    assert shown is not None
    assert whole is not None
    assert shown["height"] < 30, shown
    assert shown["x"] + shown["width"] <= whole["x"] + whole["width"], (shown, whole)
    assert await sideways(page) == 0


async def test_the_undo_note_uses_the_width_of_a_phone(new_context: NewContext) -> None:
    """The toast is centred with ``left: 50%``: without its own width it would shrink to the
    half of the screen right of its left edge and wrap "Deleted ..." over several lines."""
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page)
    await add_task(page, "Return the library books")
    await page.goto("/tasks")
    await row(page, "Return the library books").get_by_test_id("task-delete").click()
    toast = page.get_by_test_id("toast")
    await expect(toast).to_be_visible()
    shown = await toast.bounding_box()
    assert shown is not None
    assert shown["width"] > PHONE["width"] / 2 + 20, shown
    assert shown["x"] >= 0, shown
    assert shown["x"] + shown["width"] <= PHONE["width"], shown
    # "Deleted “Return the library books”." and Undo: two lines of text at most.
    assert shown["height"] < 80, shown
    await page.get_by_test_id("toast-action").click()
    await expect(row(page, "Return the library books")).to_be_visible()


async def test_the_overview_chart_shows_its_numbers_and_days_readably_on_a_phone(
    new_context: NewContext,
) -> None:
    """The day with most completions has its number over its bar inside the drawing (not cut
    off at the top), and on a phone the scaled-down labels stay at a readable size."""
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page)
    await add_task(page, "Post the letter")
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")) as answer:
        await row(page, "Post the letter").get_by_test_id("task-toggle").click()
    assert (await answer.value).ok
    await page.goto("/overview")
    chart = await box(page, "[data-testid=completions-chart]")
    number = await box(page, "[data-testid=completions-chart] text.value")
    assert number["y"] >= chart["y"] - 0.5, (chart, number)
    day = await box(page, "[data-testid=completions-chart] text.day")
    assert day["height"] >= 10, day  # rendered px, after the drawing is scaled to the phone
    assert day["y"] + day["height"] <= chart["y"] + chart["height"] + 0.5, (chart, day)


async def test_a_long_tag_or_conversation_title_wraps_instead_of_widening_a_phone_page(
    new_context: NewContext,
) -> None:
    """A tag may be 30 characters with no space and a conversation is titled by its first
    message: either wraps inside its box rather than making the page scroll sideways."""
    page = await (await new_context(viewport=PHONE)).new_page()
    await sign_up(page)
    tag = "w" * 30
    await add_task(page, "Tag the jobs", tags=tag)
    await page.goto(f"/tasks?tag={tag}")
    await expect(page.get_by_test_id("task-row")).to_have_count(1)
    assert await sideways(page) == 0, "/tasks with a long tag"
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add " + "unbrokenword" * 8)
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    await page.reload()
    await expect(page.get_by_test_id("conversation-link")).to_have_count(1)
    assert await sideways(page) == 0, "/chat/<id> with a long title"


async def sideways(page: Page) -> int:
    """How many px wider than the screen the page is (0: it does not scroll sideways)."""
    return int(
        await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


async def test_every_filter_choice_shows_whole_on_a_phone(new_context: NewContext) -> None:
    """Three to a row, a 375 px phone cut "Any time" to "Any tim" (and "Newest", "No due
    date"...): on a phone the search keeps the whole width and the choices go two to a row,
    each select as wide as its longest option, with the first task still on the screen."""
    page = await (await new_context(viewport={"width": 375, "height": 812})).new_page()
    await sign_up(page)
    await add_task(page, "Water the plants")
    await page.goto("/tasks")
    search = await box(page, "[data-testid=filter-q]")
    assert search["width"] > 375 * 0.7, search
    # The width each select needs for its longest option, as the browser sizes it unstyled.
    cut = await page.evaluate(
        """() => [...document.querySelectorAll("#filters select")].flatMap((select) => {
            const whole = select.cloneNode(true);
            whole.style.width = "auto";
            whole.style.position = "absolute";
            document.body.append(whole);
            const needed = whole.getBoundingClientRect().width;
            whole.remove();
            const shown = select.getBoundingClientRect().width;
            return shown + 0.5 < needed ? [`${select.id}: ${shown} < ${needed}`] : [];
        })"""
    )
    assert not cut, cut
    filters = await box(page, "[data-testid=filters]")
    assert filters["x"] + filters["width"] <= 375, filters
    first = await box(page, "[data-testid=task-row]")
    assert first["y"] + 40 < 812, first
    # With a filter applied, "Clear filters" joins Apply in the last cell, and the page still
    # does not scroll sideways.
    await page.goto("/tasks?priority=high")
    await expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
    assert await sideways(page) == 0


async def test_no_page_scrolls_sideways_or_spills_out_of_its_box_on_a_320_px_phone(
    new_context: NewContext,
) -> None:
    """The narrowest phone people use: every page fits its width, and nothing in a page is
    wider than the box it is in (the overview's priority table stood out of its card and made
    the page 1 px wider than the screen), so no text is cut or spills either."""
    page = await (await new_context(viewport={"width": 320, "height": 640})).new_page()
    found: dict[str, list[str]] = {}

    async def check(name: str, shows: str) -> None:
        await expect(page.get_by_test_id(shows).first).to_be_visible()
        problems = await spilling(page)
        if (overflow := await sideways(page)) > 0:
            problems.append(f"the page is {overflow} px wider than the screen")
        if problems:
            found[name] = problems

    for path in ("/signin", "/signup"):
        await page.goto(path)
        await check(path, path.strip("/") + "-form")
    await page.get_by_test_id("signup-submit").click()
    await check("/signup with errors", "error-summary")

    await sign_up(page)
    await check("/tasks, empty", "empty")
    await add_task(page, "Pay the rent", due_date="2020-01-01", priority="high", tags="home")
    await add_task(page, "Plan the trip", due_date="2040-01-01", priority="low")
    async with page.expect_response(re.compile(r"/tasks/\d+/complete$")):
        await row(page, "Plan the trip").get_by_test_id("task-toggle").click()
    await page.goto("/tasks")
    await check("/tasks", "task-row")
    await page.get_by_test_id("create-toggle").click()
    await page.get_by_test_id("create-submit").click()
    await check("/tasks, create form with errors", "error-summary")
    await page.goto("/tasks?due=overdue&priority=high&q=rent")
    await check("/tasks, filtered", "task-row")
    edit = await row(page, "Pay the rent").get_by_test_id("task-edit").get_attribute("href")
    assert edit is not None
    await page.goto(edit)
    await check("/tasks/<id>/edit", "edit-form")
    await page.goto(edit.replace("/edit", "/delete"))
    await check("/tasks/<id>/delete", "delete-form")

    await page.goto("/chat")
    await check("/chat", "chat-form")
    await page.get_by_test_id("chat-input").fill("add call mum on friday")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    await page.reload()
    await check("/chat/<id>", "chat-message-assistant")
    await page.get_by_test_id("conversation-delete").click()
    await check("/chat/<id>/delete", "conversation-delete-form")

    await page.goto("/overview")
    await check("/overview", "stats-priority")
    await page.goto("/notifications")
    await check("/notifications", "notifications-empty")
    await page.goto("/account")
    await check("/account", "password-form")
    await page.get_by_test_id("password-submit").click()
    await check("/account with errors", "error-summary")
    await page.goto("/account/delete")
    await check("/account/delete", "delete-account-form")
    assert not found, found


async def spilling(page: Page) -> list[str]:
    """The elements of the main content wider inside than their box (a form control's own
    scrolling aside): their text is cut off, or spills over what is beside them."""
    return list(
        await page.evaluate(
            """() => [...document.querySelectorAll("main *")]
                .filter((e) => !e.matches("input, select, textarea"))
                .filter((e) => !e.closest(".visually-hidden"))
                .filter((e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth)
                .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} px `
                    + `in ${e.clientWidth}`)"""
        )
    )
