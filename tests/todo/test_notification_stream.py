"""``GET /api/notifications/stream`` over real HTTP (uvicorn on 127.0.0.1, real commits):
each user hears only their own notifications; ``Last-Event-ID`` resumes with a bounded
backlog; keepalive comments flow while nothing happens; the stream ends with the token; one
process serves a bounded number of streams per user and in all, and a stream's slot is free
again once it ends, however it ends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FrozenClock
from shared.db import Database
from tests.support.errors import assert_error
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer
from tests.todo.conftest import NOW, User, create
from todo_service.app import create_app
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings

PER_USER = 3
IN_ALL = 5


@pytest.fixture
def stream_settings(todo_settings: TodoSettings) -> TodoSettings:
    return todo_settings.model_copy(
        update={
            "notifications_poll_seconds": 0.05,
            "notifications_keepalive_seconds": 0.3,
            "notifications_backlog_max": 3,
            "notifications_streams_per_user": PER_USER,
            "notifications_streams_max": IN_ALL,
        }
    )


@pytest.fixture
async def base(
    stream_settings: TodoSettings,
    committed_database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[str]:
    app = create_app(
        stream_settings, db=committed_database, verifier=issuer.verifier(), clock=clock
    )
    async with live_server(app) as url:
        yield url


@pytest.fixture
async def http(base: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def fire(http: httpx.AsyncClient, db: Database, user: User, title: str) -> None:
    """One new notification for ``user`` (a task whose reminder is due at NOW, fired)."""
    await create(
        http,
        user,
        title=title,
        due_at=(NOW + timedelta(minutes=5)).isoformat(),
        reminders=[{"before_due_minutes": 5}],
    )
    assert await fire_due(db, now=NOW, batch=10) == 1


class Reader:
    """The events and comments of one open stream, read with a bound on the wait."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines
        self.comments: list[str] = []

    async def next_event(self, wait: float = 5.0) -> dict[str, Any] | None:
        """The next event's fields (``data`` parsed); None when the stream ended."""
        fields: dict[str, Any] = {}
        async with asyncio.timeout(wait):
            async for line in self.lines:
                if not line:
                    if "event" in fields:
                        fields["data"] = json.loads(fields["data"])
                        return fields
                    fields = {}
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
        return None


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.Response, Reader]]:
    async with http.stream("GET", "/api/notifications/stream", headers=headers) as response:
        yield response, Reader(response.aiter_lines())


async def test_each_user_hears_only_their_own_notifications(
    http: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    async with stream(http, alice.headers) as (response, alices):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        await asyncio.sleep(0.2)  # the stream has read where it starts
        await fire(http, committed_database, bob, "bob's")
        await fire(http, committed_database, alice, "alice's")
        event = await alices.next_event()
    assert event is not None
    assert event["event"] == "notification"
    assert event["data"]["task_title"] == "alice's"
    assert event["id"] == str(event["data"]["id"])
    bobs = (await http.get("/api/notifications", headers=bob.headers)).json()
    assert [n["task_title"] for n in bobs] == ["bob's"]


async def test_a_resumed_stream_sends_the_missed_ones_bounded_then_new_ones(
    http: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    await fire(http, committed_database, alice, "seen")
    seen = (await http.get("/api/notifications", headers=alice.headers)).json()[0]["id"]
    for n in range(5):
        await fire(http, committed_database, alice, f"missed {n}")
    await fire(http, committed_database, bob, "bob's")

    headers = {**alice.headers, "Last-Event-ID": str(seen)}
    async with stream(http, headers) as (_, reader):
        backlog = [await reader.next_event() for _ in range(3)]
        # The newest three of the five missed (the bound), oldest first.
        assert [e["data"]["task_title"] for e in backlog if e] == [
            "missed 2",
            "missed 3",
            "missed 4",
        ]
        await fire(http, committed_database, alice, "live")
        live = await reader.next_event()
    assert live is not None
    assert live["data"]["task_title"] == "live"


async def test_a_quiet_stream_sends_keepalives(http: httpx.AsyncClient, alice: User) -> None:
    async with stream(http, alice.headers) as (_, reader):
        with pytest.raises(TimeoutError):
            await reader.next_event(wait=3.0)  # several keepalive periods, polls included
    assert reader.comments.count("keepalive") >= 2


async def test_the_stream_ends_when_the_token_expires(
    http: httpx.AsyncClient, issuer: TestIssuer, alice: User
) -> None:
    token = issuer.mint(alice.sub, exp=int(time.time()) + 2)
    started = time.monotonic()
    async with stream(http, {"Authorization": f"Bearer {token}"}) as (response, reader):
        assert response.status_code == 200
        assert await reader.next_event(wait=8) is None
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", str(2**63), "9" * 30])
async def test_a_malformed_last_event_id_is_400(
    http: httpx.AsyncClient, alice: User, value: str
) -> None:
    response = await http.get(
        "/api/notifications/stream", headers={**alice.headers, "Last-Event-ID": value}
    )
    assert_error(response, 400, "invalid_last_event_id")


async def open_streams(
    stack: AsyncExitStack, http: httpx.AsyncClient, user: User, count: int
) -> list[Reader]:
    """``count`` streams of ``user``, each open (its first bytes read) until ``stack`` ends."""
    readers = []
    for _ in range(count):
        response, reader = await stack.enter_async_context(stream(http, user.headers))
        # Held until the stack ends: a line iterator collected early closes its connection.
        stack.push_async_callback(reader.lines.aclose)  # type: ignore[attr-defined]
        assert response.status_code == 200
        async with asyncio.timeout(5):
            assert await anext(reader.lines) == "retry: 3000"
        readers.append(reader)
    return readers


async def refused(http: httpx.AsyncClient, user: User) -> bool:
    """Whether ``user``'s next stream is refused for want of a slot (an accepted one is
    closed again at once)."""
    async with stream(http, user.headers) as (response, _):
        if response.status_code == 200:
            return False
        await response.aread()
        body = assert_error(response, 429, "too_many_streams")
        assert int(response.headers["retry-after"]) >= 1
        assert "stream" in body["detail"]
        return True


async def accepted_soon(http: httpx.AsyncClient, user: User, *, within: float = 5.0) -> bool:
    """Whether a stream of ``user`` is accepted within ``within`` seconds (a closed stream's
    slot frees once the server has seen the client go)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await refused(http, user):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_user_past_the_per_user_bound_is_refused_with_429(
    http: httpx.AsyncClient, alice: User
) -> None:
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER)
        assert await refused(http, alice)
        assert await refused(http, alice)  # a refusal takes no slot and frees none


async def test_a_closed_stream_frees_its_slot_for_a_new_one(
    http: httpx.AsyncClient, alice: User
) -> None:
    async with AsyncExitStack() as outer:
        await open_streams(outer, http, alice, PER_USER - 1)
        async with AsyncExitStack() as last:
            await open_streams(last, http, alice, 1)
            assert await refused(http, alice)
        # The client went away: the server sees the disconnect and gives the slot back.
        assert await accepted_soon(http, alice)
        await open_streams(outer, http, alice, 1)
        assert await refused(http, alice)


async def test_another_users_streams_are_not_affected(
    http: httpx.AsyncClient, alice: User, bob: User
) -> None:
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER)
        assert await refused(http, alice)
        await open_streams(stack, http, bob, 1)


async def test_the_process_refuses_streams_past_its_bound_in_all(
    http: httpx.AsyncClient, issuer: TestIssuer, alice: User, bob: User
) -> None:
    carol = User("carol-subject", issuer.auth("carol-subject"))
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER)
        await open_streams(stack, http, bob, IN_ALL - PER_USER)
        assert await refused(http, carol)
    assert await accepted_soon(http, carol)


async def test_a_stream_ended_by_its_tokens_expiry_frees_its_slot(
    http: httpx.AsyncClient, issuer: TestIssuer, alice: User
) -> None:
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER - 1)
        # Minted last, with time to open the stream and be refused another on a loaded machine.
        expiring = {"Authorization": f"Bearer {issuer.mint(alice.sub, exp=int(time.time()) + 5)}"}
        async with stream(http, expiring) as (response, reader):
            assert response.status_code == 200
            assert await refused(http, alice)
            assert await reader.next_event(wait=12) is None  # the server ended it
        assert await accepted_soon(http, alice)


async def test_head_of_the_stream_answers_its_headers_and_takes_no_slot_after(
    http: httpx.AsyncClient, alice: User
) -> None:
    for _ in range(PER_USER + 1):
        async with asyncio.timeout(5):
            head = await http.head("/api/notifications/stream", headers=alice.headers)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""
    # Each ended with its answer: the slots it took are free again.
    assert await accepted_soon(http, alice)
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER)


async def test_a_malformed_last_event_id_takes_no_slot(
    http: httpx.AsyncClient, alice: User
) -> None:
    for _ in range(PER_USER + 1):
        response = await http.get(
            "/api/notifications/stream", headers={**alice.headers, "Last-Event-ID": "x"}
        )
        assert_error(response, 400, "invalid_last_event_id")
    async with AsyncExitStack() as stack:
        await open_streams(stack, http, alice, PER_USER)
