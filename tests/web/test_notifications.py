"""The notification area against the real platform: the bell's count on every page, the
notifications page, "Mark read" and "Snooze 10 min" (forms and fetches), and the live
stream this service relays from ``GET /api/notifications/stream``.

Reminders fall due through the todo worker's own scheduler round (``fire_due``) on the test
database, as the worker runs it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from scripts.processes import free_port
from shared.clock import utcnow
from tests.support.errors import assert_error
from tests.support.serving import live_server
from tests.web.conftest import (
    Platform,
    WebAppFactory,
    api_create,
    api_token,
    count,
    csrf_of,
    page_csrf,
    problem_of,
    register,
    shown_again,
    sign_in,
)
from todo_service.scheduler import fire_due
from web_service.crypto import TokenBox

# Every wait on a stream is bounded.
WAIT = 15.0


async def remind(platform: Platform, title: str, email: str = "ann@example.com") -> int:
    """A task of ``email`` whose reminder falls due now; the scheduler's round fires it.
    Returns the new notification's id."""
    token = (await api_token(platform, email))["access_token"]
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    due = (utcnow() + timedelta(days=1)).replace(microsecond=0).isoformat()
    task = await api_create(platform, token, title=title, due_at=due, reminders=[{"at": past}])
    assert await fire_due(platform.db, now=utcnow(), batch=100) == 1
    row = await platform.db.fetch_row(
        "SELECT id FROM todo.notifications WHERE task_id = $1 ORDER BY id DESC LIMIT 1",
        task["id"],
    )
    assert row is not None
    return int(row[0])


async def read_at(platform: Platform, notification_id: int) -> Any:
    row = await platform.db.fetch_row(
        "SELECT read_at FROM todo.notifications WHERE id = $1", notification_id
    )
    assert row is not None
    return row[0]


def unread_count(html: str) -> str | None:
    """The bell's number, or None when it is hidden."""
    match = re.search(
        r'<span class="bell-count"[^>]*data-testid="unread-count"( hidden)?>(\d+)<', html
    )
    assert match is not None, "no bell in the page"
    return None if match.group(1) else match.group(2)


PAGE = {"Accept": "text/html,application/xhtml+xml"}


# --- the bell and the page ---------------------------------------------------------------


async def test_the_bell_counts_unread_notifications_on_every_page(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    page = await ann.get("/tasks", headers=PAGE)
    assert unread_count(page.text) is None
    assert 'data-stream="/notifications/stream"' in page.text
    first = await remind(clean, "Call the dentist")
    newest = await remind(clean, "Water the plants")
    for path in ("/tasks", "/overview", "/chat", "/account", "/notifications"):
        shown = await ann.get(path, headers=PAGE)
        assert shown.status_code == 200, path
        assert unread_count(shown.text) == "2", path
    # Without a browser's Accept (no prefetch) the count is the same.
    assert unread_count((await ann.get("/tasks")).text) == "2"
    # The live stream starts after the newest one the page was rendered with.
    assert f'data-stream="/notifications/stream?after={newest}"' in shown.text
    await ann.post(f"/notifications/{first}/read", data={"csrf_token": csrf_of(shown.text)})
    assert unread_count((await ann.get("/tasks", headers=PAGE)).text) == "1"


async def test_the_page_lists_notifications_newest_first_with_their_task(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    older = await remind(clean, "Call the <b>dentist</b>")
    newer = await remind(clean, "Water the plants")
    page = await ann.get("/notifications")
    assert page.status_code == 200
    assert page.text.index(f'id="notification-{newer}"') < page.text.index(
        f'id="notification-{older}"'
    )
    assert "Call the &lt;b&gt;dentist&lt;/b&gt;" in page.text
    assert "<b>dentist" not in page.text
    task = await clean.db.fetch_row("SELECT task_id FROM todo.notifications WHERE id = $1", older)
    assert task is not None
    assert f'href="/tasks/{task[0]}/edit" data-testid="notification-task"' in page.text
    assert page.text.count('data-testid="notification-read"') == 2
    assert page.text.count('data-testid="notification-snooze"') == 2
    assert "Due " in page.text
    assert '<span data-testid="notifications-total">2</span>' in page.text


async def test_the_unread_tab_and_older_pages(clean: Platform, make_web_app: WebAppFactory) -> None:
    from tests.support.serving import serve

    await register(clean, "ann@example.com")
    ids = [await remind(clean, f"Reminder {n}") for n in range(3)]
    async with serve(make_web_app(notifications_page_size=2)) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(client)
        csrf = await page_csrf(client, "/notifications")
        await client.post(f"/notifications/{ids[2]}/read", data={"csrf_token": csrf})
        first = await client.get("/notifications")
        assert re.findall(r'id="notification-(\d+)"', first.text) == [str(ids[2]), str(ids[1])]
        more = re.search(r'href="([^"]+)" data-testid="notifications-more"', first.text)
        assert more is not None
        second = await client.get(more.group(1).replace("&amp;", "&"))
        assert re.findall(r'id="notification-(\d+)"', second.text) == [str(ids[0])]
        assert 'data-testid="notifications-more"' not in second.text
        unread = await client.get("/notifications?show=unread")
        assert re.findall(r'id="notification-(\d+)"', unread.text) == [str(ids[1]), str(ids[0])]
        assert 'aria-current="page" data-testid="notifications-tab-unread"' in unread.text
        # A cursor the API refuses starts the list again.
        bad = await client.get("/notifications?cursor=not-a-cursor")
        assert bad.status_code == 303
        assert bad.headers["location"] == "/notifications"


async def test_an_empty_list_says_so(ann: httpx.AsyncClient) -> None:
    page = await ann.get("/notifications")
    assert 'data-testid="notifications-empty"' in page.text


async def test_mark_read_as_a_form(clean: Platform, ann: httpx.AsyncClient) -> None:
    notification = await remind(clean, "Call the dentist")
    csrf = await page_csrf(ann, "/notifications")
    answer = await ann.post(f"/notifications/{notification}/read", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/notifications?notice=notification_read"
    assert await read_at(clean, notification) is not None
    page = await ann.get(answer.headers["location"])
    assert "Notification marked read." in page.text
    assert 'data-testid="notification-read"' not in page.text  # read: no "Mark read" button
    # Again: idempotent.
    again = await ann.post(f"/notifications/{notification}/read", data={"csrf_token": csrf})
    assert again.status_code == 303


async def test_an_action_leads_back_to_the_notifications_as_they_were_shown(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """Mark read, Snooze and their refusals go back to the tab (and the page of it) the form
    was sent from, without that page's last note."""
    notification = await remind(clean, "Call the dentist")
    csrf = await page_csrf(ann, "/notifications")
    shown = "http://testserver/notifications?show=unread&notice=notification_read"
    refused = await ann.post(
        f"/notifications/{notification}/snooze",
        data={"csrf_token": csrf, "minutes": "0"},
        headers={"Referer": shown},
    )
    assert refused.headers["location"].startswith("/notifications?show=unread&form=")
    missing = await ann.post(
        "/notifications/abc/read", data={"csrf_token": csrf}, headers={"Referer": shown}
    )
    assert missing.headers["location"].startswith("/notifications?show=unread&form=")
    read = await ann.post(
        f"/notifications/{notification}/read", data={"csrf_token": csrf}, headers={"Referer": shown}
    )
    assert read.headers["location"] == "/notifications?show=unread&notice=notification_read"
    elsewhere = await ann.post(
        f"/notifications/{notification}/read",
        data={"csrf_token": csrf},
        headers={"Referer": "http://testserver/tasks?q=x"},
    )
    assert elsewhere.headers["location"] == "/notifications?notice=notification_read"


async def test_mark_read_as_a_fetch_answers_the_item_and_the_count(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    first = await remind(clean, "Call the dentist")
    await remind(clean, "Water the plants")
    csrf = await page_csrf(ann, "/notifications")
    answer = await ann.post(
        f"/notifications/{first}/read",
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == first
    assert body["read"] is True
    assert body["unread"] == 1
    assert f'id="notification-{first}"' in body["html"]
    assert 'data-testid="notification-read"' not in body["html"]


async def test_snooze_reads_it_and_reminds_again_later(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    notification = await remind(clean, "Call the dentist")
    csrf = await page_csrf(ann, "/notifications")
    before = utcnow()
    answer = await ann.post(
        f"/notifications/{notification}/snooze", data={"csrf_token": csrf, "minutes": "10"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/notifications?notice=notification_snoozed")
    assert await read_at(clean, notification) is not None
    # Nothing more now; in ten minutes the scheduler fires it again.
    assert await fire_due(clean.db, now=before + timedelta(minutes=9), batch=100) == 0
    assert await fire_due(clean.db, now=before + timedelta(minutes=11), batch=100) == 1
    assert await count(clean, "SELECT count(*) FROM todo.notifications") == 2


async def test_a_snooze_says_when_the_reminder_comes_back(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The API answers the notification read, without the snooze: the instant is ten minutes
    after its answer, said in the person's zone (UTC here) by the note and by the item."""
    first = await remind(clean, "Call the dentist")
    second = await remind(clean, "Water the plants")
    csrf = await page_csrf(ann, "/notifications")

    def told(text: str, before: datetime, after: datetime) -> bool:
        return any(
            f"until {moment:%H:%M}" in text
            for moment in (before + timedelta(minutes=10), after + timedelta(minutes=10))
        )

    before = utcnow()
    answer = await ann.post(
        f"/notifications/{first}/snooze",
        data={"minutes": "10"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    after = utcnow()
    body = answer.json()
    assert re.fullmatch(r"Snoozed until \d\d:\d\d\.", body["notice"])
    assert told(body["notice"], before, after)
    assert 'data-testid="notification-snoozed">Snoozed until ' in body["html"]
    assert told(body["html"], before, after)
    # Without JavaScript the note after the redirect says it.
    before = utcnow()
    form = await ann.post(
        f"/notifications/{second}/snooze", data={"csrf_token": csrf, "minutes": "10"}
    )
    after = utcnow()
    assert form.headers["location"].startswith("/notifications?notice=notification_snoozed&at=")
    page = await ann.get(form.headers["location"])
    note = re.search(r'data-testid="notice">([^<]*)<', page.text)
    assert note is not None
    assert told(note.group(1), before, after)
    # Mark read says what it did, as the page would.
    read = await ann.post(
        f"/notifications/{second}/read",
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert read.json()["notice"] == "Notification marked read."


@pytest.mark.parametrize(
    "minutes", ["0", "1441", "-5", "ten", "1e3", "99999", "", "\u00b2", "\u0661\u0660"]
)
async def test_snooze_minutes_out_of_range_change_nothing(
    clean: Platform, ann: httpx.AsyncClient, minutes: str
) -> None:
    notification = await remind(clean, "Call the dentist")
    csrf = await page_csrf(ann, "/notifications")
    url = f"/notifications/{notification}/snooze"
    form = await ann.post(url, data={"csrf_token": csrf, "minutes": minutes})
    assert form.headers["location"].startswith("/notifications?form=")
    shown = await shown_again(ann, form)
    assert shown.status_code == 422
    assert "not valid" in problem_of(shown.text)
    fetched = await ann.post(
        url,
        data={"minutes": minutes},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert fetched.status_code == 422
    assert await read_at(clean, notification) is None


async def test_other_users_notification_is_404(clean: Platform, ann: httpx.AsyncClient) -> None:
    await register(clean, "bob@example.com", name="Bob")
    bobs = await remind(clean, "Bob's secret", email="bob@example.com")
    csrf = await page_csrf(ann, "/notifications")
    for action in ("read", "snooze"):
        posted = await ann.post(f"/notifications/{bobs}/{action}", data={"csrf_token": csrf})
        page = await shown_again(ann, posted)
        assert page.status_code == 404
        assert "That notification no longer exists." in problem_of(page.text)
        fetched = await ann.post(
            f"/notifications/{bobs}/{action}",
            headers={"Accept": "application/json", "X-CSRF-Token": csrf},
        )
        assert fetched.status_code == 404
        assert fetched.json()["code"] == "not_found"
    assert await read_at(clean, bobs) is None
    assert "Bob&#39;s secret" not in (await ann.get("/notifications")).text
    assert await count(clean, "SELECT count(*) FROM todo.notifications") == 1


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "01", str(2**63), "1" * 30])
async def test_malformed_ids_are_404(clean: Platform, ann: httpx.AsyncClient, raw: str) -> None:
    notification = await remind(clean, "Call the dentist")
    csrf = await page_csrf(ann, "/notifications")
    answer = await ann.post(f"/notifications/{raw}/read", data={"csrf_token": csrf})
    assert answer.headers["location"].startswith("/notifications?form=")
    assert (await shown_again(ann, answer)).status_code == 404
    assert await read_at(clean, notification) is None


async def test_actions_need_the_csrf_token_and_this_site(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    notification = await remind(clean, "Call the dentist")
    url = f"/notifications/{notification}/read"
    assert (await ann.post(url, data={})).status_code == 403
    assert (await ann.post(url, data={"csrf_token": "x" * 43})).status_code == 403
    csrf = await page_csrf(ann, "/notifications")
    cross = await ann.post(url, data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    snooze = await ann.post(f"/notifications/{notification}/snooze", data={"minutes": "10"})
    assert snooze.status_code == 403
    assert await read_at(clean, notification) is None
    assert (await ann.get(url)).status_code == 405  # nothing changes on GET
    assert await read_at(clean, notification) is None


async def test_the_pages_need_a_session(clean: Platform, browser: httpx.AsyncClient) -> None:
    page = await browser.get("/notifications")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Fnotifications"


# --- the live stream ---------------------------------------------------------------------


@dataclass
class Received:
    event: str
    data: Any
    id: str | None


class Stream:
    """An open ``/notifications/stream``, read event by event (comments and ``retry``
    lines kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.retries: list[int] = []
        self.comments = 0

    async def next(self) -> Received | None:
        """The next event, or None when the stream has ended."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(WAIT):
            async for line in self.lines:
                if not line:
                    if "data" in fields:
                        return Received(
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                            fields.get("id"),
                        )
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(": ")
                if name == "retry":
                    self.retries.append(int(value))
                else:
                    fields[name] = value
        return None

    async def until(self, event: str) -> Received:
        while True:
            received = await self.next()
            assert received is not None, f"the stream ended before a {event} event"
            if received.event == event:
                return received


@dataclass
class LiveWeb:
    url: str
    make: Any

    @asynccontextmanager
    async def browser(self, email: str = "ann@example.com") -> AsyncIterator[httpx.AsyncClient]:
        """A signed-in browser of the live web service."""
        async with httpx.AsyncClient(base_url=self.url, timeout=WAIT) as client:
            client.headers["Sec-Fetch-Site"] = "same-origin"
            await sign_in(client, email)
            yield client


@asynccontextmanager
async def live_web(make_web_app: WebAppFactory, **settings: Any) -> AsyncIterator[LiveWeb]:
    """The web service under uvicorn (a stream needs a real socket)."""
    values = {"notification_stream_check_seconds": 0.2, **settings}
    async with live_server(make_web_app(**values)) as url:
        yield LiveWeb(url, make_web_app)


@asynccontextmanager
async def opened(
    client: httpx.AsyncClient, path: str = "/notifications/stream", **headers: str
) -> AsyncIterator[Stream]:
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        yield Stream(response)


async def test_a_reminder_that_falls_due_is_relayed_live(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann, opened(ann) as stream:
        assert (await stream.until("unread")).data == {"count": 0}
        notification = await remind(clean, "Call the <b>dentist</b>")
        received = await stream.until("notification")
        assert received.id == str(notification)
        data = received.data
        assert data["id"] == notification
        assert data["read"] is False
        assert data["title"] == "Call the <b>dentist</b>"  # text for the desktop notification
        assert data["body"].startswith("Due ")
        assert re.fullmatch(r"/tasks/\d+/edit", data["url"])
        assert f'id="notification-{notification}"' in data["html"]
        assert "&lt;b&gt;dentist" in data["html"]
        assert "<b>" not in data["html"]
        assert (await stream.until("unread")).data == {"count": 1}
        assert stream.retries
        assert stream.retries[0] > 0


async def test_the_stream_is_the_users_own(clean: Platform, make_web_app: WebAppFactory) -> None:
    await register(clean, "ann@example.com")
    await register(clean, "bob@example.com", name="Bob")
    async with (
        live_web(make_web_app) as web,
        web.browser() as ann,
        web.browser("bob@example.com") as bob,
        opened(ann) as ann_stream,
        opened(bob) as bob_stream,
    ):
        await ann_stream.until("unread")
        await bob_stream.until("unread")
        bobs = await remind(clean, "Bob's secret", email="bob@example.com")
        assert (await bob_stream.until("notification")).data["id"] == bobs
        anns = await remind(clean, "Ann's own")
        # Ann's first notification is her own: Bob's never reached her stream.
        received = await ann_stream.until("notification")
        assert received.data["id"] == anns
        assert received.data["title"] == "Ann's own"


async def test_the_stream_resumes_after_the_last_event_id(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    first, second, third = [await remind(clean, f"Reminder {n}") for n in range(3)]
    async with live_web(make_web_app) as web, web.browser() as ann:
        async with opened(ann, **{"Last-Event-ID": str(first)}) as stream:
            got = [(await stream.until("notification")).data["id"] for _ in range(2)]
            assert got == [second, third]
        # The page's own starting point, when the browser has no Last-Event-ID yet.
        async with opened(ann, f"/notifications/stream?after={second}") as stream:
            assert (await stream.until("notification")).data["id"] == third
        # Last-Event-ID wins over the page's, and a malformed one is not passed on.
        headers = {"Last-Event-ID": str(second)}
        async with opened(ann, f"/notifications/stream?after={first}", **headers) as stream:
            assert (await stream.until("notification")).data["id"] == third
        async with opened(ann, **{"Last-Event-ID": "1; DROP"}) as stream:
            assert (await stream.until("unread")).data == {"count": 3}
            fourth = await remind(clean, "Reminder 4")
            assert (await stream.until("notification")).data["id"] == fourth


async def test_no_stream_without_a_session(clean: Platform, make_web_app: WebAppFactory) -> None:
    async with live_web(make_web_app) as web, httpx.AsyncClient(base_url=web.url) as anonymous:
        answer = await anonymous.get("/notifications/stream")
        assert_error(answer, 401, "signed_out")
        forged = await anonymous.get(
            "/notifications/stream", headers={"Cookie": "session=" + "A" * 43}
        )
        assert forged.status_code == 401


async def test_a_stream_from_another_site_is_refused(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann:
        answer = await ann.get("/notifications/stream", headers={"Sec-Fetch-Site": "cross-site"})
        assert answer.status_code == 403


async def test_the_stream_ends_when_the_session_does(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann, opened(ann) as stream:
        await stream.until("unread")
        csrf = await page_csrf(ann, "/account")
        assert (await ann.post("/signout", data={"csrf_token": csrf})).status_code == 303
        assert (await stream.until("signed_out")).data["message"]
        assert await stream.next() is None  # ended


async def test_the_stream_lasts_a_bounded_time(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app, notification_stream_seconds=1) as web, web.browser() as ann:
        started = asyncio.get_running_loop().time()
        async with opened(ann) as stream:
            await stream.until("unread")
            assert await stream.next() is None
        assert asyncio.get_running_loop().time() - started < 5
        # The browser reconnects after the retry it was told.
        assert stream.retries[-1] == 2000


async def test_a_users_streams_are_bounded(clean: Platform, make_web_app: WebAppFactory) -> None:
    await register(clean, "ann@example.com")
    async with (
        live_web(make_web_app, notification_streams_per_user=1) as web,
        web.browser() as ann,
    ):
        async with opened(ann) as first:
            await first.until("unread")
            async with opened(ann) as second:
                refused = await second.next()
                assert refused is not None
                assert (refused.event, refused.data) == ("unavailable", {"reason": "busy"})
                assert second.retries == [30000]  # the browser tries again later
                assert await second.next() is None
        # The slot is given back when a stream ends.
        async with opened(ann) as third:
            assert (await third.until("unread")).data == {"count": 0}


async def test_a_stream_refreshes_an_expiring_token_first(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann:
        await clean.db.fetch_row(
            "UPDATE web.sessions SET access_expires_at = $1", utcnow() - timedelta(minutes=1)
        )
        async with opened(ann) as stream:
            assert (await stream.until("unread")).data == {"count": 0}
            assert "set-cookie" in stream.response.headers  # the session's end moved
        row = await clean.db.fetch_row("SELECT access_expires_at FROM web.sessions")
        assert row is not None
        assert row[0] > utcnow()


async def test_a_token_the_api_refuses_ends_the_session_and_its_stream(
    clean: Platform, make_web_app: WebAppFactory, box: TokenBox
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann:
        # A token the API cannot verify, still far from its expiry here.
        await clean.db.fetch_row(
            "UPDATE web.sessions SET access_token = $1", box.seal("not.a.token")
        )
        async with opened(ann) as stream:
            assert (await stream.until("signed_out")).data["message"]
            assert await stream.next() is None
        assert await count(clean, "SELECT count(*) FROM web.sessions") == 0
        assert (await ann.get("/notifications/stream")).status_code == 401


async def test_an_unreachable_api_asks_the_browser_to_come_back_later(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    async with live_web(make_web_app) as web, web.browser() as ann:
        cookies = dict(ann.cookies)
    # Another replica of the web service, whose gateway is down: the same session.
    dead = {"gateway_url": f"http://127.0.0.1:{free_port()}", "gateway_connect_timeout": 1.0}
    async with (
        live_web(make_web_app, **dead) as other,
        httpx.AsyncClient(base_url=other.url, cookies=cookies, timeout=WAIT) as ann,
        opened(ann, **{"Sec-Fetch-Site": "same-origin"}) as stream,
    ):
        refused = await stream.next()
        assert refused is not None
        assert (refused.event, refused.data) == ("unavailable", {"reason": "unavailable"})
        assert stream.retries == [30000]
        assert await stream.next() is None
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 1  # not ended
