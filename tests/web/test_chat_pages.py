"""The chat pages: a turn without JavaScript, the streamed turn, history, delete."""

from __future__ import annotations

import re

import httpx

from tests.web.conftest import Platform, count, csrf_of, idempotency_key_of


def event_names(text: str) -> list[str]:
    return re.findall(r"^event: (\w+)$", text, re.MULTILINE)


async def chat_form(client: httpx.AsyncClient, path: str = "/chat") -> dict[str, str]:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    conversation = re.search(r'name="conversation_id" value="([^"]*)"', page.text)
    return {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": idempotency_key_of(page.text),
        "conversation_id": conversation.group(1) if conversation else "",
    }


async def test_a_turn_without_javascript_adds_the_task(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    form = await chat_form(ann, "/tasks")
    answer = await ann.post("/chat", data={**form, "message": "add buy milk tomorrow"})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert re.fullmatch(r"/chat/[0-9]+", location)
    page = await ann.get(location)
    assert 'data-testid="chat-message-user"' in page.text
    assert 'data-testid="tool-call"' in page.text
    assert "add_task" in page.text
    assert "buy milk" in (await ann.get("/tasks")).text.lower()
    # The conversation continues in the same thread.
    form = await chat_form(ann, location)
    assert form["conversation_id"] == location.rsplit("/", 1)[1]
    again = await ann.post("/chat", data={**form, "message": "what is pending?"})
    assert again.headers["location"] == location
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 1


async def test_the_same_turn_sent_twice_runs_once(clean: Platform, ann: httpx.AsyncClient) -> None:
    form = await chat_form(ann)
    data = {**form, "message": "add water the plants"}
    first = await ann.post("/chat", data=data)
    second = await ann.post("/chat", data=data)
    assert first.headers["location"] == second.headers["location"]
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1


async def test_a_streamed_turn_relays_tool_calls_and_the_answer(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    form = await chat_form(ann, "/tasks")
    answer = await ann.post(
        "/chat/stream",
        data={**form, "message": "add call mum on friday"},
        headers={"Accept": "text/event-stream", "X-CSRF-Token": form["csrf_token"]},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    names = event_names(answer.text)
    assert names[0] == "tool_call"
    assert "message" in names
    assert names[-1] == "done"
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 1


async def test_an_empty_message_is_refused_with_nothing_sent(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    form = await chat_form(ann)
    answer = await ann.post("/chat", data={**form, "message": "   "})
    assert answer.status_code == 422
    assert 'data-testid="chat-error"' in answer.text
    assert await count(clean, "SELECT count(*) FROM chat.messages") == 0
    streamed = await ann.post(
        "/chat/stream",
        data={**form, "message": ""},
        headers={"X-CSRF-Token": form["csrf_token"]},
    )
    assert event_names(streamed.text) == ["error"]


async def test_conversation_list_history_and_delete(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    form = await chat_form(ann)
    location = (await ann.post("/chat", data={**form, "message": "add <b>bold</b> task"})).headers[
        "location"
    ]
    listing = await ann.get("/chat")
    assert 'data-testid="conversation-link"' in listing.text
    assert "<b>bold</b>" not in listing.text
    page = await ann.get(location)
    assert "<b>bold</b>" not in page.text
    deleted = await ann.post(f"{location}/delete", data={"csrf_token": form["csrf_token"]})
    assert deleted.headers["location"] == "/chat?notice=conversation_deleted"
    assert (await ann.get(location)).status_code == 404
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 0


async def test_another_users_conversation_is_not_found(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    from tests.web.conftest import api_token, register

    await register(clean, "bob@example.com", name="Bob")
    token = (await api_token(clean, "bob@example.com"))["access_token"]
    async with httpx.AsyncClient(base_url=clean.gateway_url) as api:
        turn = await api.post(
            "/api/chat",
            json={"message": "add secret plan"},
            headers={"Authorization": f"Bearer {token}"},
        )
    bobs = turn.json()["conversation_id"]
    assert (await ann.get(f"/chat/{bobs}")).status_code == 404
    csrf = (await chat_form(ann))["csrf_token"]
    assert (await ann.post(f"/chat/{bobs}/delete", data={"csrf_token": csrf})).status_code == 404
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 1


async def test_the_turn_reads_tomorrow_in_the_users_time_zone(
    clean: Platform, browser: httpx.AsyncClient
) -> None:
    from datetime import UTC, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from tests.web.conftest import PASSWORD

    tokyo = ZoneInfo("Asia/Tokyo")
    page = await browser.get("/signup")
    signed_up = await browser.post(
        "/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": "kei@example.com",
            "password": PASSWORD,
            "timezone": "Asia/Tokyo",
        },
    )
    assert signed_up.status_code == 303

    def tomorrow_9am() -> datetime:
        day = datetime.now(tokyo).date() + timedelta(days=1)
        return datetime.combine(day, time(9), tzinfo=tokyo).astimezone(UTC)

    before = tomorrow_9am()
    form = await chat_form(browser)
    await browser.post("/chat", data={**form, "message": "add pay the bill tomorrow"})
    row = await clean.db.fetch_row("SELECT due_at FROM todo.tasks")
    assert row is not None
    assert row[0] in {before, tomorrow_9am()}
