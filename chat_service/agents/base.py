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


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One completed tool call. ``error`` is the tool's own message when it refused."""

    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict[str, Any]:
        """The stored and public shape: ``{name, arguments, result}``."""
        result = {"error": self.error} if self.error is not None else self.result
        return {"name": self.name, "arguments": self.arguments, "result": result}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ToolCall:
        result = record.get("result")
        if isinstance(result, dict) and set(result) == {"error"}:
            return cls(record.get("name", ""), record.get("arguments") or {}, error=result["error"])
        return cls(record.get("name", ""), record.get("arguments") or {}, result=result)


DEFAULT_MAX_TOOL_CALLS = 10


def too_many_tool_calls(limit: int) -> str:
    """The reply to a request that would take more than ``limit`` tool calls in one turn."""
    return (
        f"That would take more than {limit} task operations in one message, which is more "
        f"than I do at once. Please narrow it down, for example to {limit} tasks or fewer, "
        "and send the rest in another message."
    )


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


@dataclass(frozen=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True)
class ReplyEvent:
    text: str


AgentEvent = ToolCallEvent | ReplyEvent


class Agent(Protocol):
    def run(
        self,
        history: Sequence[HistoryMessage],
        message: str,
        tools: Tools,
        *,
        now: datetime,
        tz: ZoneInfo,
    ) -> AsyncGenerator[AgentEvent, None]:
        """Answer ``message``: tool-call events as they happen, then one ``ReplyEvent``."""
        ...
