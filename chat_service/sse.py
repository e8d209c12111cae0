"""Server-sent events for a streamed chat turn.

The turn runs in its own task and feeds a queue; the response only drains the queue. So a
client that disconnects does not cut the turn short: its reply and tool calls are still
stored, and the conversation stays consistent for the next message.

Events: ``tool_call`` ({name, arguments, result}) as each call completes, ``message``
({response}) with the reply, ``done`` ({conversation_id}); or, when something fails after
the stream began, one ``error`` ({detail, code, request_id, status}) and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from chat_service.agents.base import AgentEvent, ToolCallEvent
from shared.errors import AppError, DatabaseUnavailable, error_event
from shared.middleware import error_for
from shared.request_context import current_request_id
from shared.streams import sse

logger = logging.getLogger(__name__)


def agent_event(event: AgentEvent) -> bytes:
    if isinstance(event, ToolCallEvent):
        return sse("tool_call", event.call.record())
    return sse("message", {"response": event.text})


async def replay(answer: dict[str, Any]) -> AsyncIterator[bytes]:
    """A stored answer ({conversation_id, response, tool_calls}) as the events of its turn."""
    for record in answer.get("tool_calls") or []:
        yield sse("tool_call", record)
    yield sse("message", {"response": answer.get("response")})
    yield sse("done", {"conversation_id": answer.get("conversation_id")})


_END = object()


def stream_turn(
    run: Callable[[Callable[[AgentEvent], Awaitable[None]]], Awaitable[int]],
    *,
    tasks: set[asyncio.Task[None]],
) -> AsyncIterator[bytes]:
    """Start ``run(emit)`` (which returns the conversation id) and stream what it emits.

    The task is kept in ``tasks`` until it ends, so the app can wait for it at shutdown.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def emit(event: AgentEvent) -> None:
        await queue.put(agent_event(event))

    async def produce() -> None:
        try:
            conversation_id = await run(emit)
            await queue.put(sse("done", {"conversation_id": conversation_id}))
        except Exception as exc:
            error = error_for(exc)
            if isinstance(error, DatabaseUnavailable):
                logger.warning("database unavailable during a streamed turn: %r", exc)
            elif not isinstance(exc, AppError):
                logger.exception("chat turn failed while streaming")
            await queue.put(error_event(error, current_request_id()))
        finally:
            await queue.put(_END)

    task = asyncio.create_task(produce())
    tasks.add(task)
    task.add_done_callback(tasks.discard)

    async def drain() -> AsyncIterator[bytes]:
        while True:
            item = await queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    return drain()
