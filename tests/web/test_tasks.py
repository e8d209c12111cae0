"""The task pages: list, filters, create, complete, edit with If-Match, delete."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx

from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.web.conftest import (
    Platform,
    WebAppFactory,
    api_create,
    api_task,
    api_token,
    count,
    create_form,
    csrf_of,
    idempotency_key_of,
    page_csrf,
    problem_of,
    register,
    shown_again,
    sign_in,
)
from web_service.tasks import Filters, task_body

ROW = re.compile(r'data-testid="task-title">([^<]*)<')


def titles(html: str) -> list[str]:
    return ROW.findall(html)


async def token_of(platform: Platform) -> str:
    return str((await api_token(platform))["access_token"])


async def test_create_makes_one_task_with_every_field(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    answer = await create_form(
        ann,
        title="Pay rent",
        description="Before the 5th",
        priority="high",
        tags="home, Money",
        due_date="2027-03-31",
        due_time="17:30",
        recurrence="monthly",
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/tasks?notice=created"
    row = await clean.db.fetch_row(
        "SELECT title, description, priority, tags, due_at, recurrence FROM todo.tasks"
    )
    assert row is not None
    assert row[0:3] == ("Pay rent", "Before the 5th", "high")
    assert list(row[3]) == ["home", "money"]
    assert row[4] == datetime(2027, 3, 31, 17, 30, tzinfo=UTC)  # the user's zone: UTC
    assert row[5] == "monthly"
    page = await ann.get("/tasks?notice=created")
    assert "Task added." in page.text
    assert titles(page.text) == ["Pay rent"]


def reminders_of(task: dict[str, object]) -> list[tuple[object, object]]:
    reminders = task["reminders"]
    assert isinstance(reminders, list)
    return [(r["before_due_minutes"], r["at"]) for r in reminders]


async def test_a_new_task_gets_the_reminders_ticked_in_its_form(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    form = await ann.get("/tasks")
    for text in ("At the due time", "15 minutes before", "1 hour before", "1 day before"):
        assert f"> {text}</label>" in form.text, text
    answer = await create_form(
        ann,
        title="Dentist",
        due_date="2027-03-31",
        due_time="17:30",
        reminders=["before:60", "before:1440", "before:60"],
    )
    assert answer.status_code == 303, answer.text
    row = await clean.db.fetch_row("SELECT id FROM todo.tasks")
    assert row is not None
    task = await api_task(clean, await token_of(clean), row[0])
    assert reminders_of(task) == [(60, None), (1440, None)]
    page = await ann.get("/tasks")
    assert "Reminders: 1 hour before, 1 day before" in page.text


async def test_reminders_the_form_cannot_take_are_named_with_nothing_saved(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    due = {"due_date": "2027-03-31"}
    for fields, message in (
        ({"reminders": ["before:15"]}, "A reminder before the due time needs a due date"),
        ({**due, "reminders": ["soon"]}, "Choose reminders from the list"),
        ({**due, "reminders": ["before:43201"]}, "Choose reminders from the list"),
        ({**due, "reminders": ["before:-5"]}, "Choose reminders from the list"),
        # Digits int() refuses (superscript 3) or reads (Arabic-Indic 15): 500 and 15 before.
        ({**due, "reminders": ["before:\u00b3"]}, "Choose reminders from the list"),
        ({**due, "reminders": ["before:\u0661\u0665"]}, "Choose reminders from the list"),
        ({**due, "reminders": ["at:2027-03-31T09:00"]}, "Choose reminders from the list"),
        ({**due, "reminders": [f"before:{m}" for m in range(6)]}, "At most 5 reminders"),
    ):
        answer = await shown_again(ann, await create_form(ann, title="Dentist", **fields))
        assert answer.status_code == 422, fields
        assert 'id="reminders-error"' in answer.text, fields
        assert message in answer.text, fields
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 0


async def test_an_edit_keeps_the_reminders_set_elsewhere_unless_unticked(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    task = await api_create(
        clean,
        token,
        title="Dentist",
        due_at="2027-01-02T10:00:00Z",
        reminders=[{"before_due_minutes": 30}, {"at": "2027-01-01T09:00:00Z"}],
    )
    form = await ann.get(f"/tasks/{task['id']}/edit")
    ticked = re.findall(r'name="reminders" value="([^"]+)" checked> ([^<]+)</label>', form.text)
    assert [text for _, text in ticked] == ["30 minutes before", "At Fri 01 Jan 2027, 09:00"]
    fields = {
        "csrf_token": csrf_of(form.text),
        "version": "1",
        "title": "Dentist",
        "priority": "medium",
        "recurrence": "none",
        "due_date": "2027-01-02",
        "due_time": "10:00",
    }
    # Everything as it was opened (the instant untouched), then one unticked and one added.
    kept = await ann.post(
        f"/tasks/{task['id']}/edit", data={**fields, "reminders": [v for v, _ in ticked]}
    )
    assert kept.status_code == 303, kept.text
    now = await api_task(clean, token, task["id"])
    assert (reminders_of(now), now["version"]) == (reminders_of(task), 1)
    changed = await ann.post(
        f"/tasks/{task['id']}/edit",
        data={**fields, "reminders": [ticked[1][0], "before:0"]},
    )
    assert changed.status_code == 303, changed.text
    now = await api_task(clean, token, task["id"])
    assert reminders_of(now) == [(None, task["reminders"][1]["at"]), (0, None)]
    # The last reminders unticked: the task has none.
    cleared = await ann.post(
        f"/tasks/{task['id']}/edit", data={**fields, "version": str(now["version"])}
    )
    assert cleared.status_code == 303, cleared.text
    assert reminders_of(await api_task(clean, token, task["id"])) == []


async def test_a_due_date_without_a_time_is_shown_and_edited_as_the_day_alone(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """Due at the end of the day (what the form saves for a date alone): the list and the
    edit form say the day, not "23:59", and saving the form unchanged keeps the instant."""
    assert (await create_form(ann, title="Pay the rent", due_date="2027-01-02")).status_code == 303
    token = await token_of(clean)
    row = await clean.db.fetch_row("SELECT id FROM todo.tasks")
    assert row is not None
    task = await api_task(clean, token, row[0])
    assert task["due_at"] == "2027-01-02T23:59:00.000000Z"
    listed = await ann.get("/tasks")
    assert "Sat 02 Jan 2027<" in listed.text
    assert ", 23:59" not in listed.text
    form = await ann.get(f"/tasks/{task['id']}/edit")
    assert re.search(r'name="due_date"[^>]* value="2027-01-02"', form.text)
    assert re.search(r'name="due_time"[^>]* value=""', form.text)
    saved = await ann.post(
        f"/tasks/{task['id']}/edit",
        data={
            "csrf_token": csrf_of(form.text),
            "version": "1",
            "title": "Pay the rent",
            "priority": "medium",
            "recurrence": "none",
            "due_date": "2027-01-02",
            "due_time": "",
        },
    )
    assert saved.status_code == 303, saved.text
    assert (await api_task(clean, token, task["id"]))["due_at"] == task["due_at"]


async def test_the_same_form_sent_twice_makes_one_task(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    page = await ann.get("/tasks")
    data = {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": idempotency_key_of(page.text),
        "title": "Once",
        "priority": "medium",
        "recurrence": "none",
    }
    assert (await ann.post("/tasks", data=data)).status_code == 303
    assert (await ann.post("/tasks", data=data)).status_code == 303
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1


async def test_the_same_form_sent_again_with_other_values_makes_a_second_task(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """A form sent, then changed and sent again before the page reloads (or, without the
    script, after going back): its key with other values is another task, not the API's
    refusal of a key reused; the changed form sent twice is still one task."""
    page = await ann.get("/tasks")
    data = {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": idempotency_key_of(page.text),
        "title": "First",
        "priority": "medium",
        "recurrence": "none",
    }
    assert (await ann.post("/tasks", data=data)).status_code == 303
    changed = {**data, "title": "Second", "priority": "high"}
    for _ in range(2):
        answer = await ann.post("/tasks", data=changed)
        assert answer.status_code == 303, answer.text
    assert sorted(titles((await ann.get("/tasks")).text)) == ["First", "Second"]


async def test_each_rendered_form_has_its_own_key(ann: httpx.AsyncClient) -> None:
    first, second = await ann.get("/tasks"), await ann.get("/tasks")
    assert idempotency_key_of(first.text) != idempotency_key_of(second.text)


async def test_invalid_fields_are_named_and_kept(clean: Platform, ann: httpx.AsyncClient) -> None:
    answer = await shown_again(
        ann,
        await create_form(
            ann, title="", due_date="2027-02-30", tags="a" * 31, description="kept text"
        ),
    )
    assert answer.status_code == 422
    assert 'id="title-error"' in answer.text
    assert 'id="due_date-error"' in answer.text
    assert 'id="tags-error"' in answer.text
    assert "kept text" in answer.text
    assert 'data-testid="error-summary"' in answer.text
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 0


async def test_a_hash_typed_before_a_tag_is_not_part_of_it(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The list writes a tag as "#work" (and the assistant reads "#work" as the tag work):
    "#work" typed in the form is the tag work, not "#work" shown as "##work"."""
    answer = await create_form(ann, title="Pay rent", tags="#home, # money ,work")
    assert answer.status_code == 303
    row = await clean.db.fetch_row("SELECT tags FROM todo.tasks")
    assert row is not None
    assert list(row[0]) == ["home", "money", "work"]
    page = await ann.get("/tasks")
    assert ">#home<" in page.text
    assert "##" not in page.text
    # The tag filter reads "#home" as home too.
    assert titles((await ann.get("/tasks", params={"tag": "#home"})).text) == ["Pay rent"]


async def test_an_api_refusal_is_a_friendly_message_with_nothing_saved(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    # Text PostgreSQL cannot store: the API's 422, not one of this service's own checks.
    answer = await shown_again(
        ann, await create_form(ann, title="Fine", description="bad \x00 byte")
    )
    assert answer.status_code == 422
    assert "Nothing was changed" in answer.text or 'id="description-error"' in answer.text
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 0


async def test_status_tabs_filters_search_and_sort(clean: Platform, ann: httpx.AsyncClient) -> None:
    token = await token_of(clean)
    await api_create(clean, token, title="alpha report", priority="low", tags=["work"])
    await api_create(clean, token, title="beta groceries", priority="high", tags=["home"])
    done = await api_create(clean, token, title="gamma done", priority="high")
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        await api.patch(
            f"/api/tasks/{done['id']}/complete",
            json={"completed": True},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert titles((await ann.get("/tasks")).text) == [
        "gamma done",
        "beta groceries",
        "alpha report",
    ]
    assert titles((await ann.get("/tasks?status=pending")).text) == [
        "beta groceries",
        "alpha report",
    ]
    assert titles((await ann.get("/tasks?status=done")).text) == ["gamma done"]
    assert titles((await ann.get("/tasks?priority=high&status=pending")).text) == ["beta groceries"]
    assert titles((await ann.get("/tasks?tag=work")).text) == ["alpha report"]
    assert titles((await ann.get("/tasks?q=GROC")).text) == ["beta groceries"]
    page = await ann.get("/tasks?sort=title")
    assert titles(page.text) == ["alpha report", "beta groceries", "gamma done"]
    assert titles((await ann.get("/tasks?sort=title&order=desc")).text)[0] == "gamma done"
    # Values outside their sets are ignored, not sent on.
    assert len(titles((await ann.get("/tasks?status=bogus&priority=urgent&sort=x")).text)) == 3


async def test_the_status_tabs_lead_to_addresses_without_a_dangling_question_mark(
    ann: httpx.AsyncClient,
) -> None:
    """ "All" with no filter set led to "/tasks?", which the address bar then showed."""
    page = (await ann.get("/tasks?status=done")).text
    assert re.search(r'<a href="/tasks" [^>]*data-testid="tab-all"', page), page
    page = (await ann.get("/tasks?status=done&priority=high")).text
    assert re.search(r'<a href="/tasks\?priority=high" [^>]*data-testid="tab-all"', page)


async def test_applied_filters_lead_to_an_address_with_only_those_set(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The filter form sends every field, the ones left alone too (empty, or "Newest"): the
    answer is the address that carries only the filters set, with the rest of the query (a
    page, a note) as it was; that address is the list."""
    token = await token_of(clean)
    await api_create(clean, token, title="alpha report", priority="low")
    await api_create(clean, token, title="beta groceries", priority="high")
    form = re.search(r'<form class="filters".*?</form>', (await ann.get("/tasks")).text, re.S)
    assert form is not None
    sent = dict.fromkeys(re.findall(r'name="([a-z_]+)"', form.group(0)), "")
    assert set(sent) == {"q", "priority", "tag", "due", "sort", "order"}
    cases = [
        ({**sent, "q": "groc", "sort": "created"}, "/tasks?q=groc"),
        ({**sent, "sort": "created"}, "/tasks"),
        (
            {"status": "pending", **sent, "priority": "high", "sort": "title", "order": "desc"},
            "/tasks?status=pending&priority=high&sort=title&order=desc",
        ),
        ({"status": "all", **sent, "q": "  ", "tag": "home"}, "/tasks?tag=home"),
        (
            {"q": "groc", "cursor": "abc", "tag": "", "notice": "created"},
            "/tasks?q=groc&cursor=abc&notice=created",
        ),
    ]
    for params, location in cases:
        answer = await ann.get("/tasks", params=params)
        assert answer.status_code == 303, params
        assert answer.headers["location"] == location
    landed = await ann.get("/tasks?q=groc")
    assert landed.status_code == 200
    assert titles(landed.text) == ["beta groceries"]
    # An address with only set filters (the tabs', "load more"'s, a bookmark) is the list.
    for address in ("/tasks", "/tasks?status=pending&sort=title&order=desc", "/tasks?tag=x"):
        assert (await ann.get(address)).status_code == 200, address


async def end_of_today() -> datetime:
    """The coming midnight (UTC, ann's time zone); in the day's last minute, the next one
    after waiting for the day to turn, so a task due just before it is due today and not
    yet overdue for the whole test."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
    if midnight - now < timedelta(minutes=1):
        await asyncio.sleep((midnight - now).total_seconds() + 0.1)
        midnight += timedelta(days=1)
    return midnight


async def test_due_filters(clean: Platform, ann: httpx.AsyncClient) -> None:
    token = await token_of(clean)
    today = await end_of_today() - timedelta(seconds=30)
    await api_create(clean, token, title="late", due_at="2020-01-01T09:00:00Z")
    await api_create(clean, token, title="today", due_at=today.isoformat())
    await api_create(clean, token, title="later", due_at="2099-01-01T09:00:00Z")
    await api_create(clean, token, title="whenever")
    assert titles((await ann.get("/tasks?due=overdue")).text) == ["late"]
    assert titles((await ann.get("/tasks?due=today")).text) == ["today"]
    assert titles((await ann.get("/tasks?due=week")).text) == ["today"]
    late = (await ann.get("/tasks?due=overdue")).text
    assert "Overdue" in late


async def test_no_due_date_filter(clean: Platform, ann: httpx.AsyncClient) -> None:
    token = await token_of(clean)
    await api_create(clean, token, title="dated", due_at="2099-01-01T09:00:00Z")
    await api_create(clean, token, title="undated")
    assert titles((await ann.get("/tasks?due=none")).text) == ["undated"]


async def test_load_more_walks_the_keyset_pages(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    await register(clean, "ann@example.com")
    token = await token_of(clean)
    for n in range(5):
        await api_create(clean, token, title=f"task {n}")
    async with serve(make_web_app(page_size=2)) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(client)
        page = await client.get("/tasks")
        assert 'data-testid="task-total" id="task-total">5<' in page.text
        seen = titles(page.text)
        rows_link = re.search(r'data-rows="([^"]+)"', page.text)
        while rows_link is not None:
            rows = await client.get(rows_link.group(1).replace("&amp;", "&"))
            assert rows.headers["x-total-count"] == "5"
            assert "<html" not in rows.text
            seen += titles(rows.text)
            rows_link = re.search(r'data-rows="([^"]+)"', rows.text)
        assert seen == [f"task {n}" for n in range(4, -1, -1)]
        # Without JavaScript the same link is a page of its own.
        more = re.search(r'href="(/tasks\?cursor=[^"]+)"', page.text)
        assert more is not None
        second = await client.get(more.group(1).replace("&amp;", "&"))
        assert titles(second.text) == ["task 2", "task 1"]
        assert "Back to the first page" in second.text
        # A cursor that is not ours: back to the first page.
        assert (await client.get("/tasks?cursor=forged")).headers["location"] == "/tasks"


async def test_load_more_follows_the_longest_cursors_the_api_gives(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    """A page sorted by title that ends at a title of 200 emoji has a cursor of over 1,024
    characters; the web dropped such a cursor, so "Load more" showed the first page again."""
    await register(clean, "ann@example.com")
    token = await token_of(clean)
    names = [chr(0x1F600 + n) * 199 + str(n) for n in range(3)]
    for name in names:
        await api_create(clean, token, title=name)
    async with serve(make_web_app(page_size=2)) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(client)
        page = await client.get("/tasks?sort=title")
        assert titles(page.text) == names[:2]
        more = re.search(r'href="(/tasks\?[^"]*cursor=([^"&]+)[^"]*)"', page.text)
        assert more is not None
        assert len(unquote(more.group(2))) > 1024
        second = await client.get(more.group(1).replace("&amp;", "&"))
        assert titles(second.text) == names[2:]


EDIT_LINK = re.compile(r'href="(/tasks/\d+/edit[^"]*)" data-testid="task-edit"')


async def test_a_task_loaded_by_load_more_is_edited_back_to_its_page(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    """The script adds the next page's rows to the first page's document, so the edit page
    cannot learn their page from its Referer: their Edit links carry it (``back``), and the
    saved edit or Cancel leads back to that page, its filters and cursor kept."""
    await register(clean, "ann@example.com")
    token = await token_of(clean)
    for n in range(3):
        await api_create(clean, token, title=f"task {n}")
    async with serve(make_web_app(page_size=2)) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        await sign_in(client)
        first = await client.get("/tasks?q=task")
        # The first page's rows lead back by their Referer: the page they are on.
        assert [html.unescape(link) for link in EDIT_LINK.findall(first.text)] == [
            "/tasks/3/edit",
            "/tasks/2/edit",
        ]
        rows_link = re.search(r'data-rows="([^"]+)"', first.text)
        assert rows_link is not None
        rows = await client.get(html.unescape(rows_link.group(1)))
        [edit] = [html.unescape(link) for link in EDIT_LINK.findall(rows.text)]
        cursor = parse_qs(urlsplit(html.unescape(rows_link.group(1))).query)["cursor"][0]
        its_page = f"/tasks?{urlencode({'q': 'task', 'cursor': cursor})}"
        assert edit == f"/tasks/1/edit?{urlencode({'back': its_page})}"
        # Its page without the script shows the same link.
        assert html.unescape(EDIT_LINK.findall((await client.get(its_page)).text)[0]) == edit

        # Opened from the list (its Referer, the first page's address, does not decide).
        form = await client.get(edit, headers={"Referer": "http://testserver/tasks?q=task"})
        assert link_of(form.text, "Cancel") == its_page
        assert f'name="back" value="{html.escape(its_page)}"' in form.text
        saved = await client.post(
            "/tasks/1/edit",
            data={
                "csrf_token": csrf_of(form.text),
                "version": "1",
                "title": "task 0, edited",
                "priority": "medium",
                "back": its_page,
            },
        )
        assert saved.headers["location"] == f"{its_page}&notice=updated"
        back_there = await client.get(saved.headers["location"])
        assert titles(back_there.text) == ["task 0, edited"]
        assert "Task saved." in back_there.text


# What an edit page's ``?back=`` may lead to: this site's paths only, the list's note left
# out; anything else is the list. Browsers read a backslash as a slash and drop tabs and
# newlines, so a slash and a backslash, or two slashes around a tab, are another site.
HOSTILE_BACKS = (
    "https://evil.example/tasks",
    "//evil.example/tasks",
    "/\\evil.example/tasks",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "javascript:alert(1)",
    "data:text/html,hi",
    "http:/evil.example",
    " //evil.example",
    "evil.example/tasks",
    "",
)


async def test_the_way_back_from_an_edit_is_a_path_of_this_site_or_the_list(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    task = await api_create(clean, await token_of(clean), title="Pay rent")
    path = f"/tasks/{task['id']}/edit"
    for back in HOSTILE_BACKS:
        form = await ann.get(path, params={"back": back})
        assert form.status_code == 200, back
        assert link_of(form.text, "Cancel") == "/tasks", back
        assert 'name="back" value="/tasks"' in form.text, back
    kept = await ann.get(path, params={"back": "/tasks?q=rent&cursor=abc&notice=created"})
    assert link_of(kept.text, "Cancel") == "/tasks?q=rent&cursor=abc"
    # A form sent with one (its own field, not the page's): saved, the list; refused, the
    # edit page again with the list as its way back.
    fields = {"csrf_token": csrf_of(kept.text), "priority": "medium"}
    for version, back in enumerate(HOSTILE_BACKS, start=1):
        data = {**fields, "version": str(version), "title": f"Pay rent {version}", "back": back}
        saved = await ann.post(path, data=data)
        assert saved.headers["location"] == "/tasks?notice=updated", back
        refused = await ann.post(path, data={**data, "title": ""})
        assert refused.headers["location"].startswith(f"{path}?back=%2Ftasks&form="), back
        assert link_of((await shown_again(ann, refused)).text, "Cancel") == "/tasks", back


async def test_complete_and_reopen_with_a_form(clean: Platform, ann: httpx.AsyncClient) -> None:
    await create_form(ann, title="Toggle me")
    row = await clean.db.fetch_row("SELECT id FROM todo.tasks")
    assert row is not None
    csrf = await page_csrf(ann)
    done = await ann.post(
        f"/tasks/{row[0]}/complete", data={"csrf_token": csrf, "completed": "true"}
    )
    assert done.headers["location"] == "/tasks?notice=completed"
    assert await count(clean, "SELECT count(*) FROM todo.tasks WHERE completed") == 1
    again = await ann.post(
        f"/tasks/{row[0]}/complete", data={"csrf_token": csrf, "completed": "false"}
    )
    assert again.headers["location"] == "/tasks?notice=reopened"
    assert await count(clean, "SELECT count(*) FROM todo.tasks WHERE completed") == 0


async def test_complete_as_a_fetch_answers_the_new_row(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    await create_form(ann, title="Row <b>")
    row = await clean.db.fetch_row("SELECT id FROM todo.tasks")
    assert row is not None
    csrf = await page_csrf(ann)
    answer = await ann.post(
        f"/tasks/{row[0]}/complete",
        data={"completed": "true"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    body = answer.json()
    assert body["completed"] is True
    assert f'id="task-{row[0]}"' in body["html"]
    assert "Row &lt;b&gt;" in body["html"]


async def test_completing_a_repeating_task_says_when_the_next_one_is_due(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The script's answer names the new occurrence (the list refreshes to show it) and the
    note says when it is due; without JavaScript the list's note says the same. Reopening
    says nothing of it."""
    token = await token_of(clean)
    weekly = {"due_at": "2026-12-11T17:00:00Z", "recurrence": "weekly", "time_zone": "UTC"}
    first = await api_create(clean, token, title="Water plants", **weekly)
    csrf = await page_csrf(ann)
    as_json = {"Accept": "application/json", "X-CSRF-Token": csrf}
    answer = await ann.post(
        f"/tasks/{first['id']}/complete", data={"completed": "true"}, headers=as_json
    )
    body = answer.json()
    following = await clean.db.fetch_row("SELECT id FROM todo.tasks WHERE NOT completed")
    assert following is not None
    assert body["next_occurrence_id"] == following[0]
    assert body["notice"] == "Task marked done. The next one is due Fri 18 Dec 2026, 17:00."
    reopened = await ann.post(
        f"/tasks/{first['id']}/complete", data={"completed": "false"}, headers=as_json
    )
    assert reopened.json()["next_occurrence_id"] is None
    assert reopened.json()["notice"] is None

    second = await api_create(clean, token, title="Pay rent", **weekly)
    done = await ann.post(
        f"/tasks/{second['id']}/complete", data={"csrf_token": csrf, "completed": "true"}
    )
    location = done.headers["location"]
    assert location.startswith("/tasks?notice=completed&at=")
    page = await ann.get(location)
    assert "Task marked done. The next one is due Fri 18 Dec 2026, 17:00." in page.text
    # A task that does not repeat: the plain note.
    once = await api_create(clean, token, title="Post the letter")
    plain = await ann.post(
        f"/tasks/{once['id']}/complete", data={"csrf_token": csrf, "completed": "true"}
    )
    assert plain.headers["location"] == "/tasks?notice=completed"
    plain_json = await ann.post(
        f"/tasks/{once['id']}/complete", data={"completed": "true"}, headers=as_json
    )
    assert plain_json.json()["notice"] is None


async def test_a_completion_note_reads_its_instant_and_nothing_else(
    ann: httpx.AsyncClient,
) -> None:
    for at in ("tomorrow", "2026-12-18T17:00:00", "<b>", "9" * 80, ""):
        params = {"notice": "completed", "at": at}
        page = await ann.get("/tasks", params=params, follow_redirects=True)
        assert 'data-testid="notice">Task marked done.<' in page.text, at


async def test_each_task_shows_its_number_in_its_row_and_on_its_edit_page(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The assistant names tasks by their numbers ("complete task 5"): the list and the edit
    page show them."""
    task = await api_create(clean, await token_of(clean), title="Water plants", tags=["home"])
    listing = await ann.get("/tasks")
    assert f'data-testid="task-number">Task {task["id"]}</span>' in listing.text
    edit = await ann.get(f"/tasks/{task['id']}/edit")
    assert f'data-testid="task-number">Task {task["id"]}</p>' in edit.text


async def test_another_users_task_is_not_found(clean: Platform, ann: httpx.AsyncClient) -> None:
    await register(clean, "bob@example.com", name="Bob")
    bobs = await api_create(clean, await token_of_email(clean, "bob@example.com"), title="Bob's")
    csrf = await page_csrf(ann)
    for path in (f"/tasks/{bobs['id']}/edit", f"/tasks/{bobs['id']}/delete", "/tasks/abc/edit"):
        page = await ann.get(path)
        assert page.status_code == 404
        assert "no longer exists" in page.text
        assert "Bob&#39;s" not in page.text
    for action in ("complete", "delete"):
        answer = await ann.post(
            f"/tasks/{bobs['id']}/{action}", data={"csrf_token": csrf, "completed": "true"}
        )
        assert answer.headers["location"].startswith("/tasks?form=")
        shown = await shown_again(ann, answer)
        assert shown.status_code == 404
        assert "no longer exists" in problem_of(shown.text)
    # A malformed id: the same, back to the list it was sent from.
    for action in ("complete", "delete"):
        answer = await ann.post(
            f"/tasks/abc/{action}",
            data={"csrf_token": csrf, "completed": "true"},
            headers={"Referer": "http://testserver/tasks?q=bob"},
        )
        assert answer.headers["location"].startswith("/tasks?q=bob&form=")
        shown = await shown_again(ann, answer)
        assert shown.status_code == 404
        assert problem_of(shown.text) == "That task no longer exists. Nothing was changed."
    fetched = await ann.post(
        f"/tasks/{bobs['id']}/complete",
        data={"completed": "true"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert "no longer exists" in assert_error(fetched, 404, "task_not_found")["detail"]
    row = await clean.db.fetch_row("SELECT completed FROM todo.tasks WHERE id = $1", bobs["id"])
    assert row is not None
    assert row[0] is False


async def token_of_email(platform: Platform, email: str) -> str:
    return str((await api_token(platform, email))["access_token"])


async def test_edit_saves_with_the_version_it_opened(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    task = await api_create(clean, token, title="Old", tags=["a"], due_at="2027-01-02T10:15:00Z")
    form = await ann.get(f"/tasks/{task['id']}/edit")
    assert 'value="2027-01-02"' in form.text
    assert 'value="10:15"' in form.text
    answer = await ann.post(
        f"/tasks/{task['id']}/edit",
        data={
            "csrf_token": csrf_of(form.text),
            "version": "1",
            "title": "New",
            "priority": "low",
            "tags": "b",
            "due_date": "",
            "due_time": "",
            "recurrence": "none",
            "description": "",
        },
    )
    assert answer.headers["location"] == "/tasks?notice=updated"
    row = await clean.db.fetch_row("SELECT title, priority, tags, due_at, version FROM todo.tasks")
    assert row is not None
    assert (row[0], row[1], list(row[2]), row[3], row[4]) == ("New", "low", ["b"], None, 2)


async def test_an_edit_sent_twice_is_saved_once_without_a_conflict(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """A double click on Save sends the form twice with the version it was opened at: the
    second meets the version the first saved. What it would save is already there, so it is
    answered as saved, not with a conflict page showing two identical versions."""
    token = await token_of(clean)
    task = await api_create(
        clean,
        token,
        title="Rent",
        tags=["home"],
        due_at="2027-01-02T10:15:00Z",
        reminders=[{"before_due_minutes": 15}],
    )
    form = await ann.get(f"/tasks/{task['id']}/edit")
    fields = {
        "csrf_token": csrf_of(form.text),
        "version": "1",
        "title": "Pay the rent",
        "description": "Standing order",
        "priority": "high",
        "tags": "home, money",
        "due_date": "2027-01-02",
        "due_time": "10:15",
        "recurrence": "monthly",
        "reminders": ["before:15", "before:60"],
        "time_zone": "UTC",
        "back": "/tasks?q=rent",
    }
    first = await ann.post(f"/tasks/{task['id']}/edit", data=fields)
    assert first.headers["location"] == "/tasks?q=rent&notice=updated", first.text
    second = await ann.post(f"/tasks/{task['id']}/edit", data=fields)
    assert second.status_code == 303, second.text
    assert second.headers["location"] == "/tasks?q=rent&notice=updated"
    row = await clean.db.fetch_row("SELECT title, version FROM todo.tasks")
    assert row is not None
    assert tuple(row) == ("Pay the rent", 2)
    # Sent twice with anything else in it, the second is a conflict, as before.
    other = await ann.post(f"/tasks/{task['id']}/edit", data={**fields, "priority": "low"})
    other = await shown_again(ann, other)
    assert other.status_code == 409
    assert "changed since you opened it" in other.text


async def test_an_edit_sent_twice_is_saved_once_whatever_the_case_of_its_words(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The API keeps tags as keys (lower case, once each) and text in NFC: a form with "Home"
    or a decomposed "é" that the first send saved is what the task holds, not a conflict."""
    token = await token_of(clean)
    task = await api_create(clean, token, title="Rent")
    form = await ann.get(f"/tasks/{task['id']}/edit")
    fields = {
        "csrf_token": csrf_of(form.text),
        "version": "1",
        "title": "Pay the rent",
        "description": "Cafe\u0301 bill",
        "priority": "medium",
        "tags": "Home, #Money, home",
        "due_date": "",
        "due_time": "",
        "recurrence": "none",
    }
    first = await ann.post(f"/tasks/{task['id']}/edit", data=fields)
    assert first.status_code == 303, first.text
    second = await ann.post(f"/tasks/{task['id']}/edit", data=fields)
    assert second.status_code == 303, second.text
    assert second.headers["location"] == "/tasks?notice=updated"


async def test_edit_of_a_task_changed_elsewhere_shows_both_versions(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    task = await api_create(clean, token, title="Original")
    form = await ann.get(f"/tasks/{task['id']}/edit")
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        changed = await api.patch(
            f"/api/tasks/{task['id']}",
            json={"title": "Changed elsewhere"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert changed.status_code == 200
    fields = {
        "csrf_token": csrf_of(form.text),
        "version": "1",
        "title": "Mine",
        "priority": "medium",
        "recurrence": "none",
        "back": "/tasks?q=rent",
    }
    answer = await shown_again(ann, await ann.post(f"/tasks/{task['id']}/edit", data=fields))
    assert answer.status_code == 409
    assert "changed since you opened it" in answer.text
    current = answer.text.split('data-testid="conflict-current"')[1]
    yours = answer.text.split('data-testid="conflict-yours"')[1]
    assert "Changed elsewhere" in current
    assert "Mine" in yours.split("</dl>")[0]
    # Each side in the form's own words ("Medium", "Never"), not the API's values.
    for side in (current, yours):
        shown = side.split("</dl>")[0]
        assert "<dt>Priority</dt><dd>Medium</dd>" in shown
        assert "<dt>Repeats</dt><dd>Never</dd>" in shown
    assert "<dt>Done</dt><dd>No</dd>" in current
    row = await clean.db.fetch_row("SELECT title, version FROM todo.tasks")
    assert row is not None
    assert tuple(row) == ("Changed elsewhere", 2)
    # Discarding opens the current version with the same way back.
    discard = link_of(answer.text, "Discard my changes and edit the current version")
    assert discard == f"/tasks/{task['id']}/edit?back=%2Ftasks%3Fq%3Drent"
    reopened = await ann.get(discard)
    assert link_of(reopened.text, "Cancel") == "/tasks?q=rent"
    assert 'value="Changed elsewhere"' in reopened.text
    # The form now carries the current version: saving again is a deliberate overwrite.
    assert 'name="version" value="2"' in answer.text
    again = await ann.post(f"/tasks/{task['id']}/edit", data={**fields, "version": "2"})
    assert again.status_code == 303
    row = await clean.db.fetch_row("SELECT title FROM todo.tasks")
    assert row is not None
    assert row[0] == "Mine"


def link_of(page: str, label: str) -> str:
    found = re.search(rf'<a href="([^"]*)"[^>]*>{label}</a>', page)
    assert found is not None, label
    return html.unescape(found.group(1))


# A page's Referer -> where the way back from a task's page leads: the list as it was
# filtered (without the note of its last action), another page of this site, never another
# site, and not a task's own page.
WAYS_BACK = {
    "http://testserver/tasks?status=pending&q=rent&notice=created": "/tasks?status=pending&q=rent",
    "http://testserver/tasks?tag=home&notice=completed&at=2027-01-01T10%3A00%3A00%2B00%3A00"
    "&form=AAAAAAAAAAAAAAAAAAAAAA#task-4": "/tasks?tag=home",
    "http://testserver/notifications?show=unread": "/notifications?show=unread",
    "http://testserver/tasks/7/edit": "/tasks",
    "https://evil.example/tasks?q=x": "/tasks",
    "http://testserver//evil.example/": "/tasks",
    "http://testserver/\\evil.example/": "/tasks",
    None: "/tasks",
}


async def assert_ways_back(
    client: httpx.AsyncClient, path: str, label: str, status: int = 200
) -> str:
    """``path`` asked from each page of ``WAYS_BACK`` answers ``status`` with its link
    ``label`` leading where ``WAYS_BACK`` says; the last page's HTML."""
    page = ""
    for referer, back in WAYS_BACK.items():
        answer = await client.get(path, headers={"Referer": referer} if referer else {})
        assert answer.status_code == status, (path, referer)
        assert link_of(answer.text, label) == back, (path, referer)
        page = answer.text
    return page


async def test_the_edit_pages_cancel_leads_back_to_the_page_it_was_opened_from(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    task = await api_create(clean, token, title="Pay rent")
    await assert_ways_back(ann, f"/tasks/{task['id']}/edit", "Cancel")
    # The form carries it: the page sent back with its errors (or a conflict) keeps it.
    form = await ann.get(
        f"/tasks/{task['id']}/edit", headers={"Referer": "http://testserver/tasks?q=rent"}
    )
    assert 'name="back" value="/tasks?q=rent"' in form.text
    fields = {"csrf_token": csrf_of(form.text), "version": "1", "title": "", "back": ""}
    for sent, back in (
        ("/tasks?q=rent", "/tasks?q=rent"),
        ("/tasks?q=rent&notice=updated", "/tasks?q=rent"),
        ("https://evil.example/", "/tasks"),
        ("//evil.example/", "/tasks"),
        ("/\\evil.example/", "/tasks"),
        ("javascript:alert(1)", "/tasks"),
        ("", "/tasks"),
    ):
        posted = await ann.post(f"/tasks/{task['id']}/edit", data={**fields, "back": sent})
        answer = await shown_again(ann, posted)
        assert answer.status_code == 422
        assert link_of(answer.text, "Cancel") == back, sent
    row = await clean.db.fetch_row("SELECT title, version FROM todo.tasks")
    assert row is not None
    assert tuple(row) == ("Pay rent", 1)


async def test_a_saved_edit_leads_back_to_the_list_as_it_was_filtered(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    task = await api_create(clean, token, title="Pay rent")
    form = await ann.get(f"/tasks/{task['id']}/edit")
    fields = {
        "csrf_token": csrf_of(form.text),
        "priority": "medium",
        "recurrence": "none",
    }
    for version, (sent, location) in enumerate(
        (
            ("/tasks?q=rent&priority=high", "/tasks?q=rent&priority=high&notice=updated"),
            ("/tasks?q=rent&notice=created", "/tasks?q=rent&notice=updated"),
            ("/notifications", "/tasks?notice=updated"),
            ("//evil.example/", "/tasks?notice=updated"),
            ("", "/tasks?notice=updated"),
        ),
        start=1,
    ):
        answer = await ann.post(
            f"/tasks/{task['id']}/edit",
            data={**fields, "title": f"Pay rent {version}", "version": str(version), "back": sent},
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == location, sent


async def test_a_missing_tasks_go_back_leads_to_the_page_it_was_asked_from(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """The 404 of a task deleted meanwhile (or another user's, or a malformed id)."""
    await register(clean, "bob@example.com", name="Bob")
    bobs = await api_create(clean, await token_of_email(clean, "bob@example.com"), title="Bob's")
    for path in (f"/tasks/{bobs['id']}/edit", f"/tasks/{bobs['id']}/delete", "/tasks/abc/edit"):
        await assert_ways_back(ann, path, "Go back", status=404)
    # An edit form sent for a task that is gone: to its edit page (a GET: its 404), back
    # where the form was opened from.
    csrf = await page_csrf(ann)
    fields = {"csrf_token": csrf, "version": "1", "title": "Mine", "priority": "medium"}
    for sent, back in (("/tasks?q=rent", "/tasks?q=rent"), ("//evil.example/", "/tasks")):
        posted = await ann.post(f"/tasks/{bobs['id']}/edit", data={**fields, "back": sent})
        assert posted.status_code == 303, posted.text
        location = posted.headers["location"]
        assert location == f"/tasks/{bobs['id']}/edit?{urlencode({'back': back})}", sent
        answer = await ann.get(location)
        assert answer.status_code == 404
        assert link_of(answer.text, "Go back") == back, sent
    row = await clean.db.fetch_row("SELECT title FROM todo.tasks")
    assert row is not None
    assert row[0] == "Bob's"


async def test_delete_confirmation_then_delete(clean: Platform, ann: httpx.AsyncClient) -> None:
    await create_form(ann, title="Bin me")
    row = await clean.db.fetch_row("SELECT id FROM todo.tasks")
    assert row is not None
    confirm = await ann.get(f"/tasks/{row[0]}/delete")
    assert "Delete this task?" in confirm.text
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1
    answer = await ann.post(f"/tasks/{row[0]}/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert answer.headers["location"] == "/tasks?notice=deleted"
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 0


async def test_the_delete_confirmation_leads_back_to_the_list_as_it_was_filtered(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    kept = await api_create(clean, token, title="Keep me")
    await assert_ways_back(ann, f"/tasks/{kept['id']}/delete", "Keep it")
    # The form carries it, for the list a confirmed delete leads back to.
    confirm = await ann.get(
        f"/tasks/{kept['id']}/delete", headers={"Referer": "http://testserver/tasks?q=a&tag=b"}
    )
    assert 'name="back" value="/tasks?q=a&amp;tag=b"' in confirm.text
    csrf = csrf_of(confirm.text)
    for sent, location in (
        ("/tasks?q=rent&priority=high", "/tasks?q=rent&priority=high&notice=deleted"),
        ("/tasks?q=rent&notice=created", "/tasks?q=rent&notice=deleted"),
        ("//evil.example/", "/tasks?notice=deleted"),
        ("", "/tasks?notice=deleted"),
    ):
        task = await api_create(clean, token, title="Bin me")
        answer = await ann.post(
            f"/tasks/{task['id']}/delete", data={"csrf_token": csrf, "back": sent}
        )
        assert answer.headers["location"] == location, sent
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1


async def test_completing_from_a_filtered_list_leads_back_to_it(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    task = await api_create(clean, await token_of(clean), title="Pay rent")
    csrf = await page_csrf(ann)
    for referer, location in (
        ("http://testserver/tasks?status=pending&q=rent", "/tasks?status=pending&q=rent&"),
        ("http://testserver/tasks?tag=home&notice=created", "/tasks?tag=home&"),
        ("https://evil.example/tasks?q=x", "/tasks?"),
    ):
        answer = await ann.post(
            f"/tasks/{task['id']}/complete",
            data={"csrf_token": csrf, "completed": "true"},
            headers={"Referer": referer},
        )
        assert answer.headers["location"] == location + "notice=completed", referer


async def test_a_refused_row_action_leads_back_to_the_list_as_filtered(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """A row's Done or Delete the API refuses (here: the task is another user's) goes back
    to the list as a done one does, its filters kept, saying why."""
    await register(clean, "bob@example.com", name="Bob")
    bobs = await api_create(clean, await token_of_email(clean, "bob@example.com"), title="Bob's")
    csrf = await page_csrf(ann)
    for referer, location in (
        ("http://testserver/tasks?status=pending&q=rent", "/tasks?status=pending&q=rent&"),
        ("http://testserver/tasks?tag=home&notice=created", "/tasks?tag=home&"),
        ("http://testserver/overview", "/tasks?"),
    ):
        answer = await ann.post(
            f"/tasks/{bobs['id']}/complete",
            data={"csrf_token": csrf, "completed": "true"},
            headers={"Referer": referer},
        )
        assert answer.headers["location"].startswith(location + "form="), referer
    deleted = await ann.post(
        f"/tasks/{bobs['id']}/delete", data={"csrf_token": csrf, "back": "/tasks?priority=high"}
    )
    assert deleted.headers["location"].startswith("/tasks?priority=high&form=")
    shown = await shown_again(ann, deleted)
    assert shown.status_code == 404
    assert "no longer exists" in problem_of(shown.text)


# The task form's fields as the page sends them, for the tests of task_body alone.
FORM_VALUES = {
    "title": "x",
    "description": "",
    "priority": "medium",
    "tags": "",
    "due_date": "2027-07-01",
    "due_time": "09:00",
    "recurrence": "none",
    "reminders": [],
}


def test_a_due_date_is_read_in_the_users_zone() -> None:
    values = FORM_VALUES
    body, errors = task_body(values, "Europe/Paris")
    assert errors == {}
    assert body["due_at"] == "2027-07-01T07:00:00+00:00"
    body, _ = task_body({**values, "due_time": ""}, "America/New_York")
    assert body["due_at"] == "2027-07-02T03:59:00+00:00"  # 23:59 local
    _, errors = task_body({**values, "due_date": "", "recurrence": "weekly"}, "UTC")
    assert "due_date" in errors


def test_a_repeating_task_is_sent_with_the_users_zone() -> None:
    values = {**FORM_VALUES, "recurrence": "daily"}
    body, errors = task_body(values, "Europe/Paris")
    assert errors == {}
    assert body["time_zone"] == "Europe/Paris"
    once, _ = task_body({**values, "recurrence": "none"}, "Europe/Paris")
    assert "time_zone" not in once


async def test_the_form_keeps_a_repeating_task_in_the_profiles_zone(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    page = await ann.get("/account")
    saved = await ann.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "name": "Ann", "timezone": "Europe/Paris"},
    )
    assert saved.status_code == 303, saved.text
    answer = await create_form(
        ann, title="Stand-up", due_date="2027-10-30", due_time="09:00", recurrence="daily"
    )
    assert answer.status_code == 303, answer.text
    once = await create_form(ann, title="Dentist", due_date="2027-10-30", due_time="09:00")
    assert once.status_code == 303, once.text
    rows = await clean.db.fetch_row(
        "SELECT array_agg(time_zone ORDER BY id), array_agg(id ORDER BY id) FROM todo.tasks"
    )
    assert rows is not None
    assert list(rows[0]) == ["Europe/Paris", None]
    standup, dentist = rows[1]

    # An edit that makes a task repeat sends the zone; one that does not leaves it alone.
    for task_id, recurrence, version in ((dentist, "weekly", "1"), (standup, "none", "1")):
        form = await ann.get(f"/tasks/{task_id}/edit")
        edited = await ann.post(
            f"/tasks/{task_id}/edit",
            data={
                "csrf_token": csrf_of(form.text),
                "version": version,
                "title": "Edited",
                "priority": "medium",
                "tags": "",
                "due_date": "2027-10-30",
                "due_time": "09:00",
                "recurrence": recurrence,
                "description": "",
            },
        )
        assert edited.headers["location"] == "/tasks?notice=updated", edited.text
    token = await token_of(clean)
    assert (await api_task(clean, token, dentist))["time_zone"] == "Europe/Paris"
    assert (await api_task(clean, token, standup))["time_zone"] == "Europe/Paris"


async def test_an_edit_keeps_a_repeating_tasks_own_zone_unless_it_is_changed(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """A task's zone is its own (set by the assistant or the API, or in another profile zone):
    a title changed in the edit form leaves the series in it, where sending the profile's zone
    moved it (and a monthly series' day: 31 January 15:30 UTC is 1 February in Tokyo). The
    form shows the zone, and a zone typed there is the series' new one."""
    page = await ann.get("/account")
    saved = await ann.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "name": "Ann", "timezone": "Europe/Paris"},
    )
    assert saved.status_code == 303, saved.text
    token = await token_of(clean)
    due = "2027-01-31T15:30:00Z"
    tokyo = await api_create(
        clean, token, title="Rent", due_at=due, recurrence="monthly", time_zone="Asia/Tokyo"
    )
    utc = await api_create(clean, token, title="Backup", due_at=due, recurrence="monthly")

    async def day_of(task_id: int) -> int:
        row = await clean.db.fetch_row(
            "SELECT recurrence_day FROM todo.tasks WHERE id = $1", task_id
        )
        assert row is not None
        return int(row[0])

    async def edit(task_id: int, version: str, **fields: str) -> httpx.Response:
        form = await ann.get(f"/tasks/{task_id}/edit")
        shown = re.search(r'name="time_zone"[^>]*value="([^"]*)"', form.text)
        data = {
            "csrf_token": csrf_of(form.text),
            "version": version,
            "title": "Edited",
            "priority": "medium",
            "tags": "",
            "due_date": "2027-01-31",
            "due_time": "16:30",  # 15:30 UTC in Paris
            "recurrence": "monthly",
            "description": "",
            **({"time_zone": html.unescape(shown.group(1))} if shown else {}),
            **fields,
        }
        return await ann.post(f"/tasks/{task_id}/edit", data=data)

    for task, zone, day in ((tokyo, "Asia/Tokyo", 1), (utc, None, 31)):
        edited = await edit(task["id"], "1")
        assert edited.headers["location"] == "/tasks?notice=updated", edited.text
        after = await api_task(clean, token, task["id"])
        assert (after["title"], after["time_zone"], after["due_at"]) == (
            "Edited",
            zone,
            "2027-01-31T15:30:00.000000Z",
        )
        assert await day_of(task["id"]) == day

    # A zone the person types is the series' new one; one the database does not know is
    # named at its field, and nothing is changed.
    refused = await shown_again(ann, await edit(utc["id"], "2", time_zone="Mars/Olympus"))
    assert refused.status_code == 422
    assert 'id="time_zone-error"' in refused.text
    assert (await api_task(clean, token, utc["id"]))["time_zone"] is None
    moved = await edit(utc["id"], "2", time_zone="Asia/Tokyo")
    assert moved.headers["location"] == "/tasks?notice=updated", moved.text
    assert (await api_task(clean, token, utc["id"]))["time_zone"] == "Asia/Tokyo"
    assert await day_of(utc["id"]) == 1


def test_today_and_this_week_are_the_users_days() -> None:
    now = datetime(2027, 7, 1, 23, 30, tzinfo=UTC)  # a Thursday; already Friday 2 July in Tokyo
    params = dict(Filters({"due": "today"}).api_params("Asia/Tokyo", now, 50))
    assert params["due_after"] == "2027-07-01T23:30:00+00:00"
    assert params["due_before"] == "2027-07-02T15:00:00+00:00"  # Tokyo's midnight
    week = dict(Filters({"due": "week"}).api_params("UTC", now, 50))
    assert week["due_before"] == "2027-07-05T00:00:00+00:00"  # Monday
    assert dict(Filters({"due": "none"}).api_params("UTC", now, 50))["has_due"] == "false"


async def test_overview_counts_and_chart(clean: Platform, ann: httpx.AsyncClient) -> None:
    token = await token_of(clean)
    await api_create(clean, token, title="late", priority="high", due_at="2020-01-01T09:00:00Z")
    await api_create(clean, token, title="someday", priority="low")
    done = await api_create(clean, token, title="done", priority="high")
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        await api.patch(
            f"/api/tasks/{done['id']}/complete",
            json={"completed": True},
            headers={"Authorization": f"Bearer {token}"},
        )
    page = await ann.get("/overview")
    assert page.status_code == 200, page.text
    text = page.text

    def stat(testid: str) -> str:
        match = re.search(rf'data-testid="{testid}"[^>]*>(?:<a [^>]*>)?([0-9]+)<', text)
        assert match is not None, testid
        return match.group(1)

    assert stat("stat-total") == "3"
    assert stat("stat-pending") == "2"
    assert stat("stat-completed") == "1"
    assert stat("stat-overdue") == "1"
    assert stat("stat-no-due") == "1"
    high = text.split('data-testid="stat-priority-high"')[1].split("</tr>")[0]
    assert re.findall(r"<a [^>]*>([0-9]+)<", high) == ["1", "1"]
    assert 'data-testid="completions-chart"' in text
    assert '<title id="chart-title">' in text
    rows = text.split('data-testid="completions-table"')[1]
    assert rows.count("<tr>") == 15  # the header and 14 days


async def test_one_completion_and_one_reminder_are_counted_in_the_singular(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    token = await token_of(clean)
    done = await api_create(clean, token, title="Post the letter")
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        await api.patch(
            f"/api/tasks/{done['id']}/complete",
            json={"completed": True},
            headers={"Authorization": f"Bearer {token}"},
        )
    overview = await ann.get("/overview")
    assert "1 task completed in 14 days" in overview.text
    await create_form(ann, title="Call the bank", due_date="2040-01-01", reminders=["before:60"])
    tasks = (await ann.get("/tasks")).text
    assert "Reminder: 1 hour before" in tasks


async def test_instants_at_the_calendars_ends_show_and_are_refused_in_any_time_zone(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    """The API takes instants strictly inside the years 1-9999 in UTC; in a zone 14 hours
    ahead (or behind) of UTC some of them are a local year 10000 (or 0). Such a task is still
    listed and opened, and a form whose local date leaves the calendar in UTC is a field error
    with nothing saved, never a 500."""
    await register(clean, "ann@example.com")
    token = await token_of(clean)
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        moved = await api.patch(
            "/api/auth/me",
            json={"timezone": "Pacific/Kiritimati"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert moved.status_code == 200, moved.text
    await sign_in(browser)
    task = await api_create(
        clean,
        token,
        title="At the end of time",
        due_at="9999-12-31T23:00:00Z",
        reminders=[{"at": "9999-12-31T22:00:00Z"}],
    )

    page = await browser.get("/tasks")
    assert page.status_code == 200, page.text
    assert titles(page.text) == ["At the end of time"]
    edit = await browser.get(f"/tasks/{task['id']}/edit")
    assert edit.status_code == 200, edit.text

    answer = await shown_again(
        browser,
        await create_form(
            browser, title="Past the end", reminders=["at:9999-12-31T23:59:00-05:00"]
        ),
    )
    assert answer.status_code == 422, answer.text
    assert "Choose reminders from the list" in answer.text
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1
    # The last day in a zone behind UTC ends in the year 10000 in UTC.
    values = {
        "title": "Past the end",
        "description": "",
        "priority": "medium",
        "tags": "",
        "due_date": "9999-12-31",
        "due_time": "23:30",
        "recurrence": "none",
        "reminders": [],
    }
    _, errors = task_body(values, "America/Los_Angeles")
    assert set(errors) == {"due_date"}


def test_the_task_form_measures_text_in_the_form_the_api_stores() -> None:
    # 150 accented letters typed with combining marks (300 code points) and a 15-letter tag
    # with a ligature the API reads as two letters: both within the API's bounds.
    values = {
        **FORM_VALUES,
        "title": "e\u0301" * 150,
        "description": "e\u0301" * 600,
        "tags": "Stra\u00dfe, " + "a" * 29 + "\ufb01",
    }
    _, errors = task_body(values, "UTC")
    assert errors == {"tags": "Each tag can be at most 30 characters"}
    _, errors = task_body({**values, "tags": "Straße, " + "a" * 28 + "\ufb01"}, "UTC")
    assert errors == {}
