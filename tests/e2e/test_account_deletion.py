"""Account deletion end to end, through the gateway and the real worker processes: the auth
worker publishes ``user.deleted`` from the outbox, the todo and chat workers purge the user's
rows, and the deleted user's still-valid access token is refused by both services from then
on. The todo worker is down when the account is deleted and catches up when it starts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.stack import Stack
from tests.e2e.users import register_and_login
from tests.support.errors import assert_error
from tests.support.events import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

WORKERS = ("auth-worker", "todo-worker", "chat-worker")


@pytest.fixture
def workers(stack: Stack, redis_url: str) -> Iterator[Stack]:
    env = {"EVENTS_REDIS_URL": redis_url, "TODO_EVENTS_IDLE_SECONDS": "0.1"}
    try:
        stack.start("auth-worker", "chat-worker", env=env)
        stack.extra_env["todo-worker"] = env
        yield stack
    finally:
        stack.stop(*(name for name in WORKERS if stack.running(name)))
        stack.extra_env.pop("todo-worker", None)


async def rows_of(engine: AsyncEngine, user_id: str) -> int:
    async with engine.connect() as connection:
        total = 0
        for table in ("todo.tasks", "chat.conversations", "chat.messages"):
            query = text(f"SELECT count(*) FROM {table} WHERE user_id = :u")  # noqa: S608
            total += (await connection.execute(query, {"u": user_id})).scalar_one()
        return int(total)


async def test_a_deleted_account_is_purged_everywhere_and_its_token_refused(
    workers: Stack, gateway: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register_and_login(gateway)
    other = await register_and_login(gateway)
    for someone in (user, other):
        task = await gateway.post("/api/tasks", json={"title": "mine"}, headers=someone.headers)
        assert task.status_code == 201, task.text
        turn = await gateway.post("/api/chat", json={"message": "hello"}, headers=someone.headers)
        assert turn.status_code == 200, turn.text

    deleted = await gateway.request(
        "DELETE", "/api/auth/me", json={"password": user.password}, headers=user.headers
    )
    assert deleted.status_code == 204, deleted.text
    refreshed = await gateway.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(refreshed, 401, "invalid_refresh_token")

    async def chat_refuses() -> bool:
        answer = await gateway.get("/api/conversations", headers=user.headers)
        return answer.status_code == 401

    await eventually(chat_refuses, seconds=30)
    assert_error(
        await gateway.get("/api/conversations", headers=user.headers), 401, "account_deleted"
    )
    # The todo worker was down: the user's task is still there, the token still works there.
    assert (await gateway.get("/api/tasks", headers=user.headers)).status_code == 200

    workers.start("todo-worker")

    async def todo_refuses() -> bool:
        return (await gateway.get("/api/tasks", headers=user.headers)).status_code == 401

    await eventually(todo_refuses, seconds=30)
    created = await gateway.post("/api/tasks", json={"title": "back"}, headers=user.headers)
    assert_error(created, 401, "account_deleted")
    assert await rows_of(engine, user.id) == 0
    assert await rows_of(engine, other.id) > 0
    assert (await gateway.get("/api/tasks", headers=other.headers)).status_code == 200
