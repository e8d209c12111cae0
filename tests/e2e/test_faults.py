"""Faults on the running platform: a service killed, the database restarted, auth away, todo
away in the middle of chat turns. Real processes, real PostgreSQL, steady traffic.

Each test records its measured figures as test properties; ``tests/e2e/conftest.py`` prints
them at the end of the run ("end-to-end figures"), and docs/testing.md quotes them.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from shared.db import create_engine
from shared.embedded_pg import EmbeddedPostgres
from tests.e2e.stack import Stack
from tests.e2e.traffic import Outcome, Traffic
from tests.e2e.users import User, register_and_login
from tests.support.database import own_postgres
from tests.support.errors import assert_error
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.asyncio(loop_scope="session")

Record = Callable[[str, object], None]

# Generous bounds: the figures themselves are printed, the asserts only catch a regression
# by an order of magnitude on a loaded machine.
KILL_TO_503_BOUND = 5.0
RECOVERY_BOUND = 10.0


def needs(*names: str) -> None:
    missing = [name for name in names if not Stack.available(name)]
    if missing:
        pytest.skip(f"not in this checkout: {', '.join(missing)}")


def statuses(outcomes: list[Outcome]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for outcome in outcomes:
        counted[outcome.status] = counted.get(outcome.status, 0) + 1
    return counted


# --- a service killed during steady traffic ---------------------------------------------------


async def test_killed_todo_is_503_within_a_second_others_keep_answering_and_it_recovers(
    stack: Stack, gateway: httpx.AsyncClient, user: User, record_property: Record
) -> None:
    needs("todo", "chat")
    gateway_pid = stack.pid("gateway")

    async def list_tasks(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.get("/api/tasks", params={"limit": 5}, headers=user.headers)

    async def create_task(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.post("/api/tasks", json={"title": f"steady {n}"}, headers=user.headers)

    async def me(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.get("/api/auth/me", headers=user.headers)

    async def conversations(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.get("/api/conversations", headers=user.headers)

    todo_streams = ("list", "create")
    streams = {"list": list_tasks, "create": create_task, "me": me, "chat": conversations}

    def todo_since(moment: float) -> list[Outcome]:
        return [o for name in todo_streams for o in traffic.of(name, since=moment)]

    async with Traffic(gateway, streams, workers=2) as traffic:
        warm = time.monotonic()
        await traffic.until(
            lambda: all(traffic.count(name, ok=True) >= 10 for name in streams),
            within=30,
            what="steady traffic answered",
        )
        killed_at = time.monotonic()
        try:
            stack.kill("todo")
            # From the first 503 on, every todo answer must be a 503 until the restart.
            await traffic.until(
                lambda: any(o.status == 503 for o in todo_since(killed_at)),
                within=KILL_TO_503_BOUND,
                what="a 503 for the killed service",
            )
            first_503 = min(
                (o for o in todo_since(killed_at) if o.status == 503), key=lambda o: o.ended
            )
            await traffic.until(
                lambda: len(todo_since(first_503.ended)) >= 20,
                within=10,
                what="answers while the service is down",
            )
            restarting_at = time.monotonic()
        finally:
            await asyncio.to_thread(stack.start, "todo")
        ready_at = time.monotonic()
        recovered_at = await traffic.until(
            lambda: any(o.ok for o in todo_since(ready_at)),
            within=RECOVERY_BOUND,
            what="a 2xx after the restart",
        )
        await traffic.until(
            lambda: len(todo_since(ready_at)) >= 20, within=10, what="answers after the restart"
        )

    assert not [o for o in traffic.outcomes if o.status == 0], "a request got no answer"
    # Before the kill: everything answered.
    before = [o for o in traffic.outcomes if o.started >= warm and o.ended < killed_at]
    assert all(o.ok for o in before), statuses(before)
    # The other services never noticed.
    for name in ("me", "chat"):
        assert all(o.ok for o in traffic.of(name)), (name, statuses(traffic.of(name)))
    # Down: the requests in flight at the kill may have completed (2xx) or been cut (502);
    # from the first 503 on, nothing but clean 503s.
    around_kill = [
        o
        for name in todo_streams
        for o in traffic.of(name, before=first_503.ended)
        if o.ended >= killed_at
    ]
    assert set(statuses(around_kill)) <= {200, 201, 502, 503}, statuses(around_kill)
    down = [
        o
        for o in todo_since(first_503.ended)
        if o.started < restarting_at and o.ended < restarting_at
    ]
    assert down
    assert {o.status for o in down} == {503}, statuses(down)
    assert {o.code for o in down} == {"service_unavailable"}
    # Back: every request sent once the service was ready is answered, by the same gateway.
    after = todo_since(ready_at)
    assert all(o.ok for o in after), statuses(after)
    assert stack.pid("gateway") == gateway_pid

    record_property("kill_to_first_503_s", round(first_503.ended - killed_at, 3))
    record_property("ready_to_first_2xx_s", round(recovered_at - ready_at, 3))
    record_property("answers_cut_at_kill_502", statuses(around_kill).get(502, 0))
    record_property("requests", len(traffic.outcomes))


# --- the auth service down --------------------------------------------------------------------


async def test_auth_down_issued_tokens_keep_working_and_login_is_a_clean_503(
    stack: Stack, gateway: httpx.AsyncClient, user: User
) -> None:
    needs("todo", "chat")
    # Each service has fetched the key set (any token does it); `unseen` is a token no
    # process has verified yet, so it proves the cached keys, not a cached verification.
    for path in ("/api/tasks", "/api/conversations"):
        assert (await gateway.get(path, headers=user.headers)).status_code == 200
    unseen = await register_and_login(gateway)
    forged = TestIssuer().mint(user.id)

    stack.kill("auth")
    try:
        for who in (user, unseen):
            assert (await gateway.get("/api/tasks", headers=who.headers)).status_code == 200
            created = await gateway.post(
                "/api/tasks", json={"title": "while auth is down"}, headers=who.headers
            )
            assert created.status_code == 201, created.text
            turn = await gateway.post(
                "/api/chat", json={"message": "show my tasks"}, headers=who.headers
            )
            assert turn.status_code == 200, turn.text  # chat -> todo with the same token
        for service, path in (("todo", "/api/tasks"), ("chat", "/api/conversations")):
            async with httpx.AsyncClient(base_url=stack.url(service), timeout=10) as direct:
                response = await direct.get(path, headers=unseen.headers)
            assert response.status_code == 200, (service, response.text)

        # A token signed by a key nobody published is still refused, and quickly, although
        # the key set cannot be refetched.
        started = time.monotonic()
        refused = await gateway.get("/api/tasks", headers={"Authorization": f"Bearer {forged}"})
        assert_error(refused, 401, "invalid_token")
        assert time.monotonic() - started < 5

        login = await gateway.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        assert_error(login, 503, "service_unavailable")
        refresh = await gateway.post(
            "/api/auth/refresh", json={"refresh_token": user.refresh_token}
        )
        assert_error(refresh, 503, "service_unavailable")
        assert_error(
            await gateway.get("/api/auth/me", headers=user.headers), 503, "service_unavailable"
        )
    finally:
        await asyncio.to_thread(stack.start, "auth")

    # The refresh token was not spent by the failed attempt.
    refreshed = await gateway.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    login = await gateway.post(
        "/api/auth/login", json={"email": user.email, "password": user.password}
    )
    assert login.status_code == 200


# --- the todo service down during chat turns --------------------------------------------------


async def every_page(
    gateway: httpx.AsyncClient, user: User, path: str, field: str | None = None
) -> list[dict[str, Any]]:
    """Every item of a paged listing, following ``Link: rel="next"`` (bounded)."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    for _ in range(100):
        if url is None:
            return items
        response = await gateway.get(url, params={"limit": 100}, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body[field] if field else body)
        url = response.links.get("next", {}).get("url")
    raise AssertionError(f"more than 100 pages at {path}")


async def conversation_messages(
    gateway: httpx.AsyncClient, user: User, conversation_id: int
) -> list[dict[str, Any]]:
    return await every_page(gateway, user, f"/api/conversations/{conversation_id}", "messages")


async def test_todo_down_during_a_chat_turn_is_a_clean_503_and_keeps_the_user_message(
    stack: Stack, gateway: httpx.AsyncClient, user: User
) -> None:
    needs("todo", "chat")
    first = await gateway.post("/api/chat", json={"message": "add buy milk"}, headers=user.headers)
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversation_id"]

    stack.kill("todo")
    try:
        failed = await gateway.post(
            "/api/chat",
            json={"message": "add call mom", "conversation_id": conversation_id},
            headers=user.headers,
        )
        assert_error(failed, 503, "todo_unavailable")
        # Streamed, the same failure is one `error` event carrying the status.
        async with gateway.stream(
            "POST",
            "/api/chat",
            json={"message": "add water plants", "conversation_id": conversation_id},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as streamed:
            assert streamed.status_code == 200
            events = (await streamed.aread()).decode()
        assert events.startswith("event: error\n"), events
        assert '"code":"todo_unavailable"' in events
        assert '"status":503' in events
    finally:
        await asyncio.to_thread(stack.start, "todo")

    messages = await conversation_messages(gateway, user, conversation_id)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "add buy milk"),
        ("assistant", first.json()["response"]),
        ("user", "add call mom"),
        ("user", "add water plants"),
    ]
    # Only the first turn's task: the failed turns could not reach the todo service.
    assert len(await every_page(gateway, user, "/api/tasks")) == 1

    # The conversation goes on once todo is back.
    again = await gateway.post(
        "/api/chat",
        json={"message": "add call mom", "conversation_id": conversation_id},
        headers=user.headers,
    )
    assert again.status_code == 200, again.text
    assert [m["role"] for m in await conversation_messages(gateway, user, conversation_id)][
        -2:
    ] == ["user", "assistant"]


async def test_todo_killed_while_chat_turns_run_leaves_no_half_written_reply(
    stack: Stack, gateway: httpx.AsyncClient, user: User, record_property: Record
) -> None:
    needs("todo", "chat")
    workers = 3
    conversations: list[int] = []
    for n in range(workers):
        started = await gateway.post(
            "/api/chat", json={"message": f"add opening task {n}"}, headers=user.headers
        )
        assert started.status_code == 200, started.text
        conversations.append(started.json()["conversation_id"])
    by_sequence: dict[int, tuple[int, str]] = {}

    async def turn(client: httpx.AsyncClient, n: int) -> httpx.Response:
        conversation_id = conversations[n % workers]
        message = f"add turn task {n}"
        by_sequence[n] = (conversation_id, message)
        return await client.post(
            "/api/chat",
            json={"message": message, "conversation_id": conversation_id},
            headers=user.headers,
        )

    async with Traffic(gateway, {"turn": turn}, workers=workers, pace=0.1) as traffic:
        await traffic.until(
            lambda: traffic.count("turn", ok=True) >= 6, within=30, what="turns answered"
        )
        killed_at = time.monotonic()
        try:
            stack.kill("todo")
            await traffic.until(
                lambda: traffic.count("turn", since=killed_at, ok=False) >= 6,
                within=10,
                what="failed turns while todo is down",
            )
        finally:
            await asyncio.to_thread(stack.start, "todo")
        ready_at = time.monotonic()
        await traffic.until(
            lambda: traffic.count("turn", since=ready_at, ok=True) >= 6,
            within=RECOVERY_BOUND,
            what="turns answered after the restart",
        )

    outcomes = traffic.of("turn")
    assert not [o for o in outcomes if o.status == 0], statuses(outcomes)
    failed = [o for o in outcomes if not o.ok]
    # Cut mid-call or refused: a clean 5xx envelope from the chat service, never a 200.
    assert {o.status for o in failed} <= {502, 503}, statuses(failed)
    assert {o.code for o in failed} <= {"todo_unavailable", "todo_bad_answer"}, failed
    assert all(o.ok for o in traffic.of("turn", since=ready_at))

    task_ids = {task["id"] for task in await every_page(gateway, user, "/api/tasks")}
    for conversation_id in conversations:
        sent = sorted(
            (o for o in outcomes if by_sequence[o.sequence][0] == conversation_id),
            key=lambda o: o.sequence,
        )
        messages = await conversation_messages(gateway, user, conversation_id)
        # Every turn stored its user message; only answered turns have a reply, right after it.
        users = [m["content"] for m in messages[2:] if m["role"] == "user"]
        assert sorted(users) == sorted(by_sequence[o.sequence][1] for o in sent)
        replies = [m for m in messages[2:] if m["role"] == "assistant"]
        assert len(replies) == sum(1 for o in sent if o.ok)
        for earlier, later in itertools.pairwise(messages):
            assert not (earlier["role"] == later["role"] == "assistant")
        for outcome in sent:
            if outcome.ok:
                for call in outcome.body["tool_calls"]:
                    assert call["result"]["task_id"] in task_ids
    record_property("chat_turns", len(outcomes))
    record_property("chat_turns_failed", len(failed))


# --- PostgreSQL restarted during steady writes ------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def own_database() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test's own: restarting the session's would break other tests."""
    async with own_postgres(("auth_service", "todo_service")) as server_and_url:
        yield server_and_url


async def readiness(client: httpx.AsyncClient, url: str) -> int:
    try:
        return (await client.get(f"{url}/readyz", timeout=5)).status_code
    except httpx.HTTPError:
        return 0


async def wait_readiness(
    stack: Stack, names: tuple[str, ...], status: int, *, within: float
) -> float:
    """Poll each service's /readyz until all answer ``status``; the time it took."""
    started = time.monotonic()
    async with httpx.AsyncClient() as client, asyncio.timeout(within):
        while True:
            answers = await asyncio.gather(*(readiness(client, stack.url(n)) for n in names))
            if all(answer == status for answer in answers):
                return time.monotonic() - started
            await asyncio.sleep(0.05)


async def test_database_restart_during_writes_loses_no_acknowledged_write(
    own_database: tuple[EmbeddedPostgres, str], record_property: Record
) -> None:
    needs("todo")
    server, url = own_database
    with tempfile.TemporaryDirectory(prefix="todo-platform-faults-") as workdir:
        stack = Stack(url, Path(workdir))
        try:
            await asyncio.to_thread(stack.start, "auth", "todo")
            await asyncio.to_thread(stack.start, "gateway")
            pids = {name: stack.pid(name) for name in ("auth", "todo", "gateway")}
            async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=10) as gateway:
                user = await register_and_login(gateway)
                await run_writes_across_a_restart(
                    stack, server, gateway, user, url, record_property
                )
                # Auth recovered too: its database-backed routes answer again.
                me = await gateway.get("/api/auth/me", headers=user.headers)
                assert me.status_code == 200, me.text
                login = await gateway.post(
                    "/api/auth/login", json={"email": user.email, "password": user.password}
                )
                assert login.status_code == 200, login.text
            assert {name: stack.pid(name) for name in pids} == pids  # nothing was restarted
        finally:
            await asyncio.to_thread(stack.close)
        stack.assert_no_errors()  # their shutdown included


async def run_writes_across_a_restart(
    stack: Stack,
    server: EmbeddedPostgres,
    gateway: httpx.AsyncClient,
    user: User,
    url: str,
    record_property: Record,
) -> None:
    async def create(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.post("/api/tasks", json={"title": f"write {n}"}, headers=user.headers)

    async with Traffic(gateway, {"create": create}, workers=4) as traffic:
        await traffic.until(
            lambda: traffic.count("create", ok=True) >= 20, within=30, what="writes acknowledged"
        )
        stopped_at = time.monotonic()
        await asyncio.to_thread(server.pause)
        try:
            to_not_ready = await wait_readiness(stack, ("auth", "todo"), 503, within=10)
            await traffic.until(
                lambda: traffic.count("create", since=stopped_at, ok=False) >= 10,
                within=10,
                what="writes refused while the database is down",
            )
        finally:
            started_at = time.monotonic()
            await asyncio.to_thread(server.resume)
        to_ready = await wait_readiness(stack, ("auth", "todo"), 200, within=RECOVERY_BOUND)
        ready_at = time.monotonic()
        await traffic.until(
            lambda: traffic.count("create", since=ready_at, ok=True) >= 20,
            within=RECOVERY_BOUND,
            what="writes acknowledged after the restart",
        )

    outcomes = traffic.of("create")
    assert not [o for o in outcomes if o.status == 0], "a write got no answer in time"
    failed = [o for o in outcomes if not o.ok]
    assert failed, "the database restart went unnoticed"
    # Refused cleanly, in the envelope: never a 2xx, never a 500. A write whose COMMIT was cut
    # says its outcome is unknown; every other one tells the client to retry.
    assert {o.status for o in failed} == {503}, (statuses(failed), stack.errors())
    assert "database_unavailable" in {o.code for o in failed}, failed
    assert {o.code for o in failed} <= {"database_unavailable", "outcome_unknown"}, failed
    after = traffic.of("create", since=ready_at)
    assert all(o.ok for o in after), statuses(after)

    acknowledged = {o.body["id"]: o.body["title"] for o in outcomes if o.ok}
    assert all(o.status == 201 for o in outcomes if o.ok)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT id, title FROM todo.tasks WHERE user_id = :user"),
                {"user": user.id},
            )
            stored = {row.id: row.title for row in rows}
    finally:
        await engine.dispose()
    assert acknowledged.items() <= stored.items()
    attempted = {f"write {o.sequence}" for o in outcomes}
    assert set(stored.values()) <= attempted
    # A write whose commit was cut may have happened without an answer: allowed, counted,
    # and only where the answer said so (``database_unavailable`` promises nothing was saved).
    unknown = {f"write {o.sequence}" for o in failed if o.code == "outcome_unknown"}
    assert set(stored.values()) - set(acknowledged.values()) <= unknown
    failed_but_stored = len(stored) - len(acknowledged)

    record_property("db_down_to_not_ready_s", round(to_not_ready, 3))
    record_property("db_up_to_ready_s", round(to_ready, 3))
    record_property("db_restart_down_s", round(started_at - stopped_at, 3))
    record_property("writes", len(outcomes))
    record_property("writes_failed", len(failed))
    record_property("writes_failed_statuses", statuses(failed))
    record_property("writes_failed_but_stored", failed_but_stored)
    record_property("writes_outcome_unknown", len(unknown))
