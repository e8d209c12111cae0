"""The gateway's own routes: probes, aggregated health, merged OpenAPI, docs and metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import create_model

import gateway.api
from gateway.app import create_app
from scripts.processes import free_port
from tests.gateway.conftest import Echo
from tests.support.docs_page import assert_self_contained_docs
from tests.support.errors import assert_error
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer


def jwks_app(issuer: TestIssuer) -> FastAPI:
    app = FastAPI()

    @app.get("/api/auth/jwks")
    async def jwks() -> dict[str, object]:
        return issuer.jwks()

    return app


async def poll_until_ready(client: httpx.AsyncClient) -> httpx.Response:
    async with asyncio.timeout(15):
        # Polling over HTTP is the point here: readiness is what a probe sees.
        while (response := await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return response


async def test_healthz_answers(start_gateway):
    async with start_gateway() as (_, client):
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_waits_for_the_key_set_and_then_verifies_tokens(gateway_settings):
    """With the JWKS unreachable the gateway is not ready; once it answers, it is."""
    issuer = TestIssuer()
    port = free_port()
    settings = gateway_settings(auth_jwks_url=f"http://127.0.0.1:{port}/api/auth/jwks")
    echo = Echo()
    async with live_server(echo, lifespan="off") as todo:
        settings = settings.model_copy(update={"todo_url": todo})
        app = create_app(settings)
        async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
            not_ready = await client.get("/readyz")
            refused = await client.get("/api/tasks", headers=issuer.auth("ann"))
            async with live_server(jwks_app(issuer), port=port):
                # The gateway retries the key fetch with backoff: ready within seconds.
                ready = await poll_until_ready(client)
                accepted = await client.get("/api/tasks", headers=issuer.auth("ann"))
            # The issuer is down again: keys already loaded keep working.
            still = await client.get("/api/tasks", headers=issuer.auth("bob"))
    assert not_ready.status_code == 503
    assert not_ready.json()["code"] == "not_ready"
    assert refused.status_code == 401
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"keys": True}}
    assert accepted.status_code == 200
    assert still.status_code == 200


async def test_a_second_trusted_issuer_is_accepted_when_configured(gateway_settings, echo):
    ours, theirs = TestIssuer(), TestIssuer(issuer="https://app.example.com", audience="app")
    upstream, todo = echo
    async with (
        live_server(jwks_app(ours)) as ours_url,
        live_server(jwks_app(theirs)) as theirs_url,
    ):
        extra = [
            {"issuer": theirs.issuer, "audience": "app", "jwks_url": f"{theirs_url}/api/auth/jwks"}
        ]
        jwks_url = f"{ours_url}/api/auth/jwks"
        plain = gateway_settings(auth_jwks_url=jwks_url, todo_url=todo)
        trusting = gateway_settings(
            auth_jwks_url=jwks_url, todo_url=todo, extra_trusted_issuers=extra
        )
        for settings, expected in ((plain, 401), (trusting, 200)):
            app = create_app(settings)
            async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
                ready = await poll_until_ready(client)
                theirs_response = await client.get("/api/tasks", headers=theirs.auth("t-1"))
                ours_response = await client.get("/api/tasks", headers=ours.auth("o-1"))
            assert ready.status_code == 200
            assert theirs_response.status_code == expected
            assert ours_response.status_code == 200
    assert upstream.headers_of()["x-user-id"] == ["o-1"]


async def test_platform_health_is_200_when_every_service_is_ready(start_gateway):
    async with (
        live_server(Echo(), lifespan="off") as url,
        start_gateway(auth_url=url, todo_url=url, chat_url=url, web_url=url) as (_, client),
    ):
        response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {"auth", "todo", "chat", "web"}
    assert all(s["status"] == "ready" for s in body["services"].values())


async def test_the_gateways_own_routes_answer_head_as_get_without_the_body(start_gateway):
    async with (
        live_server(Echo(), lifespan="off") as url,
        start_gateway(auth_url=url, todo_url=url, chat_url=url, web_url=url) as (_, client),
    ):
        answers = {path: await client.head(path) for path in ("/healthz", "/api/health")}
        refused = await client.post("/api/health")
    for path, answer in answers.items():
        assert answer.status_code == 200, path
        assert answer.content == b""
        assert int(answer.headers["content-length"]) > 0
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, HEAD"


async def test_platform_health_is_503_with_detail_when_a_service_is_down(start_gateway):
    async def not_ready(scope, receive, send):
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async with (
        live_server(Echo(), lifespan="off") as auth,
        live_server(not_ready, lifespan="off") as chat,
        start_gateway(auth_url=auth, chat_url=chat) as (_, client),
    ):
        response = await client.get("/api/health")
    services = assert_error(response, 503, "service_unavailable")["detail"]["services"]
    assert services["auth"]["status"] == "ready"
    assert services["todo"] == {"status": "unavailable", "error": "unreachable"}
    assert services["chat"] == {"status": "not_ready", "http_status": 503}


def service_app(prefix: str, openapi_path: str, **fields: type) -> FastAPI:
    """A service with a route under its prefix answering an ``Item``, one route outside its
    prefix, and its OpenAPI document at ``openapi_path``."""
    item = create_model("Item", **{name: (kind, ...) for name, kind in fields.items()})
    app = FastAPI(title=prefix, openapi_url=openapi_path)

    @app.get(f"{prefix}/{{item_id}}", response_model=item)
    async def read(item_id: int) -> Any:
        raise NotImplementedError

    @app.get("/internal/stats")
    async def stats() -> dict[str, int]:
        return {}

    return app


async def test_openapi_merges_the_services_as_the_client_sees_them(start_gateway):
    # Both services call a schema "Item", each meaning something else.
    todo_app = service_app("/api/tasks", "/api/tasks/openapi.json", id=int, title=str)
    chat_app = service_app("/api/conversations", "/api/chat/openapi.json", text=str)
    async with (
        live_server(todo_app) as todo,
        live_server(chat_app) as chat,
        start_gateway(todo_url=todo, chat_url=chat) as (_, client),
    ):
        response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    assert set(paths) == {"/api/tasks/{item_id}", "/api/conversations/{item_id}", "/api/health"}
    schemas = document["components"]["schemas"]
    assert set(schemas["Item"]["properties"]) == {"id", "title"}
    assert set(schemas["chat_Item"]["properties"]) == {"text"}
    content = paths["/api/conversations/{item_id}"]["get"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/chat_Item"}
    content = paths["/api/tasks/{item_id}"]["get"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    # Shared, identical components appear once.
    assert "HTTPValidationError" in schemas
    assert "chat_HTTPValidationError" not in schemas
    assert "auth" in document["info"]["description"]  # not running: noted


async def test_docs_serve_swagger_ui_from_the_gateway_itself(start_gateway):
    async with start_gateway() as (_, client):
        await assert_self_contained_docs(client, "/api/docs", "/api/openapi.json")


async def test_docs_assets_outside_the_known_files_are_not_found(start_gateway):
    async with start_gateway() as (_, client):
        for path in (
            "/api/docs/assets/",
            "/api/docs/assets/redoc.standalone.js",
            "/api/docs/assets/swagger-ui-bundle.js.map",
            "/api/docs/swagger-init.js",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["code"] == "not_found"


async def test_metrics_are_on_the_internal_port_only(gateway_settings, issuer, echo):
    _, todo = echo
    metrics_port = free_port()
    settings = gateway_settings(metrics_port=metrics_port, todo_url=todo)
    app = create_app(settings, verifier=issuer.verifier())
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        await client.get("/api/tasks", headers=issuer.auth("ann"))
        await client.get("/api/tasks")
        public = await client.get("/metrics")
        metrics = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
    # A web client's path like any other (its service is down here), never the metrics.
    assert public.status_code == 503
    assert "gateway_requests_total" not in public.text
    text = metrics.text
    assert 'gateway_requests_total{prefix="/api/tasks",status="200"}' in text
    assert 'gateway_requests_total{prefix="/api/tasks",status="401"}' in text
    assert 'gateway_request_duration_seconds_bucket{le="0.005",prefix="/api/tasks"' in text


class Counted:
    """An upstream that counts each request by path and answers after a pause (so that
    concurrent requests to the gateway overlap): ``/readyz`` with ``ready_status``, its
    OpenAPI document at ``openapi_path`` while ``documented``, 503 otherwise."""

    def __init__(self, openapi_path: str = "", document: dict[str, Any] | None = None) -> None:
        self.hits: dict[str, int] = {}
        self.ready_status = 200
        self.openapi_path = openapi_path
        self.document = document
        self.documented = document is not None

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        self.hits[path] = self.hits.get(path, 0) + 1
        await asyncio.sleep(0.1)
        status, body = 503, b"{}"
        if path == "/readyz":
            status = self.ready_status
        elif path == self.openapi_path and self.documented:
            status, body = 200, json.dumps(self.document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def test_platform_health_answers_from_one_round_of_checks_per_window(
    start_gateway, monkeypatch: pytest.MonkeyPatch
):
    # Wider than production's 1 s, so that 25 requests fit in it on a loaded machine too.
    window = 3.0
    monkeypatch.setattr(gateway.api, "HEALTH_CACHE_SECONDS", window)
    services = {name: Counted() for name in ("auth", "todo", "chat", "web")}
    async with (
        live_server(services["auth"], lifespan="off") as auth,
        live_server(services["todo"], lifespan="off") as todo,
        live_server(services["chat"], lifespan="off") as chat,
        live_server(services["web"], lifespan="off") as web,
        start_gateway(auth_url=auth, todo_url=todo, chat_url=chat, web_url=web) as (_, client),
    ):
        parallel = await asyncio.gather(*(client.get("/api/health") for _ in range(20)))
        serial = [await client.get("/api/health") for _ in range(5)]
        probes_in_window = {name: s.hits["/readyz"] for name, s in services.items()}
        services["todo"].ready_status = 503
        await asyncio.sleep(window)
        after_window = await client.get("/api/health")
    assert [r.status_code for r in parallel + serial] == [200] * 25
    # 25 requests inside the window: one probe per service.
    assert probes_in_window == {"auth": 1, "todo": 1, "chat": 1, "web": 1}
    # No answer is older than the window: the next round sees todo's change.
    assert after_window.status_code == 503
    assert after_window.json()["detail"]["services"]["todo"]["status"] == "not_ready"
    assert {name: s.hits["/readyz"] for name, s in services.items()} == {
        "auth": 2,
        "todo": 2,
        "chat": 2,
        "web": 2,
    }


async def test_openapi_keeps_documents_and_retries_a_missing_one_at_most_every_few_seconds(
    start_gateway,
):
    todo_path, chat_path = "/api/tasks/openapi.json", "/api/chat/openapi.json"
    todo = Counted(todo_path, service_app("/api/tasks", todo_path, title=str).openapi())
    chat = Counted(chat_path, service_app("/api/conversations", chat_path, text=str).openapi())
    chat.documented = False
    retry = 3.0  # 15 requests fit inside it on a loaded machine too
    async with (
        live_server(todo, lifespan="off") as todo_url,
        live_server(chat, lifespan="off") as chat_url,
        start_gateway(todo_url=todo_url, chat_url=chat_url, openapi_retry_seconds=retry) as (
            _,
            client,
        ),
    ):
        parallel = await asyncio.gather(*(client.get("/api/openapi.json") for _ in range(10)))
        serial = [await client.get("/api/openapi.json") for _ in range(5)]
        fetches_while_down = (todo.hits[todo_path], chat.hits[chat_path])
        chat.documented = True
        await asyncio.sleep(retry)
        back = await client.get("/api/openapi.json")
        more = [await client.get("/api/openapi.json") for _ in range(5)]
    answers = parallel + serial
    assert [r.status_code for r in answers] == [200] * 15
    assert all(r.json() == answers[0].json() for r in answers)
    assert "/api/tasks/{item_id}" in answers[0].json()["paths"]
    assert "/api/conversations/{item_id}" not in answers[0].json()["paths"]
    assert "chat" in answers[0].json()["info"]["description"]
    # 15 requests: each document fetched once, the missing one not again within the retry.
    assert fetches_while_down == (1, 1)
    assert back.status_code == 200
    assert "/api/conversations/{item_id}" in back.json()["paths"]
    assert all(r.json() == back.json() for r in more)
    # The fetched documents are kept: todo's was never fetched again, chat's once more.
    assert (todo.hits[todo_path], chat.hits[chat_path]) == (1, 2)
