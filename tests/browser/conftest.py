"""Browser fixtures: the whole platform running once for the session (``site.py``), one
headless Chromium for the session, a fresh browser context (cookies, storage) per test.

Run with ``make test-browser``; ``make test`` leaves this package out. Data is committed for
real; every service schema is emptied when the session is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.browser.site import ACTION_TIMEOUT_MS, launch, running_site
from tests.e2e.stack import Stack
from tests.support.database import empty_service_schemas

NewContext = Callable[..., Awaitable[BrowserContext]]

# Chromium logs every answer with an error status it loads; the tests make some on purpose
# (a wrong password, a form with errors). Anything else in the console is a failure:
# uncaught script errors, refused scripts or styles (CSP), blocked requests.
EXPECTED_CONSOLE_ERRORS = ("Failed to load resource: the server responded with a status of",)


@pytest.fixture(scope="session")
def site(migrated_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every service running, the gateway in front: ``site.url("gateway")`` is the site."""
    with running_site(migrated_url, Path(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def emptied_after(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await empty_service_schemas(engine)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(
    browser: Browser, site: Stack, emptied_after: None
) -> AsyncIterator[NewContext]:
    """Opens browser contexts on the site (each its own cookies, as another browser would
    have); ``java_script_enabled=False`` and Playwright's other context options pass
    through. Every context is closed when the test ends, and the test fails if one of its
    pages logged an error (``EXPECTED_CONSOLE_ERRORS`` aside) or threw one."""
    opened: list[BrowserContext] = []
    problems: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"{page.url}: {message.text}")
                if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE_ERRORS)
                else None
            ),
        )

    async def open_context(**options: Any) -> BrowserContext:
        context = await browser.new_context(base_url=site.url("gateway"), **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.on("page", watch)
        opened.append(context)
        return context

    try:
        yield open_context
    finally:
        for context in opened:
            await context.close()
    # Checked after the test: a script error or a policy violation (CSP) fails it.
    assert not problems, "the pages reported errors:\n" + "\n".join(problems)


@pytest_asyncio.fixture(loop_scope="session")
async def page(new_context: NewContext) -> Page:
    """A page in a fresh context, JavaScript on."""
    return await (await new_context()).new_page()


@pytest_asyncio.fixture(loop_scope="session")
async def no_js_page(new_context: NewContext) -> Page:
    """A page in a fresh context with JavaScript disabled: only forms and links work."""
    return await (await new_context(java_script_enabled=False)).new_page()


@pytest.fixture(scope="session")
def axe() -> Axe:
    return Axe()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the browser tests recorded (``record_property``), printed after every run."""
    lines = [
        f"{report.nodeid.rsplit('::', 1)[-1]}: {name} = {value}"
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call" and report.nodeid.startswith("tests/browser/")
        for name, value in report.user_properties
    ]
    if lines:
        terminalreporter.section("browser figures")
        for line in lines:
            terminalreporter.write_line(line)
