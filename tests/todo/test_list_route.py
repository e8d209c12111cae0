"""GET /api/tasks is an ordinary FastAPI route: what every route gets (dependencies, error
envelope, request id, metrics, access log) it gets too, and its page read survives a dead
pooled connection and a transaction pooler."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import text
from starlette.datastructures import QueryParams

from shared.clock import FrozenClock
from shared.db import Database, create_engine
from shared.deps import get_principal
from shared.tokens import Principal
from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.support.tokens import TestIssuer
from tests.todo.conftest import User, create
from todo_service.api import parse_task_query
from todo_service.app import create_app
from todo_service.schemas import TaskQuery
from todo_service.settings import TodoSettings


async def test_the_list_runs_the_apps_dependencies_like_every_route(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
) -> None:
    # A dependency the app replaces (here: who the caller is) reaches the list as it reaches
    # the other routes; a bypass of the routing would answer 401 for the missing token.
    app = create_app(todo_settings, db=database, verifier=issuer.verifier(), clock=clock)

    async def as_alice() -> Principal:
        return Principal(sub=alice.sub, issuer="test", claims={})

    app.dependency_overrides[get_principal] = as_alice
    async with serve(app) as client:
        task = await create(client, alice, title="listed")
        response = await client.get("/api/tasks")
        assert response.status_code == 200, response.text
        assert [item["id"] for item in response.json()] == [task["id"]]


async def test_head_is_the_lists_get_without_the_body(
    client: httpx.AsyncClient, alice: User
) -> None:
    await create(client, alice, title="counted")
    got = await client.get("/api/tasks", headers=alice.headers)
    head = await client.head("/api/tasks", headers=alice.headers)

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-total-count"] == got.headers["x-total-count"] == "1"
    assert head.headers["content-length"] == got.headers["content-length"]


async def test_put_is_405_naming_get_head_and_post(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.put("/api/tasks", headers=alice.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_a_bad_token_is_refused_before_the_query_is_read(
    client: httpx.AsyncClient,
) -> None:
    assert_error(await client.get("/api/tasks?limit=0"), 401, "not_authenticated")


def requests_counted(status: str) -> float:
    labels = {"service": "todo", "method": "GET", "route": "/api/tasks", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_metrics_and_access_log_name_the_route(
    client: httpx.AsyncClient, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    ok, unauthorized = requests_counted("200"), requests_counted("401")
    with caplog.at_level(logging.INFO, logger="access"):
        assert (await client.get("/api/tasks?limit=1", headers=alice.headers)).status_code == 200
        assert (await client.get("/api/tasks")).status_code == 401
    assert requests_counted("200") == ok + 1
    assert requests_counted("401") == unauthorized + 1
    lines = [record.getMessage() for record in caplog.records if record.name == "access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /api/tasks 200",
        "GET /api/tasks 401",
    ]


async def test_the_request_id_is_in_the_header_and_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/tasks", headers={"X-Request-ID": "trace-me-1"})
    assert response.headers["x-request-id"] == "trace-me-1"
    assert assert_error(response, 401, "not_authenticated")["detail"] == "Not authenticated"
    assert response.json()["request_id"] == "trace-me-1"


async def test_a_connection_the_server_closed_is_dropped_not_reused(
    todo_settings: TodoSettings,
    migrated_url: str,
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
) -> None:
    name = "todo-list-dropped-connection"
    # One connection, never pinged on checkout: the page read meets the dead one itself.
    db = Database.open(migrated_url, pool_size=1, ping_after_idle=3600, application_name=name)
    killer = create_engine(migrated_url, pool_size=1)
    app = create_app(todo_settings, db=db, verifier=issuer.verifier(), clock=clock)
    try:
        async with serve(app) as client:
            assert (await client.get("/api/tasks", headers=alice.headers)).status_code == 200
            async with killer.connect() as connection:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": name},
                )
            # Skipped at checkout once the driver knows it closed, else a 503 to retry.
            first = await client.get("/api/tasks", headers=alice.headers)
            if first.status_code != 200:
                assert_error(first, 503, "database_unavailable")
            # Had the dead connection gone back to the pool of one, this would fail.
            again = await client.get("/api/tasks", headers=alice.headers)
            assert again.status_code == 200, again.text
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()
        await killer.dispose()


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, response.headers.multi_items(), response.content


async def test_a_page_through_a_transaction_pooler_reads_the_same(
    todo_settings: TodoSettings,
    migrated_url: str,
    committed_client: httpx.AsyncClient,
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
) -> None:
    for title in ("one", "two", "three"):
        await create(committed_client, alice, title=title)
    # As behind a -pooler host: each statement inside an explicit transaction.
    engine = create_engine(migrated_url)
    app = create_app(
        todo_settings,
        db=Database(engine, pooled=True),
        verifier=issuer.verifier(),
        clock=clock,
    )
    headers = {**alice.headers, "X-Request-ID": "same-request"}
    try:
        async with serve(app) as pooled:
            through_pooler = await pooled.get("/api/tasks?limit=2", headers=headers)
            direct = await committed_client.get("/api/tasks?limit=2", headers=headers)
            assert through_pooler.status_code == 200
            assert answer(through_pooler) == answer(direct)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"limit=3&limit=1",
        b"tag=a&tag=B&status=pending&tag=a",
        b"q=caf%C3%A9+au+lait&x=%FF&q",
        b"sort=due_date&order=&cursor=abc%3D%3D",
        b"limit=2&unknown=1&Limit=9&&=&tag",
        "q=caf\u00e9".encode("latin-1"),
    ],
)
def test_the_query_reads_as_starlettes_query_params_do(raw: bytes) -> None:
    params = QueryParams(raw)
    fields = set(TaskQuery.model_fields)
    data: dict[str, Any] = {
        name: params.getlist(name) if name == "tag" else params[name]
        for name in params
        if name in fields
    }
    try:
        expected: TaskQuery | str = TaskQuery.model_validate(data)
    except ValidationError as exc:
        expected = str(exc)
    try:
        parsed: TaskQuery | str = parse_task_query(raw)
    except RequestValidationError as exc:
        parsed = str(exc.__cause__)
    assert parsed == expected
