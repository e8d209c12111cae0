"""GET /api/tasks: filters, sorts, their combinations, keyset pages and cursor validation."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from tests.support.errors import assert_error
from tests.todo.conftest import User, create

MAX_PAGES = 200


async def walk(
    client: httpx.AsyncClient, user: User, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every page from the first, following Link; the items and each page's X-Total-Count."""
    items: list[dict[str, Any]] = []
    totals: list[int] = []
    url: str = "/api/tasks"
    query: dict[str, Any] | None = params
    for _ in range(MAX_PAGES):
        response = await client.get(url, params=query, headers=user.headers)
        assert response.status_code == 200, response.text
        items += response.json()
        totals.append(int(response.headers["x-total-count"]))
        link = response.headers.get("link")
        if link is None:
            return items, totals
        assert link.endswith('>; rel="next"')
        url, query = link[1 : link.index(">")], None
    raise AssertionError("the walk did not end")


def ids(tasks: list[dict[str, Any]]) -> list[int]:
    return [task["id"] for task in tasks]


@pytest.fixture
async def tasks(client: httpx.AsyncClient, alice: User, clock: FrozenClock) -> list[dict[str, Any]]:
    """Alice's tasks, created a minute apart, some of them later updated or completed."""
    specs: list[dict[str, Any]] = [
        {"title": "Buy milk", "priority": "low", "tags": ["home", "shop"],
         "due_at": "2026-03-10T09:00:00Z"},
        {"title": "call Mom", "priority": "high", "tags": ["family"],
         "description": "about the MILK delivery", "due_at": "2026-03-20T09:00:00Z"},
        {"title": "apple pie", "priority": "medium", "tags": ["home"]},
        {"title": "Draft report", "priority": "high", "tags": ["work"],
         "due_at": "2026-03-14T09:00:00Z"},
        {"title": "email Bob", "priority": "low", "tags": ["work", "shop"],
         "due_at": "2026-04-01T09:00:00Z"},
        {"title": "Apple tart", "priority": "medium", "tags": [],
         "due_at": "2026-03-10T09:00:00Z"},
        {"title": "50% discount_code", "priority": "high", "tags": ["shop"]},
        {"title": "fix bike", "priority": "medium", "tags": ["home", "work"],
         "due_at": "2026-03-15T11:00:00Z"},
    ]  # fmt: skip
    created = []
    for spec in specs:
        created.append(await create(client, alice, **spec))
        clock.advance(minutes=1)
    # Completed: "Draft report" (overdue no longer) and "email Bob".
    for index in (3, 4):
        response = await client.patch(
            f"/api/tasks/{created[index]['id']}/complete", headers=alice.headers
        )
        created[index] = response.json()
        clock.advance(minutes=1)
    # Touched later, so updated order differs from created order.
    response = await client.patch(
        f"/api/tasks/{created[0]['id']}", json={"description": "2 litres"}, headers=alice.headers
    )
    created[0] = response.json()
    return created


def by(tasks: list[dict[str, Any]], key: str, *, reverse: bool = False) -> list[dict[str, Any]]:
    def sort_key(task: dict[str, Any]) -> tuple[Any, int]:
        if key == "priority":
            return ({"low": 0, "medium": 1, "high": 2}[task["priority"]], task["id"])
        if key == "title":
            return (task["title"].lower(), task["id"])
        if key == "due_at":
            # PostgreSQL's NULL placement: last ascending, first descending.
            return (task["due_at"] or "9999", task["id"])
        return (task[key], task["id"])

    return sorted(tasks, key=sort_key, reverse=reverse)


# --- shape ---------------------------------------------------------------------------------


async def test_the_body_is_an_array_with_the_total_in_a_header(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    response = await client.get("/api/tasks", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-total-count"] == str(len(tasks))
    assert "link" not in response.headers
    # Newest first by default; the same representation as GET /api/tasks/{id}.
    assert response.json() == by(tasks, "created_at", reverse=True)


async def test_an_empty_list_is_an_empty_array(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/tasks", headers=alice.headers)
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"
    assert "link" not in response.headers


async def test_link_is_relative_and_keeps_the_query(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    response = await client.get(
        "/api/tasks",
        params=[("limit", "1"), ("tag", "home"), ("tag", "Home"), ("q", "i"), ("sort", "title")],
        headers=alice.headers,
    )
    link = response.headers["link"]
    target = link[1 : link.index(">")]
    assert target.startswith("/api/tasks?limit=1&tag=home&tag=Home&q=i&sort=title&cursor=")
    assert link.endswith('>; rel="next"')


async def test_link_replaces_the_cursor_it_was_given(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    first = await client.get("/api/tasks", params={"limit": 2}, headers=alice.headers)
    second_url = first.headers["link"][1 : first.headers["link"].index(">")]
    second = await client.get(second_url, headers=alice.headers)
    third_url = second.headers["link"][1 : second.headers["link"].index(">")]
    assert third_url.count("cursor=") == 1
    assert third_url != second_url


async def test_unknown_query_parameters_are_ignored(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    response = await client.get(
        "/api/tasks", params={"page": 3, "user_id": "bob-subject"}, headers=alice.headers
    )
    assert response.status_code == 200
    assert len(response.json()) == len(tasks)


# --- sorts ---------------------------------------------------------------------------------


SORTS = [
    ("created", "created_at", "desc"),
    ("updated", "updated_at", "desc"),
    ("due", "due_at", "asc"),
    ("due_date", "due_at", "asc"),
    ("priority", "priority", "desc"),
    ("title", "title", "asc"),
]


@pytest.mark.parametrize(("sort", "field", "default_order"), SORTS)
@pytest.mark.parametrize("order", [None, "asc", "desc"])
async def test_each_sort_and_order_walked_in_pages(
    client: httpx.AsyncClient,
    alice: User,
    tasks: list[dict[str, Any]],
    sort: str,
    field: str,
    default_order: str,
    order: str | None,
) -> None:
    params: dict[str, Any] = {"sort": sort, "limit": 3}
    if order is not None:
        params["order"] = order
    walked, totals = await walk(client, alice, params)
    expected = by(tasks, field, reverse=(order or default_order) == "desc")
    assert ids(walked) == ids(expected)
    assert totals == [len(tasks)] * 3


async def test_title_order_ignores_case(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    walked, _ = await walk(client, alice, {"sort": "title", "limit": 100})
    titles = [task["title"] for task in walked]
    assert titles.index("apple pie") < titles.index("Apple tart") < titles.index("Buy milk")


async def test_undated_tasks_come_last_ascending_and_first_descending(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    ascending, _ = await walk(client, alice, {"sort": "due", "limit": 2})
    descending, _ = await walk(client, alice, {"sort": "due", "order": "desc", "limit": 2})
    assert [t["due_at"] for t in ascending][-2:] == [None, None]
    assert [t["due_at"] for t in descending][:2] == [None, None]


# --- filters -------------------------------------------------------------------------------


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"status": "all"}, lambda t: True),
    ({"status": "pending"}, lambda t: not t["completed"]),
    ({"status": "completed"}, lambda t: t["completed"]),
    ({"priority": "high"}, lambda t: t["priority"] == "high"),
    ({"priority": "low"}, lambda t: t["priority"] == "low"),
    ({"tag": "home"}, lambda t: "home" in t["tags"]),
    ({"tag": "HOME"}, lambda t: "home" in t["tags"]),
    ({"tag": ["home", "shop"]}, lambda t: {"home", "shop"} <= set(t["tags"])),
    ({"tag": ["nothing"]}, lambda t: False),
    ({"q": "milk"}, lambda t: "milk" in f"{t['title']} {t['description']}".lower()),
    ({"q": "  MILK "}, lambda t: "milk" in f"{t['title']} {t['description']}".lower()),
    ({"q": "50%"}, lambda t: "50%" in t["title"]),
    ({"q": "%"}, lambda t: "%" in t["title"]),
    ({"q": "t_c"}, lambda t: "t_c" in t["title"]),
    ({"q": "_"}, lambda t: "_" in t["title"]),
    ({"q": "\\"}, lambda t: False),
    ({"q": ""}, lambda t: True),
    ({"due_before": "2026-03-15T00:00:00Z"}, lambda t: (t["due_at"] or "9") < "2026-03-15"),
    ({"due_after": "2026-03-15T11:00:00Z"}, lambda t: (t["due_at"] or "") >= "2026-03-15T11"),
    (
        {"due_after": "2026-03-10T09:00:00+00:00", "due_before": "2026-03-15T11:00:00Z"},
        lambda t: "2026-03-10T09" <= (t["due_at"] or "") < "2026-03-15T11",
    ),
    # Completed at 12:08 ("Draft report") and 12:09 ("email Bob"); after is inclusive.
    ({"completed_after": "2026-03-15T12:09:00Z"}, lambda t: t["title"] == "email Bob"),
    ({"completed_before": "2026-03-15T12:09:00Z"}, lambda t: t["title"] == "Draft report"),
    (
        {"completed_after": "2026-03-15T13:00:00+01:00", "status": "pending"},
        lambda t: False,
    ),
    (
        {"completed_before": "2026-03-16T00:00:00Z", "tag": "shop"},
        lambda t: t["title"] == "email Bob",
    ),
    # The clock reads 12:10 on 2026-03-15 by now: "fix bike" (11:00) is overdue too.
    ({"overdue": "true"}, lambda t: not t["completed"] and (t["due_at"] or "9") < "2026-03-15T12"),
    ({"overdue": "false"}, lambda t: True),
    (
        {"status": "pending", "tag": "home", "priority": "medium"},
        lambda t: not t["completed"] and "home" in t["tags"] and t["priority"] == "medium",
    ),
    (
        {"status": "completed", "tag": "work", "q": "r"},
        lambda t: t["completed"] and "work" in t["tags"] and "r" in t["title"].lower(),
    ),
    (
        {"q": "a", "priority": "medium", "due_before": "2026-12-31T00:00:00Z"},
        lambda t: (
            "a" in f"{t['title']} {t['description']}".lower()
            and t["priority"] == "medium"
            and t["due_at"] is not None
        ),
    ),
    (
        {"overdue": "true", "tag": "shop", "status": "pending"},
        lambda t: not t["completed"] and "shop" in t["tags"] and t["due_at"] is not None,
    ),
]


# Ids from the query alone: a lambda's default name carries its address, which differs
# between pytest-xdist's workers.
@pytest.mark.parametrize(
    ("params", "keep"), FILTERS, ids=lambda v: str(v)[:60] if isinstance(v, dict) else "keep"
)
@pytest.mark.parametrize("sort", ["created", "title", "due", "priority"])
async def test_filters_and_combinations(
    client: httpx.AsyncClient,
    alice: User,
    tasks: list[dict[str, Any]],
    params: dict[str, Any],
    keep: Any,
    sort: str,
) -> None:
    walked, totals = await walk(client, alice, {**params, "sort": sort, "limit": 2})
    expected = [task for task in tasks if keep(task)]
    assert sorted(ids(walked)) == sorted(ids(expected))
    assert len(set(ids(walked))) == len(walked)
    assert set(totals) == {len(expected)}


async def test_overdue_follows_the_clock(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]], clock: FrozenClock
) -> None:
    before, _ = await walk(client, alice, {"overdue": "true"})
    clock.advance(days=10)
    after, _ = await walk(client, alice, {"overdue": "true"})
    assert len(after) > len(before)
    assert all(task["due_at"] < "2026-03-25T12:10" for task in after)


async def test_totals_follow_completion_and_deletion(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    async def totals() -> tuple[int, int, int]:
        counts = []
        for status in ("all", "pending", "completed"):
            response = await client.get(
                "/api/tasks", params={"status": status, "limit": 1}, headers=alice.headers
            )
            counts.append(int(response.headers["x-total-count"]))
        return counts[0], counts[1], counts[2]

    assert await totals() == (8, 6, 2)
    await client.patch(f"/api/tasks/{tasks[0]['id']}/complete", headers=alice.headers)
    assert await totals() == (8, 5, 3)
    await client.delete(f"/api/tasks/{tasks[3]['id']}", headers=alice.headers)
    assert await totals() == (7, 5, 2)
    await client.delete(f"/api/tasks/{tasks[1]['id']}", headers=alice.headers)
    assert await totals() == (6, 4, 2)


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_bounds_are_accepted(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]], limit: int
) -> None:
    response = await client.get("/api/tasks", params={"limit": limit}, headers=alice.headers)
    assert len(response.json()) == min(limit, len(tasks))
    assert ("link" in response.headers) == (limit < len(tasks))


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": -1},
        {"status": "done"},
        {"priority": "urgent"},
        {"sort": "importance"},
        {"sort": "due_at"},
        {"order": "up"},
        {"due_before": "2026-03-15T00:00:00"},
        {"due_after": "yesterday"},
        {"completed_after": "1700000000"},
        {"completed_before": "2026-03-15"},
        {"overdue": "maybe"},
        {"tag": ""},
        {"tag": "t" * 31},
        {"tag": [f"t{i}" for i in range(11)]},
        {"q": "q" * 201},
    ],
    ids=lambda params: str(params)[:50],
)
async def test_invalid_query_parameters_are_422(
    client: httpx.AsyncClient, alice: User, params: dict[str, Any]
) -> None:
    response = await client.get("/api/tasks", params=params, headers=alice.headers)
    detail = assert_error(response, 422, "validation_error")["detail"]
    assert detail[0]["loc"][0] == "query"


# --- cursors -------------------------------------------------------------------------------


def forge(payload: Any) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def first_cursor(client: httpx.AsyncClient, user: User, params: dict[str, Any]) -> str:
    response = await client.get("/api/tasks", params={**params, "limit": 1}, headers=user.headers)
    link = response.headers["link"]
    return link[link.index("cursor=") + len("cursor=") : link.index(">")]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "e30",  # {}
        forge([1, 2]),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00+00:00"}),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00+00:00", "i": "7"}),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00+00:00", "i": 0}),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00+00:00", "i": 2**63}),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00", "i": 5}),
        forge({"s": "created", "o": "desc", "k": "not a time", "i": 5}),
        forge({"s": "created", "o": "desc", "k": 12, "i": 5}),
        forge({"s": "created", "o": "desc", "k": None, "i": 5}),
        forge({"s": "created", "o": "desc", "k": "2026-03-15T12:00:00+00:00", "i": 5, "x": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "",
    ],
    ids=lambda cursor: cursor[:30] or "empty",
)
async def test_an_invalid_cursor_is_400(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]], cursor: str
) -> None:
    response = await client.get("/api/tasks", params={"cursor": cursor}, headers=alice.headers)
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize(
    ("minted_for", "used_with"),
    [
        ({"sort": "created"}, {"sort": "title"}),
        ({"sort": "title"}, {"sort": "created"}),
        ({"sort": "due"}, {"sort": "priority"}),
        ({"sort": "created"}, {"sort": "created", "order": "asc"}),
        ({"sort": "title", "order": "desc"}, {"sort": "title"}),
    ],
)
async def test_a_cursor_of_another_sort_or_order_is_400(
    client: httpx.AsyncClient,
    alice: User,
    tasks: list[dict[str, Any]],
    minted_for: dict[str, str],
    used_with: dict[str, str],
) -> None:
    cursor = await first_cursor(client, alice, minted_for)
    response = await client.get(
        "/api/tasks", params={**used_with, "cursor": cursor}, headers=alice.headers
    )
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("priority", "urgent"),
        ("priority", 3),
        ("priority", None),
        ("title", 3),
        # Text PostgreSQL cannot store: once a 500 (the driver's encoding error) and a 422.
        ("title", "\ud800"),
        ("title", "nul\x00"),
    ],
    ids=["unknown-priority", "number", "null", "number-title", "lone-surrogate", "nul"],
)
async def test_a_cursor_with_a_bad_key_for_its_sort_is_400(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]], sort: str, key: Any
) -> None:
    cursor = forge({"s": sort, "o": "desc", "k": key, "i": 5})
    response = await client.get(
        "/api/tasks",
        params={"sort": sort, "order": "desc", "cursor": cursor},
        headers=alice.headers,
    )
    assert_error(response, 400, "invalid_cursor")


async def test_a_cursor_issued_before_the_shared_codec_still_continues(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    # Minted by main at f23752f: created, desc, after (2026-11-27T14:30:00.123456Z, id 42).
    issued = (
        "eyJzIjogImNyZWF0ZWQiLCAibyI6ICJkZXNjIiwgImsiOiAiMjAyNi0xMS0yN1QxNDozMDowMC4xMjM0NTYr"
        "MDA6MDAiLCAiaSI6IDQyfQ"
    )
    response = await client.get("/api/tasks", params={"cursor": issued}, headers=alice.headers)
    assert response.status_code == 200, response.text
    # Every task was created in March 2026, before the cursor's position.
    assert response.json() == by(tasks, "created_at", reverse=True)


async def test_a_walk_by_title_continues_past_the_longest_non_ascii_titles(
    client: httpx.AsyncClient, alice: User
) -> None:
    # Each cursor carries a 200-character title of 4-byte UTF-8 characters.
    created = [await create(client, alice, title="\U0001f600" * 199 + c) for c in "cab"]
    walked, _ = await walk(client, alice, {"sort": "title", "limit": 1})
    assert ids(walked) == ids(by(created, "title"))


async def test_a_cursor_without_a_due_date_continues_among_undated_tasks(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]]
) -> None:
    walked, _ = await walk(client, alice, {"sort": "due", "order": "desc", "limit": 1})
    # The first page held an undated task, so the cursor's key was null: still a valid cursor.
    assert walked[0]["due_at"] is None
    assert ids(walked) == ids(by(tasks, "due_at", reverse=True))


async def test_a_cursor_from_another_user_shows_nothing_of_theirs(
    client: httpx.AsyncClient, alice: User, bob: User, tasks: list[dict[str, Any]]
) -> None:
    cursor = await first_cursor(client, alice, {})
    response = await client.get("/api/tasks", params={"cursor": cursor}, headers=bob.headers)
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"


async def test_timestamps_keep_their_microseconds_across_pages(
    client: httpx.AsyncClient, alice: User, clock: FrozenClock
) -> None:
    clock.now = datetime.fromisoformat("2026-03-15T12:00:00.000001+00:00")
    for _ in range(3):
        await create(client, alice)
        clock.advance(microseconds=1)
    walked, _ = await walk(client, alice, {"limit": 1, "order": "asc"})
    assert [task["created_at"] for task in walked] == [
        "2026-03-15T12:00:00.000001Z",
        "2026-03-15T12:00:00.000002Z",
        "2026-03-15T12:00:00.000003Z",
    ]


@pytest.mark.parametrize("params", [{"q": "a\x00b"}, {"tag": "a\x00b"}])
async def test_nul_in_a_text_filter_is_422_not_500(
    client: httpx.AsyncClient, alice: User, tasks: list[dict[str, Any]], params: dict[str, str]
) -> None:
    response = await client.get("/api/tasks", params=params, headers=alice.headers)
    assert_error(response, 422, "invalid_character")


async def test_nul_in_a_text_filter_is_422_on_the_engine_path(
    committed_client: httpx.AsyncClient, alice: User
) -> None:
    # The committed app reads pages straight through the driver: its errors are mapped too.
    response = await committed_client.get(
        "/api/tasks", params={"q": "a\x00b"}, headers=alice.headers
    )
    assert_error(response, 422, "invalid_character")
