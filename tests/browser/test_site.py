"""The site as a browser first meets it through the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Route, expect

from tests.browser.flows import PASSWORD, add_task, at, double_click, new_email, sign_up, titles
from tests.e2e.stack import Stack


async def test_gateway_serves_the_sign_in_page(page: Page, site: Stack) -> None:
    response = await page.goto("/")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.url.startswith(site.url("gateway"))
    await expect(page).to_have_url(at("/signin"))
    await expect(page.get_by_label("Email address")).to_be_visible()
    await expect(page.get_by_label("Password")).to_be_visible()


async def test_a_double_click_sends_a_form_once(page: Page) -> None:
    """A double click on "Create account" sent the form twice: the second met the account the
    first had just made, and the page said the address was taken (a password change's second
    met its ended session). A form sent again within a second is not sent."""
    await page.goto("/signup")
    sent: list[str] = []

    async def slowly(route: Route) -> None:  # the answer takes a while, as on a phone
        if route.request.method == "POST":
            sent.append(route.request.url)
        await asyncio.sleep(0.5)
        await route.continue_()

    await page.route(re.compile(r"/signup$"), slowly)
    form = page.get_by_test_id("signup-form")
    await form.get_by_label("Email address").fill(new_email())
    await form.get_by_label("Password").fill(PASSWORD)
    await double_click(page.get_by_test_id("signup-submit"))
    await expect(page).to_have_url(at("/tasks"))
    await expect(page.get_by_test_id("notice")).to_have_text("Your account is ready.")
    assert len(sent) == 1, sent


async def test_a_double_click_on_sign_up_without_javascript_signs_in(no_js_page: Page) -> None:
    """Without the script both sends go, and the browser shows the second answer: it met the
    account the first had made, and said the address was taken. With that account's
    password it is a sign-in."""
    page = no_js_page
    await page.goto("/signup")
    sent: list[str] = []
    first_made = asyncio.Event()

    async def first_answered_late(route: Route) -> None:
        sent.append(route.request.method)
        if len(sent) > 1:
            # The second reaches the service once the first has made the account.
            await asyncio.wait_for(first_made.wait(), 10)
            await route.continue_()
            return
        # The first reaches the service at once and makes the account; its answer is slow
        # to come back, so the browser gives it up for the second click's send, as a browser
        # drops a navigation it started another over. Sent from here, as the browser would
        # have sent it, so that its answer's cookie never reaches the browser.
        headers = await route.request.all_headers()
        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(
                route.request.url,
                content=route.request.post_data_buffer,
                headers={k: v for k, v in headers.items() if k not in {"host", "content-length"}},
            )
        first_made.set()
        with contextlib.suppress(PlaywrightError):
            await route.abort()

    await page.route(re.compile(r"/signup$"), first_answered_late)
    form = page.get_by_test_id("signup-form")
    await form.get_by_label("Email address").fill(new_email())
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_label("Time zone").fill("Europe/Paris")
    await double_click(page.get_by_test_id("signup-submit"))
    await expect(page).to_have_url(at("/tasks"))
    await expect(page.get_by_test_id("notice")).to_have_text("Your account is ready.")
    assert sent == ["POST", "POST"], sent


async def test_a_form_sent_again_with_other_values_within_a_second_goes(page: Page) -> None:
    """The double-click guard dropped any second send within a second: a search put right at
    once ("rent", then "milk") stayed on the first. Only the same values again are a double
    click."""
    await sign_up(page)
    await add_task(page, "Pay the rent")
    await add_task(page, "Buy milk")
    await page.goto("/tasks")
    searched: list[str] = []

    async def slowly(route: Route) -> None:  # the answer takes a while, as on a phone
        searched.append(route.request.url)
        await asyncio.sleep(0.5)
        await route.continue_()

    await page.route(re.compile(r"/tasks\?.*q="), slowly)
    # Typed with the keyboard alone: a locator's action would wait for the first page.
    await page.get_by_test_id("filter-q").focus()
    await page.keyboard.type("rent")
    await page.keyboard.press("Enter")
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.type("milk")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/tasks\?q=milk$"))
    await expect(titles(page)).to_have_text(["Buy milk"])
    assert [url.split("q=")[1].split("&")[0] for url in searched] == ["rent", "milk"], searched
