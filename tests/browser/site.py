"""The platform as a browser meets it: every service running as in the end-to-end tests
(``tests/e2e/stack.py``) with the todo worker on a ``redis-server`` of its own (it fires due
reminders), reached through the gateway, and Debian's Chromium driven by Playwright.

Used by the browser tests' fixtures (``conftest.py``) and by ``make screenshots``
(``screenshots.py``). Nothing is downloaded: Playwright drives the machine's ``chromium``
(``CHROMIUM`` names another binary), and axe-core comes inside ``axe-playwright-python``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet
from playwright.async_api import Browser, Page, Playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.embedded_pg import EmbeddedPostgres
from shared.migrate import available_services
from shared.migrations import upgrade
from tests.e2e.stack import Stack
from tests.support.redis import redis_server

# Started together, each waited for (the gateway is ready once it holds auth's keys).
SERVICES = ("auth", "todo", "chat", "web", "gateway")
# Then the todo worker, on a redis-server of the site's own: the reminder scheduler.
WORKERS = ("todo-worker",)
# Five Python processes importing at once on a busy shared machine: generous.
STARTUP_TIMEOUT = 180.0

# Every page waits at most this long for an element or a navigation (ms).
ACTION_TIMEOUT_MS = 10_000


@contextmanager
def running_site(database_url: str, workdir: Path) -> Iterator[Stack]:
    """The whole platform on free loopback ports; ``stack.url("gateway")`` is the site."""
    web = {
        "WEB_SESSION_KEYS": Fernet.generate_key().decode(),
        # Plain HTTP on loopback: a Secure cookie would never be sent back.
        "WEB_SECURE_COOKIES": "false",
        # Every test signs up or in from the same address.
        "WEB_AUTH_POST_LIMIT": "10000",
    }
    with redis_server(workdir) as redis_url:
        # The todo worker fires due reminders (and publishes the outbox to this Redis).
        worker = {"EVENTS_REDIS_URL": redis_url, "TODO_REMINDERS_POLL_SECONDS": "0.5"}
        stack = Stack(
            database_url,
            workdir,
            env={"web": web, "todo-worker": worker},
            startup_timeout=STARTUP_TIMEOUT,
        )
        try:
            stack.start(*SERVICES)
            stack.start(*WORKERS)
            yield stack
        finally:
            stack.close()
        stack.assert_no_errors()  # their shutdown included


@contextmanager
def fresh_database() -> Iterator[str]:
    """An embedded PostgreSQL in a throw-away directory, every service migrated (for
    ``make screenshots``; the tests use the session's ``migrated_url``)."""
    with tempfile.TemporaryDirectory(prefix="todo-platform-browser-pg-") as directory:
        server = EmbeddedPostgres(Path(directory) / "pgdata")
        try:
            url = server.start()
            for service in available_services():
                upgrade(service, url)
            yield url
        finally:
            server.stop()


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError(
            f"no Chromium at {path}: `apt-get install -y chromium` (or set CHROMIUM)"
        )
    return path


async def launch(playwright: Playwright) -> Browser:
    """Headless Chromium; its sandbox needs a non-root user, so as root it runs without."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return await playwright.chromium.launch(executable_path=chromium_path(), args=args)


async def first_contentful_paint(page: Page, *, timeout_ms: float = 5_000) -> float | None:
    """The page's first contentful paint in ms after navigation start, once the browser has
    recorded it (its timing entry comes a frame or so after the paint); None if it never
    does within ``timeout_ms``."""
    entries = "performance.getEntriesByName('first-contentful-paint')"
    try:
        await page.wait_for_function(f"() => {entries}.length > 0", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return None
    value = await page.evaluate(f"() => {entries}[0].startTime")
    return float(value)
