"""Chat and the todo MCP endpoint through the real gateway, over real HTTP.

The todo service, the chat service and the gateway are served by uvicorn on free 127.0.0.1
ports in the test's event loop; the gateway verifies the same test issuer's tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from scripts.processes import free_port
from tests.chat.conftest import ChatAppFactory, User
from tests.support.fake_openai import FakeOpenAI, Step, call
from tests.support.serving import live_server
from tests.support.sse import next_event
from tests.support.tokens import TestIssuer


@pytest.fixture
async def gateway(
    make_chat_app: ChatAppFactory, todo_mcp_url: str, issuer: TestIssuer, model: FakeOpenAI
) -> AsyncIterator[str]:
    """The gateway in front of todo and of a chat service with the LLM agent (fake model)."""
    chat = make_chat_app(
        todo_mcp_url=todo_mcp_url,
        agent="openai",
        openai_base_url=model.base_url,
        openai_api_key="test-key",
        openai_max_retries=0,
    )
    async with live_server(chat) as chat_url:
        settings = GatewaySettings(
            _env_file=None,
            environment="test",
            auth_url=f"http://127.0.0.1:{free_port()}",
            todo_url=todo_mcp_url.removesuffix("/api/mcp"),
            chat_url=chat_url,
            rate_limit_user="",
            rate_limit_chat_turn="",
            rate_limit_auth_ip="",
        )
        async with live_server(
            create_gateway(settings, verifier=issuer.verifier()), proxy_headers=False
        ) as url:
            yield url


async def test_a_turn_streams_through_the_gateway_as_it_happens(
    gateway: str, model: FakeOpenAI, alice: User
) -> None:
    # The model calls a tool, then hangs until released: the tool_call event must reach the
    # client through the gateway while the turn is still running.
    model.script(call("add_task", title="Buy milk"), Step(hang=True, content="Added it."))
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=10) as client,
        client.stream(
            "POST",
            "/api/chat",
            json={"message": "add buy milk"},
            headers={**alice.headers, "Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        name, data = await next_event(lines)
        assert name == "tool_call"
        assert data["name"] == "add_task"
        assert data["result"]["status"] == "created"
        assert len(model.requests) == 2  # the model is still answering the second round

        model.release()
        assert await next_event(lines) == ("message", {"response": "Added it."})
        name, done = await next_event(lines)
        assert name == "done"
        assert isinstance(done["conversation_id"], int)


async def test_the_mcp_endpoint_answers_through_the_gateway(gateway: str, alice: User) -> None:
    token = alice.token
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http,
        Client(streamable_http_client(f"{gateway}/api/mcp", http_client=http)) as client,
    ):
        added = await client.call_tool("add_task", {"title": "Through the gateway"})
        assert added.structured_content is not None
        assert added.structured_content["status"] == "created"
        listed = await client.call_tool("list_tasks", {})
    assert listed.structured_content is not None
    assert [t["title"] for t in listed.structured_content["result"]] == ["Through the gateway"]


async def test_a_bad_token_for_chat_stops_at_the_gateway(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.post(
            "/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer nope"}
        )
    assert response.status_code == 401
    assert response.json()["code"] in {"invalid_token", "not_authenticated"}


async def test_an_idempotency_key_reaches_the_chat_through_the_gateway(
    gateway: str, model: FakeOpenAI, alice: User
) -> None:
    model.script(call("add_task", title="Buy milk"), Step(content="Added it."))
    headers = {**alice.headers, "Idempotency-Key": "turn-1"}
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        first = await client.post("/api/chat", json={"message": "add buy milk"}, headers=headers)
        again = await client.post("/api/chat", json={"message": "add buy milk"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(model.requests) == 2  # the retry was answered from the stored turn
