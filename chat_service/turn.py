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

With an ``Idempotency-Key`` the turn first claims the key (``service.claim_turn_key``): a
retry of an answered turn replays the stored answer (``Replay``), and a retry of a failed one
runs again on the same stored user message. Every ``add_task`` call of a turn carries the key
``chat-<user message id>-<index of the call>`` to the todo service, so a turn run again, or a
tool call retried, adds its task once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chat_service import service
from chat_service.agents import base
from chat_service.agents.state import BULK_TOOLS, Awaiting, DialogueState, confirms
from chat_service.models import Role
from chat_service.settings import ChatSettings
from chat_service.todo_client import TodoMcp
from shared.clock import Clock
from shared.db import Database
from shared.errors import AppError, GatewayTimeout

logger = logging.getLogger(__name__)

Emit = Callable[[base.AgentEvent], Awaitable[None]]

# A keyed turn's attempt holds its key this much longer than the turn may take (the reply's
# write); a retry after that takes the turn over.
LEASE_MARGIN_SECONDS = 10.0


class TurnTimeout(
    GatewayTimeout, code="turn_timeout", message="The assistant did not finish in time"
):
    """The agent's whole turn took longer than the turn may take."""


class NoReply(
    AppError, status_code=502, code="no_reply", message="The assistant finished without a reply"
):
    """The agent's events ended without a ``ReplyEvent``."""


@dataclass(frozen=True)
class ChatContext:
    """What a turn needs besides the request; built once per app."""

    settings: ChatSettings
    db: Database
    agent: base.Agent
    todo: TodoMcp
    clock: Clock


@dataclass(frozen=True)
class TurnRequest:
    user_id: str
    token: str
    message: str
    conversation_id: int | None
    tz: ZoneInfo
    idempotency_key: str | None = None
    request_hash: str = ""  # of the validated body; compared when a key is reused


@dataclass(frozen=True)
class Turn:
    conversation_id: int
    message_id: int  # the stored user message
    history: tuple[base.HistoryMessage, ...]
    key_id: int | None = None  # the claimed turn key, with an Idempotency-Key


@dataclass(frozen=True)
class Replay:
    """A keyed turn answered before: its answer as stored ({conversation_id, response,
    tool_calls}), given again instead of running the turn twice."""

    answer: dict[str, Any]


@dataclass(frozen=True)
class TurnResult:
    conversation_id: int
    reply: str
    tool_calls: tuple[base.ToolCall, ...]


async def _no_emit(_: base.AgentEvent) -> None:
    return None


async def begin_turn(ctx: ChatContext, request: TurnRequest) -> Turn | Replay:
    """Store the user's message (committed) and return the history the agent will see; with
    an Idempotency-Key, the answer to replay or the earlier attempt's turn to run again."""
    now = ctx.clock()
    if request.idempotency_key is None:
        return await _store_message(ctx, request, now)
    claim = await service.claim_turn_key(
        ctx.db,
        request.user_id,
        key=request.idempotency_key,
        request_hash=request.request_hash,
        now=now,
        lease=timedelta(seconds=ctx.settings.turn_timeout_seconds + LEASE_MARGIN_SECONDS),
        ttl=timedelta(hours=ctx.settings.idempotency_ttl_hours),
    )
    if claim.answer is not None:
        return Replay(json.loads(claim.answer))
    try:
        if claim.conversation_id is not None and claim.message_id is not None:
            stored = await service.history_before(
                ctx.db,
                request.user_id,
                conversation_id=claim.conversation_id,
                message_id=claim.message_id,
                window=ctx.settings.history_window,
            )
            history = tuple(_history(message) for message in stored)
            return Turn(claim.conversation_id, claim.message_id, history, key_id=claim.id)
        turn = await _store_message(ctx, request, now)
        await service.record_turn_message(
            ctx.db,
            request.user_id,
            key_id=claim.id,
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
        )
    except Exception:
        await _release(ctx, request.user_id, claim.id)
        raise
    return replace(turn, key_id=claim.id)


async def _store_message(ctx: ChatContext, request: TurnRequest, now: datetime) -> Turn:
    if request.conversation_id is None:
        conversation_id, message_id = await service.start_conversation(
            ctx.db,
            request.user_id,
            first_message=request.message,
            now=now,
            max_conversations=ctx.settings.max_conversations_per_user,
        )
        return Turn(conversation_id=conversation_id, message_id=message_id, history=())
    message_id, stored = await service.continue_conversation(
        ctx.db,
        request.user_id,
        conversation_id=request.conversation_id,
        message=request.message,
        now=now,
        window=ctx.settings.history_window,
        max_messages=ctx.settings.max_messages_per_conversation,
    )
    history = tuple(_history(message) for message in stored)
    return Turn(conversation_id=request.conversation_id, message_id=message_id, history=history)


async def _release(ctx: ChatContext, user_id: str, key_id: int) -> None:
    """Let a retry take a failed keyed turn over now rather than when its lease lapses (best
    effort: when the database is what failed, the lease still ends on its own)."""
    try:
        await service.release_turn_key(ctx.db, user_id, key_id=key_id, now=ctx.clock())
    except Exception as exc:
        logger.warning("could not release a turn key: %r", exc)


class KeyedAdds:
    """``Tools`` that send each ``add_task`` call with the idempotency key
    ``chat-<message id>-<index of the call in the turn>``; calls are recorded as asked."""

    def __init__(self, tools: base.Tools, *, message_id: int) -> None:
        self._tools = tools
        self._prefix = f"chat-{message_id}-"
        self._index = 0

    async def specs(self) -> list[base.ToolSpec]:
        return await self._tools.specs()

    async def call(self, name: str, arguments: dict[str, Any]) -> base.ToolCall:
        index = self._index
        self._index += 1
        if name != "add_task":
            return await self._tools.call(name, arguments)
        keyed = {**arguments, "idempotency_key": f"{self._prefix}{index}"}
        return replace(await self._tools.call(name, keyed), arguments=arguments)


# Task ids a user's message names as numbers ("delete 3, 4 and 5"); longer runs of digits
# name no task (ids are bigints).
_NAMED_ID = re.compile(r"(?<![0-9])[0-9]{1,19}(?![0-9])")


# The single-task tools that change a task, whose repeated calls would be a bulk change
# without a confirmation, each with what it takes to run on more: the bulk tool that asks
# for the user's yes, or (no bulk update: a model cannot say which changes the user agreed
# to) the user naming the tasks.
_ONE_UNNAMED = {
    "delete_task": "the user's yes to exactly those tasks first: ask with delete_tasks",
    "complete_task": "the user's yes to exactly those tasks first: ask with complete_tasks",
    "update_task": "the user to name those tasks by number: ask which ones",
}


class ConfirmedBulk:
    """``Tools`` that run a bulk call (``complete_tasks``, ``delete_tasks``) only when it is
    the one the conversation's last assistant message asked to confirm, on exactly those
    tasks, and the user's message says yes. Otherwise the call is refused (code
    ``confirmation_required``) without reaching the todo service, whichever agent made it: a
    model can be talked into a bulk call by a task title, this check cannot.

    Nor into a bulk change made of single ones: in one turn, ``delete_task``,
    ``complete_task`` and ``update_task`` each run on at most one task the user did not name,
    by its number in the message or as one of the tasks the last reply offered to choose
    from (that one task may be changed again: "move the dentist to friday and make it
    urgent"); a further one is refused the same way (a bulk tool asks the question; updates
    need the tasks named)."""

    def __init__(
        self, tools: base.Tools, *, history: tuple[base.HistoryMessage, ...], message: str
    ) -> None:
        self._tools = tools
        last = history[-1] if history else None
        self._state = last.state if last is not None and last.role == Role.ASSISTANT else None
        self._message = message
        self._used = False
        self._named = {int(number) for number in _NAMED_ID.findall(message)}
        if self._state is not None and self._state.awaiting is Awaiting.CHOICE:
            self._named.update(self._state.candidates)
        # Each tool's one task the user did not name, once it ran on one.
        self._unnamed_written: dict[str, object] = {}

    async def specs(self) -> list[base.ToolSpec]:
        return await self._tools.specs()

    async def call(self, name: str, arguments: dict[str, Any]) -> base.ToolCall:
        if name in _ONE_UNNAMED:
            return await self._single(name, arguments)
        if name not in BULK_TOOLS:
            return await self._tools.call(name, arguments)
        allowed = (
            not self._used
            and self._state is not None
            and confirms(self._state, self._message, name, arguments)
        )
        if not allowed:
            return base.ToolCall(
                name,
                arguments,
                error="A bulk change needs the user's yes to exactly these tasks first",
                code="confirmation_required",
            )
        self._used = True  # one confirmation, one bulk call
        return await self._tools.call(name, arguments)

    async def _single(self, name: str, arguments: dict[str, Any]) -> base.ToolCall:
        task_id = arguments.get("task_id")
        named = isinstance(task_id, int) and not isinstance(task_id, bool)
        unnamed = not (named and task_id in self._named)
        if unnamed and self._unnamed_written.setdefault(name, task_id) != task_id:
            return base.ToolCall(
                name,
                arguments,
                error=f"Calling {name} on more than one task in a message needs "
                f"{_ONE_UNNAMED[name]}",
                code="confirmation_required",
            )
        return await self._tools.call(name, arguments)


async def run_turn(
    ctx: ChatContext, request: TurnRequest, turn: Turn, emit: Emit = _no_emit
) -> TurnResult:
    """Run the agent and store its reply. Tool calls are emitted as they complete; the reply
    is emitted once it is stored."""
    try:
        result = await _run_and_store(ctx, request, turn, emit)
    except Exception:
        if turn.key_id is not None:
            await _release(ctx, request.user_id, turn.key_id)
        raise
    await emit(base.ReplyEvent(result.reply))
    return result


async def _run_and_store(
    ctx: ChatContext, request: TurnRequest, turn: Turn, emit: Emit
) -> TurnResult:
    calls: list[base.ToolCall] = []
    reply: str | None = None
    state: DialogueState | None = None
    try:
        async with asyncio.timeout(ctx.settings.turn_timeout_seconds):
            async with ctx.todo.session(token=request.token, user_id=request.user_id) as mcp:
                confirmed = ConfirmedBulk(mcp, history=turn.history, message=request.message)
                tools = KeyedAdds(confirmed, message_id=turn.message_id)
                events = ctx.agent.run(
                    base.TurnInput(
                        turn.history, request.message, tools, now=ctx.clock(), tz=request.tz
                    )
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, base.ToolCallEvent):
                            calls.append(event.call)
                            await emit(event)
                        elif isinstance(event, base.ReplyEvent):
                            reply, state = event.text, event.state
    except TimeoutError:
        raise TurnTimeout() from None
    if reply is None:
        raise NoReply()

    records = [call.record() for call in calls]
    answer = None
    if turn.key_id is not None:
        stored = {"conversation_id": turn.conversation_id, "response": reply, "tool_calls": records}
        answer = (turn.key_id, json.dumps(stored, ensure_ascii=False, default=str))
    await service.add_message(
        ctx.db,
        request.user_id,
        conversation_id=turn.conversation_id,
        role=Role.ASSISTANT,
        content=reply,
        tool_calls=records,
        now=ctx.clock(),
        answer_of_key=answer,
        state=state.dump() if state is not None else None,
    )
    return TurnResult(turn.conversation_id, reply, tuple(calls))


def _history(message: service.StoredMessage) -> base.HistoryMessage:
    calls = tuple(base.ToolCall.from_record(record) for record in message.tool_calls or [])
    state = DialogueState.load(message.state)
    return base.HistoryMessage(message.role, message.content, tool_calls=calls, state=state)
