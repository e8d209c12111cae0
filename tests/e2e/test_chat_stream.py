"""A chat turn streamed through the gateway, on the real processes.

The chat service runs its LLM agent against a fake OpenAI-compatible server in this test's
event loop: the model calls a tool and then waits to be released, so the test can see the
tool_call event arrive through the gateway while the turn is still running.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.e2e.stack import Stack
from tests.e2e.users import User
from tests.support.fake_openai import FakeOpenAI, Step, call
from tests.support.sse import next_event

SSE = {"Accept": "text/event-stream"}


async def test_a_rules_turn_streams_its_events_in_order(
    gateway: httpx.AsyncClient, user: User
) -> None:
    async with gateway.stream(
        "POST",
        "/api/chat",
        json={"message": "Add a task to buy milk"},
        headers={**user.headers, **SSE},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        name, tool = await next_event(lines)
        assert (name, tool["name"], tool["arguments"]) == (
            "tool_call",
            "add_task",
            {"title": "Buy milk"},
        )
        name, message = await next_event(lines)
        assert name == "message"
        assert message["response"].startswith("Done! I added “Buy milk”")
        name, done = await next_event(lines)
        assert name == "done"
    detail = await gateway.get(
        f"/api/conversations/{done['conversation_id']}", headers=user.headers
    )
    assert [m["role"] for m in detail.json()["messages"]] == ["user", "assistant"]


async def test_events_arrive_through_the_gateway_while_the_turn_runs(
    stack: Stack, gateway: httpx.AsyncClient, user: User
) -> None:
    async with FakeOpenAI().running() as model:
        model.script(call("add_task", title="Buy bread"), Step(hang=True, content="Added it."))
        with stack.configured(
            "chat",
            CHAT_AGENT="openai",
            CHAT_OPENAI_BASE_URL=model.base_url,
            CHAT_OPENAI_API_KEY="test-key",
            CHAT_OPENAI_MAX_RETRIES="0",
        ):
            async with gateway.stream(
                "POST", "/api/chat", json={"message": "add bread"}, headers={**user.headers, **SSE}
            ) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                name, tool = await next_event(lines)
                assert name == "tool_call"
                assert tool["result"]["status"] == "created"
                # The turn is still running: the model's second round is asked for (bounded
                # wait, it may trail the event) and hangs until released.
                for _ in range(500):
                    if len(model.requests) == 2:
                        break
                    await asyncio.sleep(0.01)
                assert len(model.requests) == 2

                model.release()
                assert await next_event(lines) == ("message", {"response": "Added it."})
                name, done = await next_event(lines)
                assert name == "done"
                assert isinstance(done["conversation_id"], int)
