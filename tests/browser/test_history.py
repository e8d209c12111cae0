"""The browser's history after a form: Back and Forward never ask to send a form again
("Confirm Form Resubmission"), a refused form is shown again with what was typed (never a
password), with JavaScript on and off."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.flows import PASSWORD, at, row, sign_up, titles


async def assert_shown(page: Page) -> None:
    """The page is one of this site's, not the browser's own page asking to send a form
    again (Chromium's is an error page at ``chrome-error://``, ERR_CACHE_MISS)."""
    assert page.url.startswith("http"), page.url
    await expect(page.locator("main#main")).to_be_attached()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_back_and_forward_over_a_refused_task_form_send_nothing_again(
    new_context: NewContext, javascript: bool
) -> None:
    page = await (await new_context(java_script_enabled=javascript)).new_page()
    await sign_up(page, timezone="UTC")
    await page.goto("/tasks")
    await page.get_by_test_id("create-toggle").click()
    form = page.get_by_test_id("create-form")
    # A time without a date: refused, with the title kept.
    await form.get_by_test_id("task-title-input").fill("Pay the rent")
    await form.get_by_test_id("task-due-time-input").fill("09:30")
    await page.get_by_test_id("create-submit").click()
    summary = page.get_by_test_id("error-summary")
    await expect(summary).to_contain_text("Enter the date the task is due")
    await expect(form.get_by_test_id("task-title-input")).to_have_value("Pay the rent")
    refused_at = page.url

    await form.get_by_test_id("task-due-time-input").fill("")
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_test_id("notice")).to_have_text("Task added.")
    await expect(titles(page)).to_have_text(["Pay the rent"])

    # Back: the refused form again, asked for with a GET (its fields as the person left
    # them: the browser restores what was typed into a page gone back to).
    await page.go_back()
    await assert_shown(page)
    assert page.url == refused_at
    await expect(summary).to_contain_text("Enter the date the task is due")
    await expect(form.get_by_test_id("task-title-input")).to_have_value("Pay the rent")
    # Forward: the list, the task made once.
    await page.go_forward()
    await assert_shown(page)
    await expect(titles(page)).to_have_text(["Pay the rent"])
    await page.reload()
    await expect(page.get_by_test_id("task-total")).to_have_text("1")

    # The edit form refused (no title): Back leads to the form as opened, Forward to the
    # refusal again, and Cancel still leads to the list.
    await row(page, "Pay the rent").get_by_test_id("task-edit").click()
    edit = page.get_by_test_id("edit-form")
    await edit.get_by_label("Title").fill("")
    await edit.get_by_label("Description").fill("Before the 5th")
    await page.get_by_test_id("edit-submit").click()
    await expect(summary).to_contain_text("Enter a title")
    await page.go_back()
    await assert_shown(page)
    await expect(summary).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"/tasks/\d+/edit$"))
    await page.go_forward()
    await assert_shown(page)
    await expect(summary).to_contain_text("Enter a title")
    await expect(edit.get_by_label("Description")).to_have_value("Before the 5th")
    await page.get_by_test_id("edit-cancel").click()
    await expect(page).to_have_url(at("/tasks"))
    await expect(titles(page)).to_have_text(["Pay the rent"])


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_a_refused_sign_in_keeps_the_email_never_the_password(
    new_context: NewContext, javascript: bool
) -> None:
    context = await new_context(java_script_enabled=javascript)
    page = await context.new_page()
    email = await sign_up(page)
    await page.get_by_test_id("signout").click()
    await expect(page).to_have_url(at("/signin"))

    wrong = "not the password at all"
    form = page.get_by_test_id("signin-form")
    await form.get_by_label("Email address").fill(email)
    await form.get_by_label("Password").fill(wrong)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("error-summary")).to_contain_text(
        "The email address or password is not right"
    )
    await expect(form.get_by_label("Email address")).to_have_value(email)
    await expect(form.get_by_label("Password")).to_have_value("")
    assert wrong not in await page.content()

    await page.go_back()
    await assert_shown(page)
    await page.go_forward()
    await assert_shown(page)
    await expect(page.get_by_test_id("error-summary")).to_be_visible()
    await expect(form.get_by_label("Email address")).to_have_value(email)
    await expect(form.get_by_label("Password")).to_have_value("")

    await form.get_by_label("Password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
    await expect(page).to_have_url(at("/tasks"))
    # Back over the refusal: signed in, the sign-in page leads on to the list.
    await page.go_back()
    await assert_shown(page)
    await expect(page).to_have_url(at("/tasks"))


async def test_a_refused_password_change_is_not_sent_again_by_back_or_forward(page: Page) -> None:
    await sign_up(page)
    await page.goto("/account")
    form = page.get_by_test_id("password-form")
    await form.get_by_label("Current password").fill("not the password at all")
    await form.get_by_label("New password").fill("a brand new passphrase")
    await form.get_by_test_id("password-submit").click()
    await expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Your current password is not right"
    )
    await expect(form.get_by_label("Current password")).to_have_value("")
    await expect(form.get_by_label("New password")).to_have_value("")
    await page.go_back()
    await assert_shown(page)
    await expect(page.get_by_test_id("error-summary")).to_have_count(0)
    await page.go_forward()
    await assert_shown(page)
    await expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Your current password is not right"
    )
    await page.reload()
    await expect(page).to_have_url(re.compile(r"/account\?form="))
