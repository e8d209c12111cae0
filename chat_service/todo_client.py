"""The chat service as an MCP client of the todo service (streamable HTTP, the official SDK).

One ``TodoMcp`` per app owns a pooled HTTP transport (aiohttp's, under the SDK's httpx2
client: see ``chat_service.wire``) and the tool-listing cache; each turn
opens a light ``Client`` carrying the user's own bearer token, so the todo service authorises
every call from the token exactly as it would for the user. The connection speaks the
stateless 2026-07-28 protocol directly (no handshake round trip): any todo replica can answer.

Failures become our error envelope: refused connections -> 503, timeouts -> 504, a rejected
token -> 401, anything else the todo service answers badly -> 502. A tool's own refusal
("Task 7 not found") is not a failure: it goes back to the agent as ``ToolCall.error``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.caching import CacheConfig, InMemoryResponseCacheStore
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
    CallToolRequest,
    CallToolRequestParams,
    CallToolResult,
    Implementation,
    TextContent,
)
from mcp_types.version import LATEST_MODERN_VERSION
from pydantic import ValidationError

from chat_service.agents.base import ToolCall, ToolSpec
from chat_service.wire import AiohttpTransport
from shared.errors import AppError, BadGateway, GatewayTimeout, ServiceUnavailable, Unauthorized

logger = logging.getLogger(__name__)

CLIENT_INFO = Implementation(name="todo-platform-chat", version="1")


class TodoUnavailable(
    ServiceUnavailable,
    code="todo_unavailable",
    message="The todo service is unavailable; please try again shortly",
):
    """The todo service could not be reached, or answered 502, 503 or 504."""


class TodoTimeout(
    GatewayTimeout, code="todo_timeout", message="The todo service did not answer in time"
):
    """A tool call or the connection to the todo service ran out of time."""


class TodoBadAnswer(
    BadGateway,
    code="todo_bad_answer",
    message="The todo service answered in a way the assistant could not use",
):
    """An MCP answer that does not parse, or an error the client has no meaning for."""


class TodoRefusedToken(
    Unauthorized, code="invalid_token", message="The todo service refused the access token"
):
    """The todo service answered 401 to the user's access token the turn passed on."""


class _SharedTransport(httpx2.AsyncBaseTransport):
    """Lends the app's pooled transport to a per-turn client without letting it close it."""

    def __init__(self, transport: httpx2.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class TodoMcp:
    """The todo service's MCP endpoint, for the lifetime of the chat app."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._transport = transport or AiohttpTransport(max_connections=100)
        self._lent = _SharedTransport(self._transport)
        # The tool listing is the same for everyone ("public"); one store serves every turn.
        self._cache = InMemoryResponseCacheStore(max_entries=256)

    async def aclose(self) -> None:
        await self._transport.aclose()

    @asynccontextmanager
    async def session(self, *, token: str, user_id: str) -> AsyncIterator[McpTools]:
        """The todo tools for one turn, calling as the user whose ``token`` this is."""
        statuses: list[int] = []

        async def remember_status(response: httpx2.Response) -> None:
            statuses.append(response.status_code)

        http = httpx2.AsyncClient(
            transport=self._lent,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(self.timeout),
            event_hooks={"response": [remember_status]},
            trust_env=False,
        )
        client = Client(
            streamable_http_client(self.url, http_client=http),
            mode=LATEST_MODERN_VERSION,
            # The SDK's own wait is a little longer, so the HTTP timeout is the one that fires.
            read_timeout_seconds=self.timeout + 1,
            client_info=CLIENT_INFO,
            cache=CacheConfig(
                store=self._cache, partition=user_id, target_id=self.url, share_public=True
            ),
        )
        try:
            async with client:
                yield McpTools(client, statuses)
        except BaseException as exc:
            mapped = _failure(exc)
            if mapped is None:
                raise
            raise mapped from None


class McpTools:
    """``Tools`` over one MCP client session."""

    def __init__(self, client: Client, statuses: list[int]) -> None:
        self._client = client
        self._statuses = statuses

    async def specs(self) -> list[ToolSpec]:
        try:
            listing = await self._client.list_tools()
        except MCPError as exc:
            raise self._rpc_failure(exc) from None
        return [
            ToolSpec(tool.name, tool.description or "", dict(tool.input_schema))
            for tool in listing.tools
        ]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        request = CallToolRequest(params=CallToolRequestParams(name=name, arguments=arguments))
        try:
            # The session's plain request, not Client.call_tool: that one re-validates the
            # result against the tool's output schema with jsonschema (and lists the tools
            # first to learn it), which cost more than the rest of a turn; the answer is read
            # defensively below anyway.
            result = await self._client.session.send_request(request, CallToolResult)
        except MCPError as exc:
            if exc.code in {INVALID_PARAMS, METHOD_NOT_FOUND}:
                return ToolCall(name, arguments, error=exc.message)
            raise self._rpc_failure(exc) from None
        except (RuntimeError, ValidationError) as exc:
            logger.warning("unusable answer from todo tool %s: %s", name, exc)
            raise TodoBadAnswer() from None
        text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
        if result.is_error:
            message, code = _refusal(result.structured_content, text)
            return ToolCall(name, arguments, error=message, code=code)
        value: Any = result.structured_content
        if isinstance(value, dict) and "result" in value and set(value) <= {"result", "total"}:
            # The SDK wraps non-object results (lists) this way; list_tasks adds its total.
            value = value["result"]
        elif value is None:
            value = _json_or_text(text)
        return ToolCall(name, arguments, result=value)

    def _rpc_failure(self, exc: MCPError) -> AppError:
        status = self._statuses[-1] if self._statuses else None
        if exc.code == REQUEST_TIMEOUT:
            return TodoTimeout()
        if status == 401:
            return TodoRefusedToken()
        if status in {502, 503, 504}:
            return TodoUnavailable()
        logger.warning("todo MCP error %s (HTTP %s): %s", exc.code, status, exc.message)
        return TodoBadAnswer()


def _refusal(structured: Any, text: str) -> tuple[str, str | None]:
    """A tool refusal's message and code. The code comes as structured content
    ``{"error": {"code", "message", ...}}``; a refusal without one (a tool of an older
    server) has the code None."""
    detail = structured.get("error") if isinstance(structured, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        message = detail.get("message") or detail.get("detail") or text
        return str(message)[:1000] or "The tool failed", detail["code"][:40]
    return text or "The tool failed", None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _failure(exc: BaseException) -> BaseException | None:
    """The error to raise for what escaped a turn's MCP session (None: re-raise as is).

    The SDK runs its transport in a task group, so failures arrive wrapped in exception
    groups: our own errors are unwrapped, transport failures translated, and anything else
    (a bug) re-raised unchanged.
    """
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, AppError):
            return leaf
    for leaf in leaves:
        if isinstance(leaf, httpx2.TimeoutException | TimeoutError):
            return TodoTimeout()
        if isinstance(leaf, httpx2.TransportError):
            return TodoUnavailable()
    if isinstance(exc, BaseExceptionGroup) and len(leaves) == 1:
        return leaves[0]
    return None
