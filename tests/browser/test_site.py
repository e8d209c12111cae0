"""The site as a browser first meets it through the gateway."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.flows import at
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
