"""An LLM agent: a plain chat-completions tool-calling loop for any OpenAI-compatible endpoint.

The model sees a system prompt, the bounded history window (earlier tool calls included, so
"delete it" can be resolved) and the new message, and may call the todo MCP tools for a
bounded number of rounds. A model that fails, times out or answers nothing is an error of
the turn (502/504), never a reply.

The model is an outside party whose answers are bounded like a client's request: each call
within its timeout (retries included), each answer within ``ANSWER_MAX_BYTES`` (as read, never
decompressed), and what it writes checked before it is run or stored: a reply is cut to
``REPLY_MAX_CHARS``, a tool call names a tool it was offered, and its arguments are a small,
shallow JSON object of text PostgreSQL can store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, Field

from chat_service.agents import base
from chat_service.agents.state import (
    BULK_TOOLS,
    MAX_CANDIDATES,
    NOTHING,
    PLATFORM_ARGUMENTS,
    Awaiting,
    DialogueState,
    PendingCommand,
    bulk_arguments,
    confirms,
)
from shared.errors import BadGateway, GatewayTimeout

logger = logging.getLogger(__name__)

# What a tool's answer may add to the prompt; longer listings are cut (the model is told).
TOOL_RESULT_MAX_CHARS = 8000
# The history replayed to the model, in characters of its JSON: the newest messages that fit
# (about 12,000 tokens), each earlier tool answer cut shorter than the current turn's. Every
# round of every turn sends it again, so without this bound a conversation of long listings
# would cost ten tool answers per stored reply on each call (and outgrow the model's context).
HISTORY_MAX_CHARS = 48_000
HISTORY_TOOL_RESULT_MAX_CHARS = 2000

# What the model may send. An answer is JSON of at most this many bytes as they arrive (a
# reply of the output budget, CHAT_OPENAI_MAX_OUTPUT_TOKENS, is a few kilobytes); larger is a
# failed call, whatever the endpoint or a proxy in front of it sends.
ANSWER_MAX_BYTES = 1024 * 1024
# A reply is stored, sent and replayed in the history: a longer one is cut.
REPLY_MAX_CHARS = 8000
# A tool call's arguments as the model wrote them (a task's longest text, JSON-escaped, fits),
# and how deep their JSON may nest (the tools' own are three levels deep).
ARGUMENTS_MAX_CHARS = 64 * 1024
ARGUMENTS_MAX_DEPTH = 16
TOOL_NAME_MAX_CHARS = 64
# Characters PostgreSQL cannot store in text or jsonb (NUL) or that are not Unicode scalar
# values (a lone surrogate, as JSON's "\ud800" decodes).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

SYSTEM_PROMPT = """\
You are the assistant of a todo app. You manage the user's tasks only through the tools.
- Adding, creating or remembering something: add_task. Seeing or listing: list_tasks with the \
right filter. Done, complete or finished: complete_task. Delete, remove or cancel: delete_task. \
Change, update or rename: update_task.
- Reminders: "remind me at 5pm to ..." is add_task with reminders [{{"at": ...}}]; "remind me \
an hour before" is update_task with reminders [{{"before_due_minutes": 60}}] (it replaces the \
task's reminders; [] removes them). "Remind me again in 10 minutes" snoozes, "dismiss it" \
dismisses, the latest unread notification from list_notifications.
- When the user names a task instead of giving its number, call list_tasks first to find its \
id; if several tasks match, ask which one. Never invent task ids. To read one task the user \
names by its number (its due date, whether it is done), call get_task: list_tasks holds only \
the newest tasks.
- Dates: the user's time zone is {tz}; it is now {now}. Send due dates as ISO 8601 with the \
offset.
- After acting, confirm what you did in one friendly sentence. If a tool reports an error \
(such as a task that was not found), explain it kindly.
"""


class ModelFailed(BadGateway, code="model_error", message="The language model failed to answer"):
    """The model's API refused or failed the request, or its answers lead nowhere."""


class ModelTimeout(
    GatewayTimeout, code="model_timeout", message="The language model did not answer in time"
):
    """The model's API did not answer within the client's timeout."""


class _Function(BaseModel):
    name: str
    arguments: str


class _ToolCall(BaseModel):
    id: str
    type: str
    function: _Function


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Answer(BaseModel):
    """What the agent reads of a chat completion, checked; anything else in it is ignored
    (servers add fields and values of their own), so a server that answers in the API's shape
    works and one that does not is a failed call (``ModelFailed``), not a crash."""

    choices: list[_Choice] = Field(min_length=1)


@dataclass(frozen=True)
class OpenAIAgent:
    """Implements ``Agent`` with an OpenAI-compatible chat-completions endpoint."""

    client: AsyncOpenAI = field(repr=False)
    _: KW_ONLY
    model: str
    max_tool_rounds: int
    max_output_tokens: int
    # The request field that carries it: OpenAI's current name, or the older ``max_tokens``
    # that some compatible servers (and older Azure API versions) know instead.
    max_output_tokens_field: str = "max_completion_tokens"
    timeout_seconds: float  # one call, the SDK's retries and their pauses included
    max_tool_calls: int = base.DEFAULT_MAX_TOOL_CALLS
    temperature: float | None = None

    async def run(self, turn: base.TurnInput) -> AsyncGenerator[base.AgentEvent, None]:
        history, tools = turn.history, turn.tools
        functions = [_function(spec) for spec in await tools.specs()]
        offered = {function["function"]["name"] for function in functions}
        local_now = turn.now.astimezone(turn.tz).isoformat(timespec="minutes")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT.format(tz=turn.tz.key, now=local_now)},
            *history_messages(history),
            {"role": "user", "content": turn.message},
        ]
        waiting = history[-1].state if history and history[-1].role == "assistant" else NOTHING
        made = 0
        # One more round than tool rounds: the last one must be the answer.
        for _ in range(self.max_tool_rounds + 1):
            reply = await self._complete(messages, functions)
            tool_calls = reply.tool_calls or []
            if not tool_calls:
                text = _storable((reply.content or "").strip())
                if not text:
                    raise ModelFailed("The language model returned an empty answer")
                if len(text) > REPLY_MAX_CHARS:
                    text = text[: REPLY_MAX_CHARS - 1] + "…"
                yield base.ReplyEvent(text)
                return
            # A round that would pass the turn's cap runs none of its calls: the user is
            # asked to narrow the request rather than left with a part of it done.
            made += sum(1 for call in tool_calls if call.type == "function")
            if made > self.max_tool_calls:
                yield base.over_bound(self.max_tool_calls)
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.content,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": call.function.arguments,
                            },
                        }
                        for call in tool_calls
                        if call.type == "function"
                    ],
                }
            )
            for requested in tool_calls:
                if requested.type != "function":
                    continue
                question = _unconfirmed_bulk(requested.function, waiting, turn.message)
                if question is not None:
                    yield question
                    return
                done = await _run_tool(
                    tools, offered, requested.function.name, requested.function.arguments, turn.tz
                )
                yield base.ToolCallEvent(done)
                messages.append(
                    {"role": "tool", "tool_call_id": requested.id, "content": _tool_content(done)}
                )
        raise ModelFailed("The language model kept calling tools without answering")

    async def _complete(
        self, messages: list[dict[str, Any]], functions: list[dict[str, Any]]
    ) -> _Message:
        extra: dict[str, Any] = {self.max_output_tokens_field: self.max_output_tokens}
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        try:
            # The SDK's timeout is per read and per attempt; this one is the call's.
            async with asyncio.timeout(self.timeout_seconds):
                answer = await self.client.chat.completions.with_raw_response.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    tools=functions,  # type: ignore[arg-type]
                    **extra,
                )
        except (TimeoutError, openai.APITimeoutError):
            raise ModelTimeout() from None
        except openai.APIError as exc:
            logger.warning("language model call failed: %s", exc)
            raise ModelFailed() from None
        try:
            return _Answer.model_validate(_strict_json(answer.content)).choices[0].message
        except (ValueError, RecursionError):  # not JSON, nested past the parser, or off-shape
            raise ModelFailed("The language model's answer is not a chat completion") from None


def _unconfirmed_bulk(
    function: Any, waiting: DialogueState, message: str
) -> base.ReplyEvent | None:
    """A bulk call the user has not confirmed becomes the question that asks them: the call
    runs on the next turn only if they answer yes (the chat service checks it again)."""
    if function.name not in BULK_TOOLS:
        return None
    try:
        arguments = _strict_json(function.arguments or "{}")
    except (ValueError, RecursionError):
        return None  # refused as invalid JSON when run
    ids = arguments.get("task_ids") if isinstance(arguments, dict) else None
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        return None  # refused by the tool's own validation
    if confirms(waiting, message, function.name, arguments):
        return None
    distinct = list(dict.fromkeys(ids))[:MAX_CANDIDATES]
    rest = bulk_arguments(function.name, arguments)
    # The question says what the yes will run: the arguments are kept with it and must match.
    if function.name == "delete_tasks":
        verb = "delete"
    elif not rest:
        verb = "mark as complete"
    elif rest == {"completed": False}:
        verb = "reopen"
    else:
        verb = f"change ({json.dumps(rest)[:200]})"
    listed = ", ".join(str(i) for i in distinct)
    return base.ReplyEvent(
        f"Before I {verb} {len(distinct)} task(s) ({listed}): shall I go ahead? Reply “yes” "
        "to confirm; anything else cancels.",
        DialogueState(
            awaiting=Awaiting.CONFIRMATION,
            candidates=tuple(distinct),
            command=PendingCommand(action=function.name, arguments=rest),
        ),
    )


async def _run_tool(
    tools: base.Tools, offered: set[str], name: str, raw_arguments: str, tz: ZoneInfo
) -> base.ToolCall:
    """The call the model asked for, run as the user, or refused (the refusal goes back to
    the model as the call's result, and the call is stored as the model wrote it but for
    what cannot be stored). A task added with a recurrence and no zone gets the user's
    (``base.in_users_zone``)."""
    if name not in offered:
        shown = _storable(name[:TOOL_NAME_MAX_CHARS])
        return base.ToolCall(shown, {}, error=f"There is no tool named {shown!r}")
    if len(raw_arguments or "") > ARGUMENTS_MAX_CHARS:
        return base.ToolCall(name, {}, error="The arguments are too long")
    try:
        arguments = _strict_json(raw_arguments or "{}")
    except (ValueError, RecursionError):
        return base.ToolCall(name, {}, error="The arguments were not valid JSON")
    if not isinstance(arguments, dict):
        return base.ToolCall(name, {}, error="The arguments must be a JSON object")
    if (problem := _unstorable_json(arguments)) is not None:
        return base.ToolCall(name, {}, error=problem)
    # The user is the token's subject, and idempotency keys are the platform's: the model has
    # no say in either.
    for platform_argument in PLATFORM_ARGUMENTS:
        arguments.pop(platform_argument, None)
    return await tools.call(name, base.in_users_zone(name, arguments, tz))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _strict_json(text: str | bytes) -> Any:
    """JSON as RFC 8259 has it: Python's parser also takes ``NaN`` and ``Infinity`` (and reads
    ``1e400`` as infinity), which neither PostgreSQL's jsonb nor a JSON client takes back."""
    return json.loads(text, parse_constant=_not_a_number, parse_float=_finite)


def _storable(text: str) -> str:
    """``text`` with what PostgreSQL cannot store (NUL, lone surrogates) as U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def _unstorable_json(value: Any, depth: int = 0) -> str | None:
    """Why decoded JSON arguments cannot be run and stored as they are, or None: nested
    deeper than ``ARGUMENTS_MAX_DEPTH``, or a key or string with a character PostgreSQL's
    jsonb refuses (the tool would refuse it too; the stored call must not fail the turn)."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value) is None:
            return None
        return "The arguments contain a character that is not allowed (NUL, lone surrogate)"
    if isinstance(value, dict):
        children = [*value, *value.values()]
    elif isinstance(value, list):
        children = value
    else:
        return None
    if depth == ARGUMENTS_MAX_DEPTH:
        return "The arguments are nested too deeply"
    for child in children:
        if (problem := _unstorable_json(child, depth + 1)) is not None:
            return problem
    return None


class _BoundedBody(httpx2.AsyncByteStream):
    """A response body that fails once more than ``limit`` bytes have arrived."""

    def __init__(self, stream: httpx2.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._stream:
            received += len(chunk)
            if received > self._limit:
                raise ModelFailed("The language model's answer is too large")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _BoundedTransport(httpx2.AsyncBaseTransport):
    """The model's HTTP transport: answers within ``ANSWER_MAX_BYTES``, and never encoded
    (the requests ask for ``identity``; a compressed answer could unpack to any size)."""

    def __init__(self, transport: httpx2.AsyncBaseTransport, limit: int) -> None:
        self._transport = transport
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = await self._transport.handle_async_request(request)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        length = response.headers.get("Content-Length", "0")
        if encoding != "identity" or not length.isdigit() or int(length) > self._limit:
            await response.aclose()
            raise ModelFailed("The language model's answer is too large or encoded")
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_BoundedBody(response.stream, self._limit),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


def model_http_client(timeout_seconds: float) -> httpx2.AsyncClient:
    """The HTTP client of the model's API: bounded answers, no redirects (a redirect would
    send the prompt, the user's messages and tasks, wherever the endpoint pointed)."""
    return httpx2.AsyncClient(
        transport=_BoundedTransport(httpx2.AsyncHTTPTransport(), ANSWER_MAX_BYTES),
        timeout=timeout_seconds,
        follow_redirects=False,
    )


def _function(spec: base.ToolSpec) -> dict[str, Any]:
    parameters = dict(spec.parameters)
    properties = dict(parameters.get("properties") or {})
    for platform_argument in PLATFORM_ARGUMENTS:
        properties.pop(platform_argument, None)
    parameters["properties"] = properties
    if isinstance(parameters.get("required"), list):
        parameters["required"] = [p for p in parameters["required"] if p not in PLATFORM_ARGUMENTS]
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": parameters},
    }


def _tool_content(call: base.ToolCall, limit: int = TOOL_RESULT_MAX_CHARS) -> str:
    content = json.dumps(call.record()["result"], default=str)
    if len(content) > limit:
        content = content[:limit] + " …(truncated)"
    return content


def message_chars(message: dict[str, Any]) -> int:
    """A chat message's size as the history budget counts it: the characters of its JSON."""
    return len(json.dumps(message, ensure_ascii=False))


def history_messages(history: Sequence[base.HistoryMessage]) -> list[dict[str, Any]]:
    """The stored window as chat messages, earlier tool calls replayed with their (shortened)
    results: the newest stored messages whose chat messages fit in ``HISTORY_MAX_CHARS``."""
    kept: list[list[dict[str, Any]]] = []
    used = 0
    for index in range(len(history) - 1, -1, -1):
        group = _history_group(index, history[index])
        size = sum(map(message_chars, group))
        if used + size > HISTORY_MAX_CHARS:
            break
        kept.append(group)
        used += size
    return [message for group in reversed(kept) for message in group]


def _history_group(index: int, message: base.HistoryMessage) -> list[dict[str, Any]]:
    """One stored message as chat messages: a user's text, or an assistant's tool calls with
    their results and then its reply."""
    if message.role != "assistant":
        return [{"role": "user", "content": message.content}]
    messages: list[dict[str, Any]] = []
    if message.tool_calls:
        ids = [f"call_{index}_{n}" for n in range(len(message.tool_calls))]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": json.dumps(call.arguments, default=str),
                        },
                    }
                    for call_id, call in zip(ids, message.tool_calls, strict=True)
                ],
            }
        )
        messages.extend(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": _tool_content(call, HISTORY_TOOL_RESULT_MAX_CHARS),
            }
            for call_id, call in zip(ids, message.tool_calls, strict=True)
        )
    messages.append({"role": "assistant", "content": message.content})
    return messages
