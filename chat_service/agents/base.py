"""The one small interface every agent backend implements, and what flows through it.

An agent reads the bounded history and the new message, calls tools through ``Tools`` (the
todo service's MCP tools in production), and yields events: each tool call as it completes,
then exactly one reply. Failures it cannot answer for (the todo service down, the model
failing) are raised as ``AppError``s and become the turn's error, never a reply.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from chat_service.agents.state import NOTHING, DialogueState


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One completed tool call. ``error`` is the tool's own message when it refused, and
    ``code`` the refusal's machine-readable kind (``not_found``, ``stale``, ...) when the tool
    gave one: agents decide by the code, never by the message's wording."""

    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict[str, Any]:
        """The stored and public shape: ``{name, arguments, result}``."""
        result: Any = self.result
        if self.error is not None:
            result = {"error": self.error}
            if self.code is not None:
                result["code"] = self.code
        return {"name": self.name, "arguments": self.arguments, "result": result}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ToolCall:
        result = record.get("result")
        name, arguments = record.get("name", ""), record.get("arguments") or {}
        if isinstance(result, dict) and {"error"} <= set(result) <= {"error", "code"}:
            code = result.get("code")
            code = code if isinstance(code, str) else None
            return cls(name, arguments, error=str(result["error"]), code=code)
        return cls(name, arguments, result=result)


DEFAULT_MAX_TOOL_CALLS = 10


def too_many_tool_calls(limit: int) -> str:
    """The reply to a request that would take more than ``limit`` tool calls in one turn."""
    return (
        f"That would take more than {limit} task operations in one message, which is more "
        f"than I do at once. Please narrow it down, for example to {limit} tasks or fewer, "
        "and send the rest in another message."
    )


def in_users_zone(name: str, arguments: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """The arguments of a tool call, with the user's zone (the turn's) as the ``time_zone``
    of a task added with a recurrence, unless the call names one (a null names none): the
    series then keeps the local time the user asked for across changes of daylight-saving
    time."""
    recurring = arguments.get("recurrence") not in (None, "none")
    if name == "add_task" and recurring and arguments.get("time_zone") is None:
        return {**arguments, "time_zone": tz.key}
    return arguments


class Tools(Protocol):
    async def call(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        """Run a tool; a refusal comes back as ``ToolCall.error``, an outage raises."""
        ...

    async def specs(self) -> list[ToolSpec]: ...


@dataclass(frozen=True)
class HistoryMessage:
    role: str  # "user" | "assistant"
    content: str
    tool_calls: tuple[ToolCall, ...] = field(default=())
    state: DialogueState = NOTHING  # what an assistant message waits for


@dataclass(frozen=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True)
class ReplyEvent:
    text: str
    state: DialogueState = NOTHING  # what the reply waits for, stored with it
    over_bound: bool = False  # the request would pass the turn's tool calls: nothing was run


def over_bound(limit: int) -> ReplyEvent:
    """The reply to a request that would take more than ``limit`` tool calls in one turn,
    none of which was made."""
    return ReplyEvent(too_many_tool_calls(limit), over_bound=True)


AgentEvent = ToolCallEvent | ReplyEvent


@dataclass(frozen=True)
class TurnInput:
    """What an agent answers in one turn: the stored history, the user's new message, the
    tools it may call, and the user's moment and time zone (what "tomorrow at 9" means)."""

    history: Sequence[HistoryMessage]
    message: str
    tools: Tools
    now: datetime
    tz: ZoneInfo


class Agent(Protocol):
    def run(self, turn: TurnInput) -> AsyncGenerator[AgentEvent, None]:
        """Answer ``turn.message``: tool-call events as they happen, then one ``ReplyEvent``."""
        ...
