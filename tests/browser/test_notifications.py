"""The notification area in Chromium against the whole platform, the todo worker firing
reminders: a reminder that falls due while the tasks page is open appears without a reload
(the bell's count, the panel, a desktop notification when the person turned them on), is
marked read in place, and the notifications page works without JavaScript. Then account
deletion from the account page. axe scans each new page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect

from tests.browser.accessibility import AXE_OPTIONS, blocking
from tests.browser.conftest import NewContext
from tests.browser.flows import PASSWORD, at, sign_up
from tests.e2e.stack import Stack

# The reminder is set this far ahead of the page being open; the worker fires it within a
# second of its time and the stream passes it on within another.
LEAD = timedelta(seconds=3)
# How long the page may take to show it: the lead, the scheduler's and the stream's polls,
# and a loaded shared machine.
SHOWN_WITHIN_MS = 20_000
PARIS = ZoneInfo("Europe/Paris")

# Records each desktop notification the page makes (Chromium's own still runs).
RECORD_NOTIFICATIONS = """
(() => {
  const Original = window.Notification;
  if (!Original) return;
  window.__notifications = [];
  class Recorded extends Original {
    constructor(title, options) {
      super(title, options);
      const { body, tag } = options || {};
      window.__notifications.push({ title, body, tag });
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Original.permission });
  Recorded.requestPermission = (...args) => Original.requestPermission(...args);
  window.Notification = Recorded;
})();
"""


async def remind_soon(
    site: Stack, email: str, title: str, *, lead: timedelta = LEAD, password: str = PASSWORD
) -> None:
    """A task of ``email`` (made through the API, as another device would) whose reminder
    falls due ``lead`` from now."""
    async with httpx.AsyncClient(base_url=site.url("gateway"), timeout=30) as api:
        login = await api.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        now = datetime.now(UTC)
        created = await api.post(
            "/api/tasks",
            json={
                "title": title,
                "due_at": (now + timedelta(hours=2)).isoformat(),
                "reminders": [{"at": (now + lead).isoformat()}],
            },
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert created.status_code == 201, created.text


def comes_back(before: datetime, after: datetime, words: str) -> re.Pattern[str]:
    """``words`` with the time ten minutes after a snooze sent between ``before`` and
    ``after`` ("14:01")."""
    times = {f"{moment + timedelta(minutes=10):%H:%M}" for moment in (before, after)}
    return re.compile("^" + re.escape(words).replace(r"\{\}", f"({'|'.join(times)})") + "$")


async def assert_accessible(page: Page, axe: Axe, name: str) -> None:
    results = await axe.run(page, options=AXE_OPTIONS)
    problems = blocking(results.response["violations"])
    assert not problems, f"{name}: " + "\n".join(problems)


async def test_a_reminder_that_falls_due_appears_without_a_reload(
    new_context: NewContext, site: Stack, axe: Axe
) -> None:
    context = await new_context()
    await context.grant_permissions(["notifications"])
    await context.add_init_script(RECORD_NOTIFICATIONS)
    page = await context.new_page()
    email = await sign_up(page)

    # Desktop notifications on, from the notifications page.
    await page.get_by_test_id("nav-notifications").click()
    await expect(page).to_have_url(at("/notifications"))
    await expect(page.get_by_test_id("notifications-empty")).to_be_visible()
    toggle = page.get_by_test_id("desktop-toggle")
    await expect(toggle).to_have_text("Enable desktop notifications")
    await toggle.click()
    await expect(page.get_by_test_id("desktop-status")).to_contain_text("on")
    await expect(toggle).to_have_text("Turn off desktop notifications")
    await assert_accessible(page, axe, "/notifications, empty")

    await page.get_by_test_id("nav-tasks").click()
    await expect(page).to_have_url(at("/tasks"))
    bell = page.get_by_test_id("nav-notifications")
    count = page.get_by_test_id("unread-count")
    await expect(count).to_be_hidden()
    loaded = await page.evaluate("() => performance.timeOrigin")

    await remind_soon(site, email, "Call the dentist")
    panel = page.get_by_test_id("notification-panel")
    item = panel.get_by_test_id("notification")
    await expect(item).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await expect(item.get_by_test_id("notification-task")).to_have_text("Call the dentist")
    await expect(item).to_contain_text("Due ")
    await expect(count).to_have_text("1")
    await expect(bell).to_have_accessible_name("Notifications 1 unread")
    await expect(page.get_by_test_id("notification-status")).to_have_text(
        "New reminder: Call the dentist"
    )
    # The same page: no reload happened.
    assert await page.evaluate("() => performance.timeOrigin") == loaded
    shown: list[dict[str, Any]] = await page.evaluate("() => window.__notifications")
    assert [(n["title"], n["body"].startswith("Due ")) for n in shown] == [
        ("Call the dentist", True)
    ]
    await assert_accessible(page, axe, "/tasks with a new reminder")

    # Marked read in place: the panel empties, the count goes, focus lands on the bell.
    await item.get_by_test_id("notification-read").click()
    await expect(item).to_have_count(0)
    await expect(panel).to_be_hidden()
    await expect(count).to_be_hidden()
    await expect(bell).to_be_focused()
    assert await page.evaluate("() => performance.timeOrigin") == loaded

    await bell.click()
    listed = page.get_by_test_id("notification-list").get_by_test_id("notification")
    await expect(listed).to_have_count(1)
    await expect(listed.get_by_test_id("notification-read")).to_have_count(0)
    await assert_accessible(page, axe, "/notifications")


# Counts the ``signed_out`` events the page's notification stream hears.
RECORD_SIGNED_OUT = """
(() => {
  const Original = window.EventSource;
  window.__signedOut = 0;
  window.EventSource = class extends Original {
    constructor(...args) {
      super(...args);
      this.addEventListener("signed_out", () => (window.__signedOut += 1));
    }
  };
})();
"""


async def test_another_tab_keeps_hearing_reminders_after_a_password_change(
    new_context: NewContext, site: Stack
) -> None:
    """The password change gives the browser a new session id, which ends the old id's
    stream in the other tab; that tab's stream comes back on the new one by itself."""
    context = await new_context()
    await context.add_init_script(RECORD_SIGNED_OUT)
    account = await context.new_page()
    email = await sign_up(account)
    tasks = await context.new_page()
    await tasks.goto("/tasks")
    await expect(tasks.get_by_test_id("nav-notifications")).to_be_visible()

    await account.get_by_test_id("nav-account").click()
    await account.locator("#current_password").fill(PASSWORD)
    await account.locator("#new_password").fill("a brand new passphrase")
    await account.get_by_test_id("password-submit").click()
    await expect(account.get_by_test_id("notice")).to_be_visible()
    await expect(account).to_have_url(at("/account"))

    # The other tab's stream hears that its session (the old id) has ended...
    await tasks.wait_for_function("() => window.__signedOut > 0", timeout=30_000)
    # ...and a reminder due after that still reaches it, without a reload.
    loaded = await tasks.evaluate("() => performance.timeOrigin")
    await remind_soon(site, email, "Water the plants", password="a brand new passphrase")
    item = tasks.get_by_test_id("notification-panel").get_by_test_id("notification")
    await expect(item).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await expect(tasks.get_by_test_id("unread-count")).to_have_text("1")
    assert await tasks.evaluate("() => performance.timeOrigin") == loaded


async def test_a_reminder_snoozed_without_javascript(new_context: NewContext, site: Stack) -> None:
    page = await (await new_context(java_script_enabled=False)).new_page()
    email = await sign_up(page, timezone="Europe/Paris")
    await remind_soon(site, email, "Water the plants", lead=timedelta(seconds=0))
    # No stream without JavaScript: the page shows it once it has fallen due.
    items = page.get_by_test_id("notification-list").get_by_test_id("notification")
    for _ in range(40):
        await page.goto("/notifications")
        if await items.count():
            break
        await page.wait_for_timeout(500)
    await expect(items).to_have_count(1)
    await expect(page.get_by_test_id("unread-count")).to_have_text("1")
    before = datetime.now(PARIS)
    await items.get_by_test_id("notification-snooze").click()
    await expect(page).to_have_url(at("/notifications"))
    await expect(page.get_by_test_id("notice")).to_have_text(
        comes_back(before, datetime.now(PARIS), "Snoozed until {}.")
    )
    await expect(page.get_by_test_id("unread-count")).to_be_hidden()
    await expect(items.get_by_test_id("notification-read")).to_have_count(0)


async def test_a_snoozed_reminder_says_when_it_comes_back(
    new_context: NewContext, site: Stack
) -> None:
    """The status says when, in the person's zone, and the item shows it, where before only
    its "Snooze 10 min" was left."""
    page = await (await new_context(timezone_id="Europe/Paris")).new_page()
    email = await sign_up(page)
    await page.goto("/notifications")
    await remind_soon(site, email, "Call the dentist")
    item = page.get_by_test_id("notification-list").get_by_test_id("notification")
    await expect(item).to_be_visible(timeout=SHOWN_WITHIN_MS)
    before = datetime.now(PARIS)
    async with page.expect_response(lambda r: r.url.endswith("/snooze")):
        await item.get_by_test_id("notification-snooze").click()
    after = datetime.now(PARIS)
    await expect(page.get_by_test_id("notification-status")).to_have_text(
        comes_back(before, after, "Snoozed until {}.")
    )
    await expect(item.get_by_test_id("notification-snoozed")).to_have_text(
        comes_back(before, after, "Snoozed until {}")
    )
    await expect(item.get_by_test_id("notification-unread")).to_have_count(0)


async def test_a_reminders_buttons_are_named_with_its_title_and_no_stray_space(
    new_context: NewContext, site: Stack
) -> None:
    """The title followed the visible words in a visually hidden span, which, positioned
    out of the flow, Chromium reads as a block of its own: a space went in before its colon
    ("Mark read : Call the dentist")."""
    page = await (await new_context()).new_page()
    email = await sign_up(page)
    await page.goto("/notifications")
    await remind_soon(site, email, "Call the dentist")
    item = page.get_by_test_id("notification-list").get_by_test_id("notification")
    await expect(item).to_be_visible(timeout=SHOWN_WITHIN_MS)
    for name in ("Mark read: Call the dentist", "Snooze 10 min: Call the dentist"):
        await expect(item.get_by_role("button", name=name, exact=True)).to_be_visible()
    # Rendered by the page itself too, not only by the stream's copy.
    await page.reload()
    for name in ("Mark read: Call the dentist", "Snooze 10 min: Call the dentist"):
        await expect(item.get_by_role("button", name=name, exact=True)).to_be_visible()


async def test_deleting_the_account(new_context: NewContext, axe: Axe) -> None:
    page = await (await new_context()).new_page()
    email = await sign_up(page)
    await page.get_by_test_id("nav-account").click()
    await page.get_by_test_id("delete-account").click()
    await expect(page).to_have_url(at("/account/delete"))
    form = page.get_by_test_id("delete-account-form")
    # A wrong password: the form again, nothing deleted.
    await form.get_by_label("Your password").fill("not the password")
    await form.get_by_label("I understand").check()
    await page.get_by_test_id("delete-account-submit").click()
    await expect(page.get_by_test_id("error-summary")).to_contain_text("not right")
    await expect(form.get_by_label("Your password")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, axe, "/account/delete with a wrong password")
    # Only the password is typed again: the box stays ticked.
    await expect(form.get_by_label("Your password")).to_have_value("")
    await expect(form.get_by_label("I understand")).to_be_checked()

    await form.get_by_label("Your password").fill(PASSWORD)
    await page.get_by_test_id("delete-account-submit").click()
    await expect(page).to_have_url(at("/signin"))
    await expect(page.get_by_test_id("notice")).to_have_text(
        "Your account and everything in it have been deleted."
    )
    # The account is gone: signing in again is refused.
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_role("alert").first).to_contain_text("not right")


async def test_the_new_reminders_panel_keeps_the_pages_margins_on_a_phone(
    new_context: NewContext, site: Stack
) -> None:
    """Centred by ``auto`` margins within its greatest width, the panel met both edges of a
    phone's screen, where everything else on the page stands 1 rem off them."""
    page = await (await new_context(viewport={"width": 375, "height": 812})).new_page()
    email = await sign_up(page)
    await remind_soon(site, email, "Call the dentist")
    panel = page.get_by_test_id("notification-panel")
    await expect(panel.get_by_test_id("notification")).to_be_visible(timeout=SHOWN_WITHIN_MS)
    shown = await panel.bounding_box()
    filters = await page.get_by_test_id("filters").bounding_box()
    assert shown is not None
    assert filters is not None
    assert shown["x"] == filters["x"], (shown, filters)
    assert shown["x"] + shown["width"] == filters["x"] + filters["width"], (shown, filters)


async def test_a_reminder_arriving_on_the_notifications_page_is_counted_in_the_singular(
    new_context: NewContext, site: Stack
) -> None:
    """The page's count goes up by one as a reminder arrives: "0 notifications" becomes
    "1 notification", not "1 notifications"."""
    page = await (await new_context()).new_page()
    email = await sign_up(page)
    await page.goto("/notifications")
    count = page.get_by_test_id("notifications-total").locator("..")
    await expect(count).to_have_text("0 notifications")
    await remind_soon(site, email, "Call the dentist")
    listed = page.get_by_test_id("notification-list").get_by_test_id("notification")
    await expect(listed).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    await expect(count).to_have_text("1 notification")


async def test_a_reminder_read_on_the_unread_tab_leaves_the_list_and_the_count(
    new_context: NewContext, site: Stack
) -> None:
    """On the Unread tab, "Mark read" in place left the reminder listed (shown as read) and
    the page still said "1 unread notification" until a reload."""
    page = await (await new_context()).new_page()
    email = await sign_up(page)
    await remind_soon(site, email, "Call the dentist")
    await remind_soon(site, email, "Pay the rent")
    await page.goto("/notifications?show=unread")
    listed = page.get_by_test_id("notification-list").get_by_test_id("notification")
    await expect(listed).to_have_count(2, timeout=SHOWN_WITHIN_MS)
    count = page.get_by_test_id("notifications-total").locator("..")
    await expect(count).to_have_text("2 unread notifications")

    first = listed.first
    await first.get_by_test_id("notification-read").click()
    await expect(listed).to_have_count(1)
    await expect(count).to_have_text("1 unread notification")
    await expect(listed.get_by_test_id("notification-read")).to_be_focused()
    await listed.get_by_test_id("notification-snooze").click()
    await expect(listed).to_have_count(0)
    await expect(count).to_have_text("0 unread notifications")
    await expect(page.get_by_test_id("notifications-tab-all")).to_be_focused()
