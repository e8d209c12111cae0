"""The chat pages: a turn without JavaScript, the streamed turn, history, delete."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.errors import ENVELOPE_KEYS
from tests.support.serving import serve
from tests.web.conftest import (
    Platform,
    WebAppFactory,
    count,
    csrf_of,
    idempotency_key_of,
    problem_of,
    register,
    shown_again,
    sign_in,
)
from web_service.settings import WebSettings


def event_names(text: str) -> list[str]:
    return re.findall(r"^event: (\w+)$", text, re.MULTILINE)


def assert_error_event(text: str, status: int, code: str) -> None:
    """The stream's one event is the platform's error envelope with the status it stands for."""
    data = json.loads(re.search(r"^data: (.*)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert set(data) == {*ENVELOPE_KEYS, "status"}, data
    assert (data["status"], data["code"]) == (status, code), data
    assert data["detail"], data
    assert data["request_id"], data


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
    # What the assistant did, in words rather than the tool's name.
    assert re.search(r'data-testid="tool-call">Add task: [Bb]uy milk</li>', page.text), page.text
    assert "add_task" not in page.text
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


async def test_the_same_turn_form_sent_again_with_another_message_is_another_turn(
    clean: Platform, ann: httpx.AsyncClient
) -> None:
    """Without the script, a turn sent, then the page gone back to and another message sent
    from it: its key with another message is another turn, not the API's refusal of a key
    reused; that message sent twice is still one turn."""
    form = await chat_form(ann)
    first = await ann.post("/chat", data={**form, "message": "add water the plants"})
    assert first.status_code == 303, first.text
    for _ in range(2):
        again = await ann.post("/chat", data={**form, "message": "add feed the cat"})
        assert again.status_code == 303, again.text
    assert await count(clean, "SELECT count(*) FROM todo.tasks") == 2
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 2


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
    answer = await shown_again(ann, await ann.post("/chat", data={**form, "message": "   "}))
    assert answer.status_code == 422
    assert 'data-testid="chat-error"' in answer.text
    # Said at the message box, not again above the page.
    assert 'data-testid="problem"' not in answer.text
    assert await count(clean, "SELECT count(*) FROM chat.messages") == 0
    streamed = await ann.post(
        "/chat/stream",
        data={**form, "message": ""},
        headers={"X-CSRF-Token": form["csrf_token"]},
    )
    assert event_names(streamed.text) == ["error"]
    assert_error_event(streamed.text, 422, "validation_error")


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
    # The conversation's page leads to a question first, which deletes nothing.
    assert f'href="{location}/delete"' in page.text
    question = await ann.get(f"{location}/delete")
    assert question.status_code == 200
    assert "Delete this conversation?" in question.text
    assert f'action="{location}/delete"' in question.text
    assert f'href="{location}"' in question.text  # Keep it
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 1
    assert (await ann.get("/chat/999999/delete")).status_code == 404
    deleted = await ann.post(f"{location}/delete", data={"csrf_token": form["csrf_token"]})
    assert deleted.headers["location"] == "/chat?notice=conversation_deleted"
    assert (await ann.get(location)).status_code == 404
    assert await count(clean, "SELECT count(*) FROM chat.conversations") == 0


async def test_a_long_conversation_opens_at_its_latest_messages(
    clean: Platform, make_web_app: WebAppFactory
) -> None:
    """Two messages a page: the latest turn is shown above the form that continues it, and
    "Earlier messages" goes back a turn a page, the conversation list shown on each."""
    async with serve(make_web_app(chat_page_size=2)) as browser:
        browser.headers["Sec-Fetch-Site"] = "same-origin"
        await register(clean, "ann@example.com")
        await sign_in(browser)
        form = await chat_form(browser)
        location = ""
        for said in ("add first thing", "add second thing", "add third thing"):
            sent = await browser.post("/chat", data={**form, "message": said})
            assert sent.status_code == 303, sent.text
            location = sent.headers["location"]
            form = await chat_form(browser, location)
        shown: list[list[str]] = []
        path: str | None = location
        while path is not None and len(shown) < 4:
            page = await browser.get(path)
            assert page.status_code == 200, page.text
            assert 'data-testid="conversation-link"' in page.text
            log = page.text[page.text.index('data-testid="chat-log"') :]
            shown.append(re.findall(r"add (\w+) thing", log[: log.index("</ol>")]))
            earlier = re.search(r'href="([^"]+)" data-testid="messages-earlier"', page.text)
            path = earlier.group(1).replace("&amp;", "&") if earlier else None
        # An address of the pages before (its messages paged by ``cursor``) opens the latest.
        old_page = await browser.get(f"{location}?cursor=WzJd")
        assert (old_page.status_code, old_page.headers.get("location")) == (303, location)
    assert shown == [["third"], ["second"], ["first"]]


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
    deleted = await ann.post(f"/chat/{bobs}/delete", data={"csrf_token": csrf})
    assert deleted.headers["location"].startswith("/chat?form=")
    shown = await shown_again(ann, deleted)
    assert shown.status_code == 404
    assert "That conversation no longer exists." in problem_of(shown.text)
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


async def _waiting_on_locks(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query ILIKE '%todo.tasks%'"
                )
            )
        ).first()
    assert row is not None
    return int(row[0])


async def test_chat_turns_at_once_are_bounded_per_user_and_in_all(
    clean: Platform, engine: AsyncEngine, make_web_app: WebAppFactory
) -> None:
    """Each turn holds a connection of the web service's gateway pool for as long as it
    runs: one user's turns at once are bounded, and all turns leave connections for pages."""
    await register(clean, "ann@example.com")
    await register(clean, "bob@example.com", name="Bob")
    app = make_web_app(chat_turns_per_user=2, chat_turns_max=3, gateway_max_connections=8)
    async with app.router.lifespan_context(app):
        ann, bob = (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://testserver",
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            for _ in range(2)
        )
        async with ann, bob:
            await sign_in(ann)
            await sign_in(bob, "bob@example.com")
            ann_form, bob_form = await chat_form(ann), await chat_form(bob)

            def turn(client: httpx.AsyncClient, form: dict[str, str], what: str) -> Any:
                data = {**form, "idempotency_key": str(uuid.uuid4()), "message": f"add {what}"}
                return client.post("/chat", data=data)

            async with engine.begin() as lock:
                # The turns' tool calls wait to insert their tasks (reads go on).
                await lock.execute(text("LOCK TABLE todo.tasks IN SHARE MODE"))
                running = [
                    asyncio.ensure_future(turn(ann, ann_form, "tea")),
                    asyncio.ensure_future(turn(ann, ann_form, "cake")),
                    asyncio.ensure_future(turn(bob, bob_form, "bread")),
                ]
                for _ in range(200):
                    if await _waiting_on_locks(engine) == 3:
                        break
                    await asyncio.sleep(0.05)
                assert await _waiting_on_locks(engine) == 3
                # Ann's third turn: past her bound. Bob's second: past the process's.
                refused = await asyncio.wait_for(turn(ann, ann_form, "jam"), 5)
                refused = await asyncio.wait_for(shown_again(ann, refused), 5)
                assert refused.status_code == 429
                assert "Other messages are still being answered." in refused.text
                # Its message is in the box to send again.
                assert ">add jam</textarea>" in refused.text
                streamed = await asyncio.wait_for(
                    bob.post(
                        "/chat/stream",
                        data={**bob_form, "message": "add milk"},
                        headers={"X-CSRF-Token": bob_form["csrf_token"]},
                    ),
                    5,
                )
                assert event_names(streamed.text) == ["error"]
                assert_error_event(streamed.text, 429, "chat_turns_busy")
                # Pages still get connections.
                assert (await asyncio.wait_for(bob.get("/tasks"), 5)).status_code == 200
            answers = await asyncio.gather(*running)
            assert [a.status_code for a in answers] == [303, 303, 303]
            titles = await clean.db.fetch_row(
                "SELECT array_agg(title ORDER BY title) FROM todo.tasks"
            )
            assert titles is not None
            assert titles[0] == ["Bread", "Cake", "Tea"]
            assert await count(clean, "SELECT count(*) FROM chat.conversations") == 3
            assert app.state.web.chat_turns.open_in_all() == 0
            # The bound is of turns at once: the next one goes.
            again = await turn(ann, ann_form, "jam")
            assert again.status_code == 303


def test_chat_turns_can_never_take_every_gateway_connection() -> None:
    with pytest.raises(ValidationError, match="WEB_CHAT_TURNS_MAX"):
        WebSettings(_env_file=None, chat_turns_max=256, gateway_max_connections=256)
