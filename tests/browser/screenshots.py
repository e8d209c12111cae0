"""``make screenshots``: the sign-in, tasks, chat and overview pages at desktop (1440 px)
and phone (375 px) width, written to ``docs/screenshots/<page>-<width>.png``.

The whole platform runs as in the browser tests (``site.py``) against its own throw-away
PostgreSQL; a user with a few tasks and one chat exchange is made through the public API,
then signed in through the sign-in form, so the pages show what a person would see.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
import uuid
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright, expect

from tests.browser.flows import PASSWORD, sign_in
from tests.browser.site import ACTION_TIMEOUT_MS, fresh_database, launch, running_site

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTHS = {"desktop": 1440, "phone": 375}
HEIGHT = {"desktop": 900, "phone": 812}
PAGES = {"tasks": "/tasks", "overview": "/overview"}

TASKS = (
    {"title": "Renew passport", "priority": "high", "tags": ["admin"], "days": -1},
    {"title": "Book dentist appointment", "priority": "medium", "tags": ["health"], "days": 0},
    {"title": "Plan team offsite", "priority": "medium", "tags": ["work"], "days": 3},
    {"title": "Water the plants", "priority": "low", "tags": ["home"], "days": 1},
    {"title": "Read the quarterly report", "priority": "low", "tags": ["work"], "days": None},
)


def seed(gateway: str) -> str:
    """A user with tasks (one done) and one conversation, made through the API; its email."""
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    now = datetime.datetime.now(datetime.UTC).replace(hour=17, minute=0, second=0)
    with httpx.Client(base_url=gateway, timeout=30) as api:
        api.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Ada", "timezone": "UTC"},
        ).raise_for_status()
        login = api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        ids = []
        for task in TASKS:
            due = None if task["days"] is None else now + datetime.timedelta(days=task["days"])
            created = api.post(
                "/api/tasks",
                json={
                    "title": task["title"],
                    "priority": task["priority"],
                    "tags": task["tags"],
                    "due_at": due.isoformat() if due else None,
                },
            )
            created.raise_for_status()
            ids.append(created.json()["id"])
        api.patch(f"/api/tasks/{ids[-1]}/complete", json={"completed": True}).raise_for_status()
        turn: dict[str, object] = {"timezone": "UTC"}
        for message in ("add call the plumber friday #home", "what is due this week?"):
            answer = api.post("/api/chat", json={**turn, "message": message})
            answer.raise_for_status()
            turn["conversation_id"] = answer.json()["conversation_id"]
    return email


async def shoot(page: Page, name: str, kind: str) -> None:
    await page.wait_for_load_state("networkidle")
    path = OUT / f"{name}-{WIDTHS[kind]}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(OUT.parents[1])}")


async def shoot_pages(gateway: str, email: str) -> None:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            for kind, width in WIDTHS.items():
                context = await browser.new_context(
                    base_url=gateway,
                    viewport={"width": width, "height": HEIGHT[kind]},
                    timezone_id="UTC",
                    locale="en-GB",
                )
                context.set_default_timeout(ACTION_TIMEOUT_MS)
                page = await context.new_page()
                await page.goto("/signin")
                await shoot(page, "signin", kind)
                await sign_in(page, email)
                for name, path in PAGES.items():
                    await page.goto(path)
                    await shoot(page, name, kind)
                await page.goto("/chat")
                await page.get_by_test_id("conversation-link").first.click()
                await expect(page.get_by_test_id("chat-message-assistant")).not_to_have_count(0)
                await shoot(page, "chat", kind)
                await context.close()
        finally:
            await browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # Migrations run their own event loop: the stack is made before the browser's.
    with (
        fresh_database() as database_url,
        tempfile.TemporaryDirectory(prefix="todo-platform-screenshots-") as workdir,
        running_site(database_url, Path(workdir)) as stack,
    ):
        gateway = stack.url("gateway")
        asyncio.run(shoot_pages(gateway, seed(gateway)))


if __name__ == "__main__":
    main()
