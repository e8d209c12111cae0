"""One stateless chat turn: everything it needs comes from the database and the request.

1. ``begin_turn``: check the conversation is the user's (or start one), load the bounded
   history window, store the user's message and commit, so the message survives whatever
   happens next.
2. ``run_turn``: run the agent with the todo tools (MCP, the user's own token), reporting each
   tool call as it completes; then store the assistant's reply with its tool calls in a
   second short transaction. A failure raises before anything of the reply is stored, so no
   half-written assistant message remains.

Two units of work instead of the request's one: no database transaction stays open while
the agent waits on the network, and the user's message is kept even when the turn fails. Each
is a single statement straight through the driver (the turn is the service's hot path).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from chat_service import service
from chat_service.agents.base import (
    Agent,
    AgentEvent,
    HistoryMessage,
    ReplyEvent,
    ToolCall,
    ToolCallEvent,
)
from chat_service.models import Role
from chat_service.settings import ChatSettings
from chat_service.todo_client import TodoMcp
from shared.clock import Clock
from shared.db import Bind
from shared.errors import AppError, GatewayTimeout

Emit = Callable[[AgentEvent], Awaitable[None]]


class TurnTimeout(GatewayTimeout):
    code = "turn_timeout"
    message = "The assistant did not finish in time"


class NoReply(AppError):
    status_code = 502
    code = "no_reply"
    message = "The assistant finished without a reply"


@dataclass(frozen=True)
class ChatContext:
    """What a turn needs besides the request; built once per app."""

    settings: ChatSettings
    db: Bind
    agent: Agent
    todo: TodoMcp
    clock: Clock


@dataclass(frozen=True)
class TurnRequest:
    user_id: str
    token: str
    message: str
    conversation_id: int | None
    tz: ZoneInfo


@dataclass(frozen=True)
class Turn:
    conversation_id: int
    history: tuple[HistoryMessage, ...]


@dataclass(frozen=True)
class TurnResult:
    conversation_id: int
    reply: str
    tool_calls: tuple[ToolCall, ...]


async def _no_emit(_: AgentEvent) -> None:
    return None


async def begin_turn(ctx: ChatContext, request: TurnRequest) -> Turn:
    """Store the user's message (committed) and return the history the agent will see."""
    now = ctx.clock()
    if request.conversation_id is None:
        conversation_id = await service.start_conversation(
            ctx.db, request.user_id, first_message=request.message, now=now
        )
        return Turn(conversation_id=conversation_id, history=())
    stored = await service.continue_conversation(
        ctx.db,
        request.user_id,
        conversation_id=request.conversation_id,
        message=request.message,
        now=now,
        window=ctx.settings.history_window,
    )
    history = tuple(_history(message) for message in stored)
    return Turn(conversation_id=request.conversation_id, history=history)


async def run_turn(
    ctx: ChatContext, request: TurnRequest, turn: Turn, emit: Emit = _no_emit
) -> TurnResult:
    """Run the agent and store its reply. Tool calls are emitted as they complete; the reply
    is emitted once it is stored."""
    calls: list[ToolCall] = []
    reply: str | None = None
    try:
        async with asyncio.timeout(ctx.settings.turn_timeout_seconds):
            async with ctx.todo.session(token=request.token, user_id=request.user_id) as tools:
                events = ctx.agent.run(
                    turn.history, request.message, tools, now=ctx.clock(), tz=request.tz
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, ToolCallEvent):
                            calls.append(event.call)
                            await emit(event)
                        elif isinstance(event, ReplyEvent):
                            reply = event.text
    except TimeoutError:
        raise TurnTimeout() from None
    if reply is None:
        raise NoReply()

    await service.add_message(
        ctx.db,
        request.user_id,
        conversation_id=turn.conversation_id,
        role=Role.ASSISTANT,
        content=reply,
        tool_calls=[call.record() for call in calls],
        now=ctx.clock(),
    )
    await emit(ReplyEvent(reply))
    return TurnResult(turn.conversation_id, reply, tuple(calls))


def _history(message: service.StoredMessage) -> HistoryMessage:
    calls = tuple(ToolCall.from_record(record) for record in message.tool_calls or [])
    return HistoryMessage(role=message.role, content=message.content, tool_calls=calls)
