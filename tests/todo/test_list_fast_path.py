"""GET /api/tasks is served by a fast path beside FastAPI's routing: it answers exactly as
the routed handler does, for every answer, and everything else still goes to the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.clock import FrozenClock
from shared.db import create_engine, create_sessionmaker
from tests.support.errors import assert_error
from tests.support.serving import serve
from tests.support.tokens import TestIssuer, bad_tokens
from tests.todo.conftest import User, create
from todo_service.api import ListFastPath
from todo_service.app import create_app
from todo_service.settings import TodoSettings


def without_fast_path(app: FastAPI) -> FastAPI:
    """The same app answering the list through FastAPI's routing, as before the fast path."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not ListFastPath]
    return app


# Both read pages as in production, straight from the engine's pool (the rolled-back test
# transaction would take another path, and one refused statement would abort it for both).
@pytest.fixture
def fast(committed_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The app as create_app builds it, fast path included."""
    return committed_client


@pytest.fixture
async def routed(
    todo_settings: TodoSettings,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    issuer: TestIssuer,
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        todo_settings, sessionmaker=committed_sessionmaker, verifier=issuer.verifier(), clock=clock
    )
    async with serve(without_fast_path(app)) as client:
        yield client


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, response.headers.multi_items(), response.content


async def assert_same_answer(
    fast: httpx.AsyncClient,
    routed: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
) -> httpx.Response:
    """Both apps give byte for byte the same status, headers and body."""
    headers = {**headers, "X-Request-ID": "same-request"}
    fast_response = await fast.request(method, url, headers=headers)
    routed_response = await routed.request(method, url, headers=headers)
    assert answer(fast_response) == answer(routed_response)
    return fast_response


@pytest.fixture
async def pages(fast: httpx.AsyncClient, alice: User) -> list[dict[str, Any]]:
    """Enough of Alice's tasks for a next page at limit=2."""
    return [
        await create(fast, alice, title=title, tags=tags, priority=priority)
        for title, tags, priority in [
            ("Buy milk", ["home"], "low"),
            ("call Mom", ["family", "home"], "high"),
            ("Draft report", ["work"], "high"),
        ]
    ]


@pytest.mark.usefixtures("pages")
@pytest.mark.parametrize(
    "query",
    [
        "",
        "limit=50",
        "limit=2",
        "limit=2&sort=title&order=desc",
        "status=pending&priority=high&tag=home",
        "tag=HOME&tag=family&limit=1",
        "q=milk",
        "sort=due_date&limit=1",
        "limit=3&limit=1",
        "limit=2&unknown=1&Limit=9&",
        "q=caf%C3%A9+au+lait&due_after=2026-01-01T00%3A00%3A00%2B01%3A00",
        "overdue=true&due_before=2026-12-31T00:00:00Z",
    ],
)
async def test_a_page_is_the_routed_answer(
    fast: httpx.AsyncClient, routed: httpx.AsyncClient, alice: User, query: str
) -> None:
    response = await assert_same_answer(fast, routed, "GET", f"/api/tasks?{query}", alice.headers)
    assert response.status_code == 200


async def test_the_next_page_is_the_routed_answer(
    fast: httpx.AsyncClient,
    routed: httpx.AsyncClient,
    alice: User,
    pages: list[dict[str, Any]],
) -> None:
    first = await assert_same_answer(fast, routed, "GET", "/api/tasks?limit=2", alice.headers)
    link = first.headers["link"]
    second = await assert_same_answer(fast, routed, "GET", link[1 : link.index(">")], alice.headers)
    assert [task["id"] for task in first.json() + second.json()] == [
        task["id"] for task in reversed(pages)
    ]


@pytest.mark.parametrize("kind", sorted(bad_tokens(TestIssuer())))
async def test_a_bad_token_is_the_routed_401(
    fast: httpx.AsyncClient, routed: httpx.AsyncClient, issuer: TestIssuer, kind: str
) -> None:
    response = await assert_same_answer(
        fast, routed, "GET", "/api/tasks?limit=50", bad_tokens(issuer)[kind]
    )
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("cursor=not-a-cursor", 400, "invalid_cursor"),
        ("limit=2&cursor=", 400, "invalid_cursor"),
        ("limit=0", 422, "validation_error"),
        ("limit=101", 422, "validation_error"),
        ("limit=ten", 422, "validation_error"),
        ("status=done&sort=size", 422, "validation_error"),
        ("due_before=1700000000", 422, "validation_error"),
        ("tag=" + "&tag=".join(str(n) for n in range(11)), 422, "validation_error"),
        ("q=%00", 422, "invalid_character"),
        ("tag=a%00b", 422, "invalid_character"),
    ],
)
async def test_a_refused_query_is_the_routed_error(
    fast: httpx.AsyncClient,
    routed: httpx.AsyncClient,
    alice: User,
    query: str,
    status: int,
    code: str,
) -> None:
    response = await assert_same_answer(fast, routed, "GET", f"/api/tasks?{query}", alice.headers)
    assert_error(response, status, code)


async def test_a_bad_token_is_refused_before_the_query_is_read(
    fast: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    response = await assert_same_answer(fast, routed, "GET", "/api/tasks?limit=0", {})
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("HEAD", "/api/tasks"),
        ("PUT", "/api/tasks"),
        ("DELETE", "/api/tasks"),
        ("OPTIONS", "/api/tasks"),
        ("GET", "/api/tasks/"),
        ("GET", "/api/tasks/docs"),
        ("GET", "/api/taskss"),
    ],
)
async def test_other_methods_and_paths_answer_as_before(
    fast: httpx.AsyncClient,
    routed: httpx.AsyncClient,
    alice: User,
    method: str,
    url: str,
) -> None:
    await assert_same_answer(fast, routed, method, url, alice.headers)


async def test_head_and_put_are_405_naming_get_and_post(
    client: httpx.AsyncClient, alice: User
) -> None:
    for method in ("HEAD", "PUT"):
        response = await client.request(method, "/api/tasks", headers=alice.headers)
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"


async def test_post_still_creates_through_the_route(client: httpx.AsyncClient, alice: User) -> None:
    task = await create(client, alice, title="created past the fast path")
    response = await client.get("/api/tasks", headers=alice.headers)
    assert [item["id"] for item in response.json()] == [task["id"]]


class Recorder:
    """Stands between the fast path and the rest of the app, noting what it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def fast_path_of(app: FastAPI) -> ListFastPath:
    app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    for _ in range(20):
        if isinstance(layer, ListFastPath):
            return layer
        layer = layer.app
    raise AssertionError("no ListFastPath in the middleware stack")


async def test_the_list_never_reaches_the_router_and_the_rest_does(
    todo_settings: TodoSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
) -> None:
    app = create_app(
        todo_settings, sessionmaker=sessionmaker, verifier=issuer.verifier(), clock=clock
    )
    fast_path = fast_path_of(app)
    recorder = fast_path.app = Recorder(fast_path.app)
    async with serve(app) as client:
        assert (await client.get("/api/tasks?limit=5", headers=alice.headers)).status_code == 200
        assert (await client.get("/api/tasks", headers={})).status_code == 401
        assert (await client.put("/api/tasks", headers=alice.headers)).status_code == 405
        await create(client, alice)
    assert recorder.seen == [("PUT", "/api/tasks"), ("POST", "/api/tasks")]


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
    # One connection, never checked on checkout: the page read meets the dead one itself.
    engine = create_engine(migrated_url, pool_size=1, ping_after_idle=3600, application_name=name)
    killer = create_engine(migrated_url, pool_size=1)
    app = create_app(
        todo_settings,
        sessionmaker=create_sessionmaker(engine),
        verifier=issuer.verifier(),
        clock=clock,
    )
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
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_page_through_a_transaction_pooler_reads_the_same(
    todo_settings: TodoSettings,
    migrated_url: str,
    issuer: TestIssuer,
    clock: FrozenClock,
    alice: User,
    fast: httpx.AsyncClient,
    pages: list[dict[str, Any]],
) -> None:
    # What shared.db sets for a -pooler host: no statement cache, so each read in a transaction.
    separator = "&" if "?" in migrated_url else "?"
    engine = create_engine(f"{migrated_url}{separator}prepared_statement_cache_size=0")
    app = create_app(
        todo_settings,
        sessionmaker=create_sessionmaker(engine),
        verifier=issuer.verifier(),
        clock=clock,
    )
    headers = {**alice.headers, "X-Request-ID": "same-request"}
    try:
        async with serve(app) as pooled:
            through_pooler = await pooled.get("/api/tasks?limit=2", headers=headers)
            direct = await fast.get("/api/tasks?limit=2", headers=headers)
            assert through_pooler.status_code == 200
            assert answer(through_pooler) == answer(direct)
    finally:
        await engine.dispose()


def test_the_fast_path_refuses_a_list_route_with_dependencies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FastAPI would run a dependency added to the route (say, a rate limit); the fast path
    # would not, so it refuses to start rather than skip it.
    route = ListFastPath(FastAPI()).route
    monkeypatch.setattr(route.dependant, "dependencies", [route.dependant])
    with pytest.raises(RuntimeError, match="dependencies"):
        ListFastPath(FastAPI())


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "limit=3&limit=1",
        "tag=a&tag=B&status=pending&tag=a",
        "q=caf%C3%A9+au+lait&x=%FF&q",
        "sort=due_date&order=&cursor=abc%3D%3D",
        "limit=2&unknown=1&Limit=9&&=&tag",
        "q=caf%E9",
    ],
)
async def test_the_query_reads_as_the_routed_app_reads_it(
    fast: httpx.AsyncClient, routed: httpx.AsyncClient, alice: User, raw: str
) -> None:
    # Repeated, empty, unknown and badly encoded parameters: read as Starlette reads them.
    await assert_same_answer(fast, routed, "GET", f"/api/tasks?{raw}", alice.headers)
