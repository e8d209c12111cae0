"""The chat page with JavaScript: a turn streamed in, its address, and a turn that failed."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.flows import PASSWORD, at, sign_up

# One character more than a message may have (web_service.chat.MESSAGE_MAX).
TOO_LONG = "x" * 4001


async def test_a_new_conversation_on_the_chat_page_gets_its_own_address(page: Page) -> None:
    """As without JavaScript (the form's redirect): a reload opens the conversation, not an
    empty "New conversation"."""
    await sign_up(page)
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await page.get_by_test_id("chat-send").click()
    answer = page.get_by_test_id("chat-message-assistant").last
    await expect(answer).not_to_have_attribute("aria-busy", "true")
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    await page.reload()
    await expect(page.get_by_test_id("chat-message-user")).to_have_text(
        re.compile("add buy milk tomorrow")
    )
    await expect(page.get_by_test_id("conversation-link")).to_have_count(1)


async def test_the_latest_answer_is_in_sight_as_turns_go_on_and_after_a_reload(
    page: Page,
) -> None:
    """The log scrolls within its own box (at most 60 % of the window): each answer is
    scrolled into it as it comes, and a conversation opens at its end."""
    await page.set_viewport_size({"width": 375, "height": 640})
    await sign_up(page)
    await page.goto("/chat")
    for said in ("add buy milk", "add call mom", "add pay rent", "add water the plants"):
        await page.get_by_test_id("chat-input").fill(said)
        await page.get_by_test_id("chat-send").click()
        answer = page.get_by_test_id("chat-message-assistant").last
        await expect(answer).not_to_have_attribute("aria-busy", "true")
        await page.get_by_test_id("chat-send").scroll_into_view_if_needed()
        await expect(answer).to_be_in_viewport()
    await expect(page.get_by_test_id("chat-message-assistant").first).not_to_be_in_viewport()
    await page.reload()
    await page.get_by_test_id("chat-send").scroll_into_view_if_needed()
    await expect(page.get_by_test_id("chat-message-assistant").last).to_be_in_viewport()


async def test_what_the_assistant_did_is_said_in_words_streamed_or_reloaded(page: Page) -> None:
    """A tool call reads "Add task: Buy milk", not the tool's name ("add_task"), as it
    streams in and the same after a reload (the script and the server write it alike)."""
    await sign_up(page)
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await page.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("chat-message-assistant").last).not_to_have_attribute(
        "aria-busy", "true"
    )
    call = page.get_by_test_id("tool-call")
    await expect(call).to_have_text(re.compile(r"^Add task: buy milk$", re.IGNORECASE))
    streamed = await call.inner_text()
    await page.reload()
    await expect(call).to_have_text(streamed)


async def test_a_new_conversation_appears_in_the_list_when_its_first_turn_is_done(
    page: Page,
) -> None:
    """Without a reload: the list shows it (marked as the one open) and counts it, the page
    heads it with its title and a delete button; a second new conversation goes on top."""
    await sign_up(page)
    await page.goto("/chat")
    await page.evaluate("() => { window.sameDocument = true; }")
    links = page.get_by_test_id("conversation-list").get_by_test_id("conversation-link")
    count = page.get_by_test_id("conversation-list").locator(".count")
    await expect(links).to_have_count(0)
    await expect(count).to_have_text("(0)")
    for n, message in enumerate(("add buy milk tomorrow", "add call mum on friday"), start=1):
        await page.get_by_test_id("chat-input").fill(message)
        await page.get_by_test_id("chat-send").click()
        await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
        await expect(links).to_have_count(n)
        await expect(count).to_have_text(f"({n})")
        address = re.sub(r"^.*(/chat/\d+)$", r"\1", page.url)
        await expect(links.first).to_have_attribute("href", address)
        await expect(links.first).to_have_attribute("aria-current", "page")
        # The conversation's heading, delete button and title are its own, as after a reload.
        title = await links.first.inner_text()
        await expect(page.locator("#conversation-heading")).to_have_text(title)
        await expect(page.get_by_test_id("conversation-delete")).to_be_visible()
        await expect(page).to_have_title(re.compile(re.escape(title)))
        if n == 1:
            await page.get_by_test_id("new-conversation").click()
            await expect(page).to_have_url(re.compile(r"/chat$"))
            await page.evaluate("() => { window.sameDocument = true; }")
    assert await page.evaluate("() => window.sameDocument") is True


async def test_a_failed_turn_keeps_what_was_typed_and_its_key(page: Page) -> None:
    """Refused, the message stays in the box to send again, with the turn's Idempotency-Key
    (a retry of a turn that did run is answered with it, not run twice); changed, it is a new
    turn with a new key."""
    await sign_up(page)
    await page.goto("/chat")
    box = page.get_by_test_id("chat-input")
    key = page.locator('#chat-form input[name="idempotency_key"]')
    # The box's maxlength stops a person typing more; the server refuses it all the same.
    await box.evaluate("element => element.removeAttribute('maxlength')")
    await box.fill(TOO_LONG)
    sent_key = await key.input_value()
    await page.get_by_test_id("chat-send").click()
    failed = page.locator("[data-testid=chat-message-assistant].failed")
    await expect(failed).to_contain_text("at most 4000 characters")
    await expect(box).to_have_value(TOO_LONG)
    await expect(box).to_be_focused()
    assert await key.input_value() == sent_key

    await box.fill("add buy bread tomorrow")
    await page.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("tool-call")).to_have_count(1)
    await expect(box).to_have_value("")
    assert await key.input_value() != sent_key


async def test_deleting_a_conversation_asks_first_and_keep_it_leads_back(page: Page) -> None:
    """One click next to the messages does not lose them: a question comes first, "Keep it"
    goes back to the conversation, and Delete says it was deleted."""
    await sign_up(page)
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    address = page.url
    await expect(page.get_by_test_id("conversation-delete")).to_be_visible()
    await page.get_by_test_id("conversation-delete").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+/delete$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Delete this conversation?")
    await page.get_by_test_id("conversation-delete-keep").click()
    await expect(page).to_have_url(address)
    await expect(page.get_by_test_id("chat-message-user")).to_have_count(1)
    await page.get_by_test_id("conversation-delete").click()
    await page.get_by_test_id("conversation-delete-confirm").click()
    await expect(page.get_by_test_id("notice")).to_have_text(re.compile("deleted", re.IGNORECASE))
    await expect(page.get_by_test_id("conversation-link")).to_have_count(0)


async def test_a_message_sent_after_the_session_ended_waits_for_the_sign_in(
    new_context: NewContext,
) -> None:
    """Signed out in another tab, the person sends a message: the sign-in form says why, and
    once signed in again the message is back in the box of the conversation, to send. A
    person who signs in next in that tab does not get it."""
    context = await new_context()
    page = await context.new_page()
    email = await sign_up(page)
    await page.goto("/chat")
    await page.get_by_test_id("chat-input").fill("add buy milk tomorrow")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    conversation = page.url

    other = await context.new_page()
    await other.goto("/tasks")
    await other.get_by_test_id("signout").click()
    await expect(other).to_have_url(at("/signin"))

    typed = "and call the plumber about the leak"
    await page.get_by_test_id("chat-input").fill(typed)
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(at("/signin"))
    await expect(page.get_by_test_id("notice")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    await sign_in_here(page, email)
    await expect(page).to_have_url(conversation)
    await expect(page.get_by_test_id("chat-input")).to_have_value(typed)
    # Given back once: a reload shows the box as the page has it.
    await page.reload()
    await expect(page.get_by_test_id("chat-input")).to_have_value("")

    # Ended again, and someone else signs in in this tab: the box is empty for them.
    someone_else = await sign_up(await (await new_context()).new_page())
    await other.goto("/tasks")
    await other.get_by_test_id("signout").click()
    await page.get_by_test_id("chat-input").fill("a note that is not theirs")
    await page.get_by_test_id("chat-send").click()
    await expect(page).to_have_url(at("/signin"))
    await sign_in_here(page, someone_else)
    await page.goto("/chat")
    await expect(page.get_by_test_id("chat-input")).to_have_value("")
    assert await page.evaluate("() => window.sessionStorage.length") == 0


async def test_a_message_kept_in_the_tab_is_dropped_after_half_an_hour(page: Page) -> None:
    """A tab lives for days: a message kept there when the session ended is given back
    within 30 minutes, and later (or without a time) dropped unseen."""
    await sign_up(page)
    await page.goto("/chat")
    owner = await page.get_by_test_id("chat-input").evaluate("i => i.form.dataset.draftOwner")
    keep = """([owner, minutes]) => window.sessionStorage.setItem("chat-draft", JSON.stringify({
        owner, page: "/chat", text: `typed ${minutes} minutes ago`,
        at: minutes === null ? undefined : Date.now() - minutes * 60000}))"""
    for minutes in (31, None):
        await page.evaluate(keep, [owner, minutes])
        await page.reload()
        await expect(page.get_by_test_id("chat-input")).to_have_value("")
        assert await page.evaluate("() => window.sessionStorage.length") == 0
    await page.evaluate(keep, [owner, 29])
    await page.reload()
    await expect(page.get_by_test_id("chat-input")).to_have_value("typed 29 minutes ago")


async def sign_in_here(page: Page, email: str) -> None:
    """The sign-in form the page is on, filled in and sent."""
    form = page.get_by_test_id("signin-form")
    await form.get_by_label("Email address").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
