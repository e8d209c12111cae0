"""The chat API without the todo service: conversations, isolation, tokens, bad input, outages.

Greetings and help are answered without touching any tool, so these turns need no todo
service; the todo URL points at a closed port, which also proves they make no call.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.agents import rules
from shared.pagination import encode_cursor
from tests.chat.conftest import ChatAppFactory, User, conversation_count, stored_messages
from tests.support.errors import assert_error
from tests.support.serving import live_server, serve
from tests.support.tokens import TestIssuer, bad_tokens


async def say(client: httpx.AsyncClient, user: User, message: str, **fields: Any) -> httpx.Response:
    return await client.post("/api/chat", json={"message": message, **fields}, headers=user.headers)


def parse_sse(body: str) -> list[tuple[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_greeting_starts_a_conversation_without_tools(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await say(client, alice, "Hello there!")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "conversation_id": body["conversation_id"],
        "response": rules.GREETING,
        "tool_calls": [],
    }
    stored = await stored_messages(committed_sessionmaker, body["conversation_id"])
    assert [(m.role, m.content, m.user_id) for m in stored] == [
        ("user", "Hello there!", alice.sub),
        ("assistant", rules.GREETING, alice.sub),
    ]
    assert stored[1].tool_calls == []


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("what can you do?", rules.HELP),
        ("thanks!", rules.THANKS),
        ("what is the weather like on Mars", rules.UNKNOWN),
        ("mark it as not done", rules.NO_REFERENCE),
        ("Add a task", rules.ASK_TITLE),
    ],
)
async def test_small_talk_is_answered_without_touching_tasks(
    client: httpx.AsyncClient, alice: User, message: str, reply: str
) -> None:
    response = await say(client, alice, message)
    assert response.status_code == 200, response.text
    assert response.json()["response"] == reply
    assert response.json()["tool_calls"] == []


async def test_a_conversation_continues_and_is_listed_newest_first(
    client: httpx.AsyncClient, alice: User, clock: Any
) -> None:
    first = (await say(client, alice, "hi")).json()["conversation_id"]
    clock.advance(minutes=1)
    second = (await say(client, alice, "hello")).json()["conversation_id"]
    clock.advance(minutes=1)
    again = await say(client, alice, "thanks", conversation_id=first)
    assert again.json()["conversation_id"] == first

    listed = await client.get("/api/conversations", headers=alice.headers)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [first, second]
    assert listed.headers["x-total-count"] == "2"
    assert "link" not in listed.headers
    assert listed.json()[1]["title"] == "hello"

    detail = await client.get(f"/api/conversations/{first}", headers=alice.headers)
    assert detail.status_code == 200
    assert [m["role"] for m in detail.json()["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert detail.headers["x-total-count"] == "4"


async def test_conversations_and_messages_are_keyset_paginated(
    client: httpx.AsyncClient, alice: User, clock: Any
) -> None:
    ids = []
    for n in range(5):
        clock.advance(seconds=1)
        ids.append((await say(client, alice, f"hello {n}")).json()["conversation_id"])

    seen: list[int] = []
    url: str | None = "/api/conversations?limit=2"
    for _ in range(5):
        if url is None:
            break
        page = await client.get(url, headers=alice.headers)
        assert page.status_code == 200
        assert page.headers["x-total-count"] == "5"
        seen += [c["id"] for c in page.json()]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        if url:
            assert url.startswith("/api/conversations?")
            assert 'rel="next"' in link
    assert seen == list(reversed(ids))

    conversation = ids[0]
    for _ in range(2):
        await say(client, alice, "thanks", conversation_id=conversation)
    first = await client.get(f"/api/conversations/{conversation}?limit=4", headers=alice.headers)
    assert first.headers["x-total-count"] == "6"
    link = first.headers["link"]
    second = await client.get(link[1 : link.index(">")], headers=alice.headers)
    contents = [m["content"] for m in first.json()["messages"] + second.json()["messages"]]
    assert contents[0] == "hello 0"
    assert len(contents) == 6
    assert "link" not in second.headers


async def test_messages_newest_first_page_back_to_the_oldest(
    client: httpx.AsyncClient, alice: User
) -> None:
    conversation = (await say(client, alice, "hello")).json()["conversation_id"]
    for _ in range(2):
        await say(client, alice, "thanks", conversation_id=conversation)
    url: str | None = f"/api/conversations/{conversation}?limit=4&order=desc"
    pages: list[list[int]] = []
    while url is not None and len(pages) < 3:
        page = await client.get(url, headers=alice.headers)
        assert page.status_code == 200, page.text
        assert page.headers["x-total-count"] == "6"
        pages.append([m["id"] for m in page.json()["messages"]])
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    oldest_first = await client.get(f"/api/conversations/{conversation}", headers=alice.headers)
    ids = [m["id"] for m in oldest_first.json()["messages"]]
    assert pages == [ids[:1:-1], ids[1::-1]]
    assert oldest_first.json()["messages"][0]["content"] == "hello"
    unknown = await client.get(
        f"/api/conversations/{conversation}?order=newest", headers=alice.headers
    )
    assert_error(unknown, 422, "validation_error")
    # A cursor continues in its own order only: one of each order, sent with the other.
    newest = await client.get(
        f"/api/conversations/{conversation}?limit=1&order=desc", headers=alice.headers
    )
    oldest = await client.get(f"/api/conversations/{conversation}?limit=1", headers=alice.headers)
    for page, order in ((newest, "asc"), (oldest, "desc")):
        link = page.headers["link"]
        cursor = link[link.index("cursor=") + len("cursor=") : link.index(">")]
        crossed = await client.get(
            f"/api/conversations/{conversation}?order={order}&cursor={cursor}",
            headers=alice.headers,
        )
        assert_error(crossed, 400, "invalid_cursor")


@pytest.mark.parametrize("spelling", ["%0A{id}", "%20{id}", "%09{id}%20"])
async def test_a_conversations_next_link_is_a_valid_reference_however_its_id_was_spelled(
    make_chat_app: ChatAppFactory, alice: User, spelling: str
) -> None:
    """The id in the path may carry whitespace the route's integer accepts (``%0A1``); the
    page's ``Link`` repeats the path, so it must escape it: a raw line feed is a header no
    server can send (the connection was dropped with a traceback), a raw space breaks it."""
    async with live_server(make_chat_app()) as url, httpx.AsyncClient(base_url=url) as client:
        conversation = (await say(client, alice, "hello")).json()["conversation_id"]
        path = "/api/conversations/" + spelling.format(id=conversation)
        first = await client.get(f"{path}?limit=1", headers=alice.headers)
        assert first.status_code == 200, first.text
        link = first.headers["link"]
        target = link[1 : link.index(">")]
        assert all(0x21 <= ord(char) < 0x7F for char in target), link
        assert target.startswith(path + "?limit=1&cursor=")
        second = await client.get(target, headers=alice.headers)
    assert second.status_code == 200, second.text
    assert [m["role"] for m in first.json()["messages"] + second.json()["messages"]] == [
        "user",
        "assistant",
    ]


async def test_a_broken_cursor_is_a_400(client: httpx.AsyncClient, alice: User) -> None:
    for cursor in ("not-base64!", "WzFd", "eyJhIjoxfQ"):
        response = await client.get(f"/api/conversations?cursor={cursor}", headers=alice.headers)
        assert_error(response, 400, "invalid_cursor")


OUT_OF_RANGE_IDS = [10**20, 2**63, 0, -1, 1.5, 1e3, True, "7", None]


@pytest.mark.parametrize("last_id", OUT_OF_RANGE_IDS, ids=repr)
async def test_a_cursor_id_outside_bigint_or_not_an_integer_is_invalid_cursor(
    client: httpx.AsyncClient, alice: User, last_id: Any
) -> None:
    conversation = (await say(client, alice, "hello")).json()["conversation_id"]
    lists = encode_cursor(["2026-11-27T14:30:00+00:00", last_id])
    response = await client.get(f"/api/conversations?cursor={lists}", headers=alice.headers)
    assert_error(response, 400, "invalid_cursor")
    messages = encode_cursor([last_id])
    response = await client.get(
        f"/api/conversations/{conversation}?cursor={messages}", headers=alice.headers
    )
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("moment", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
async def test_a_cursor_past_the_calendar_in_utc_is_invalid_cursor(
    client: httpx.AsyncClient, alice: User, moment: str
) -> None:
    # Once a 500: the driver could not send it in UTC.
    await say(client, alice, "hello")
    response = await client.get(
        f"/api/conversations?cursor={encode_cursor([moment, 5])}", headers=alice.headers
    )
    assert_error(response, 400, "invalid_cursor")


async def test_cursors_issued_before_the_shared_codec_still_continue(
    client: httpx.AsyncClient, alice: User
) -> None:
    first = (await say(client, alice, "hello")).json()["conversation_id"]
    second = (await say(client, alice, "hi")).json()["conversation_id"]
    # Minted by main at f23752f: after (2026-11-27T14:30:00.123456Z, id 12), then after id 9.
    issued = "WyIyMDI2LTExLTI3VDE0OjMwOjAwLjEyMzQ1NiswMDowMCIsMTJd"
    listed = await client.get(f"/api/conversations?cursor={issued}", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    # Both were last active at the fixed clock's 14:30:00.000000, before the cursor.
    assert [c["id"] for c in listed.json()] == [second, first]
    messages = await client.get(f"/api/conversations/{first}?cursor=Wzld", headers=alice.headers)
    assert messages.status_code == 200, messages.text


async def test_a_cursor_at_the_largest_bigint_is_an_empty_page(
    client: httpx.AsyncClient, alice: User
) -> None:
    conversation = (await say(client, alice, "hello")).json()["conversation_id"]
    last = encode_cursor([2**63 - 1])
    response = await client.get(
        f"/api/conversations/{conversation}?cursor={last}", headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == []


async def test_deleting_a_conversation_removes_its_messages(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    conversation = (await say(client, alice, "hi")).json()["conversation_id"]
    response = await client.delete(f"/api/conversations/{conversation}", headers=alice.headers)
    assert response.status_code == 204
    assert await stored_messages(committed_sessionmaker) == []
    gone = await client.get(f"/api/conversations/{conversation}", headers=alice.headers)
    assert_error(gone, 404, "conversation_not_found")
    again = await client.delete(f"/api/conversations/{conversation}", headers=alice.headers)
    assert_error(again, 404, "conversation_not_found")


async def test_other_users_conversation_is_404_on_every_route(
    client: httpx.AsyncClient,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    conversation = (await say(client, alice, "hi")).json()["conversation_id"]
    before = await stored_messages(committed_sessionmaker)

    assert_error(await client.get(f"/api/conversations/{conversation}", headers=bob.headers), 404)
    assert_error(
        await client.delete(f"/api/conversations/{conversation}", headers=bob.headers), 404
    )
    assert_error(await say(client, bob, "hello", conversation_id=conversation), 404)
    listed = await client.get("/api/conversations", headers=bob.headers)
    assert listed.json() == []
    assert listed.headers["x-total-count"] == "0"

    assert await stored_messages(committed_sessionmaker) == before
    assert await conversation_count(committed_sessionmaker) == 1


async def test_an_unknown_conversation_id_is_404(client: httpx.AsyncClient, alice: User) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/api/conversations/999999", headers=alice.headers)
        assert_error(response, 404, "conversation_not_found")


@pytest.mark.parametrize("conversation_id", ["abc", "0", "-1", str(2**63), str(2**70), "1.5"])
async def test_a_malformed_conversation_id_is_422_as_a_tasks_is(
    client: httpx.AsyncClient, alice: User, conversation_id: str
) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"/api/conversations/{conversation_id}", headers=alice.headers
        )
        detail = assert_error(response, 422, "validation_error")["detail"]
        assert detail[0]["loc"] == ["path", "conversation_id"]


async def test_posting_into_an_unknown_conversation_is_404_and_stores_nothing(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert_error(await say(client, alice, "hi", conversation_id=424242), 404)
    assert await conversation_count(committed_sessionmaker) == 0


async def test_a_restarted_service_continues_the_conversation(
    make_chat_app: ChatAppFactory, alice: User
) -> None:
    async with serve(make_chat_app()) as client:
        conversation = (await say(client, alice, "Add a task")).json()["conversation_id"]
    # A new process: nothing in memory. The pending question is read back from the database,
    # so the answer is understood as the new task's title (and needs the todo service, down).
    async with serve(make_chat_app()) as client:
        answer = await say(client, alice, "buy milk", conversation_id=conversation)
        assert_error(answer, 503, "todo_unavailable")
        detail = await client.get(f"/api/conversations/{conversation}", headers=alice.headers)
        contents = [m["content"] for m in detail.json()["messages"]]
        assert contents == ["Add a task", rules.ASK_TITLE, "buy milk"]


async def test_todo_service_down_is_503_and_keeps_only_the_user_message(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await say(client, alice, "Show me all my tasks")
    assert_error(response, 503, "todo_unavailable")
    stored = await stored_messages(committed_sessionmaker)
    assert [(m.role, m.content) for m in stored] == [("user", "Show me all my tasks")]
    listed = await client.get("/api/conversations", headers=alice.headers)
    assert [c["title"] for c in listed.json()] == ["Show me all my tasks"]


# --- streaming -------------------------------------------------------------------------------

SSE = {"Accept": "text/event-stream"}


async def test_a_streamed_turn_sends_message_then_done(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.post(
        "/api/chat", json={"message": "hi"}, headers={**alice.headers, **SSE}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    events = parse_sse(response.text)
    conversation = events[-1][1]["conversation_id"]
    assert events == [
        ("message", {"response": rules.GREETING}),
        ("done", {"conversation_id": conversation}),
    ]
    stored = await stored_messages(committed_sessionmaker, conversation)
    assert [m.role for m in stored] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("accept", "streamed"),
    [
        ("text/event-stream;q=0, application/json", False),
        ("application/json, text/event-stream ; q=0.0", False),
        ("application/json;q=0.5, text/event-stream;q=0.8", True),
        ("TEXT/Event-Stream", True),
    ],
)
async def test_the_turn_streams_only_when_the_client_accepts_a_stream(
    client: httpx.AsyncClient, alice: User, accept: str, streamed: bool
) -> None:
    # q=0 is "not acceptable" (RFC 9110 12.4.2), not a mention to match as text.
    response = await client.post(
        "/api/chat", json={"message": "hi"}, headers={**alice.headers, "Accept": accept}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "text/event-stream" if streamed else "application/json"
    )


async def test_a_failure_after_the_stream_began_is_an_error_event(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.post(
        "/api/chat", json={"message": "What's pending?"}, headers={**alice.headers, **SSE}
    )
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]
    assert error["code"] == "todo_unavailable"
    assert error["status"] == 503
    assert error["request_id"] == response.headers["x-request-id"]
    assert [m.role for m in await stored_messages(committed_sessionmaker)] == ["user"]


async def test_errors_before_the_stream_are_plain_http_errors(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    conversation = (await say(client, alice, "hi")).json()["conversation_id"]
    response = await client.post(
        "/api/chat",
        json={"message": "hi", "conversation_id": conversation},
        headers={**bob.headers, **SSE},
    )
    assert_error(response, 404, "conversation_not_found")
    bad = await client.post("/api/chat", json={"message": ""}, headers={**alice.headers, **SSE})
    assert_error(bad, 422, "validation_error")


# --- tokens and bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(bad_tokens(TestIssuer())))
async def test_bad_tokens_are_401_everywhere_and_store_nothing(
    client: httpx.AsyncClient,
    issuer: TestIssuer,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
) -> None:
    headers = bad_tokens(issuer)[name]
    for method, url, body in (
        ("POST", "/api/chat", {"message": "hi"}),
        ("GET", "/api/conversations", None),
        ("GET", "/api/conversations/1", None),
        ("DELETE", "/api/conversations/1", None),
    ):
        response = await client.request(method, url, json=body, headers=headers)
        assert_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    assert await conversation_count(committed_sessionmaker) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": ""},
        {"message": "   "},
        {"message": "x" * 4001},
        {"message": 42},
        {"message": "hi", "user_id": "bob-subject"},
        {"message": "hi", "conversation_id": 0},
        {"message": "hi", "conversation_id": "abc"},
        {"message": "hi", "timezone": "Mars/Olympus_Mons"},
        {"message": "hi", "timezone": "../../etc/passwd"},
        {"message": "hi", "timezone": ""},
        ["hi"],
    ],
)
async def test_bad_bodies_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    body: Any,
) -> None:
    response = await client.post("/api/chat", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error")
    assert await conversation_count(committed_sessionmaker) == 0


async def test_malformed_and_oversized_bodies_are_rejected(
    client: httpx.AsyncClient,
    alice: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    not_json = await client.post(
        "/api/chat",
        content=b"{not json",
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_error(not_json, 422, "validation_error")
    huge = await client.post(
        "/api/chat",
        content=json.dumps({"message": "x" * (2 * 1024 * 1024)}).encode(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_error(huge, 413, "payload_too_large")
    assert await conversation_count(committed_sessionmaker) == 0


async def test_the_longest_message_and_a_time_zone_are_accepted(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await say(client, alice, "hi " + "x" * 3997, timezone="America/New_York")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", f"cursor={'a' * 513}"])
async def test_bad_page_parameters_are_422(
    client: httpx.AsyncClient, alice: User, query: str
) -> None:
    response = await client.get(f"/api/conversations?{query}", headers=alice.headers)
    assert_error(response, 422, "validation_error")


async def test_two_authorization_headers_are_400_and_store_nothing(
    client: httpx.AsyncClient,
    alice: User,
    bob: User,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = [("Authorization", alice.headers["Authorization"])]
    headers.append(("Authorization", bob.headers["Authorization"]))
    turn = await client.post("/api/chat", json={"message": "hi"}, headers=headers)
    listing = await client.get("/api/conversations", headers=headers)
    assert_error(turn, 400, "duplicate_header")
    assert_error(listing, 400, "duplicate_header")
    assert await conversation_count(committed_sessionmaker) == 0
