"""The chat service's application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from openai import AsyncOpenAI

from chat_service.agents.base import Agent
from chat_service.agents.openai_agent import OpenAIAgent, model_http_client
from chat_service.agents.rules import RulesAgent
from chat_service.api import router
from chat_service.models import DELETED_SUBJECTS
from chat_service.settings import AgentKind, ChatSettings, get_settings
from chat_service.todo_client import TodoMcp
from chat_service.turn import ChatContext
from shared.app import create_service_app, database
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.http import system_trust
from shared.tasks import stop_tasks
from shared.tokens import TokenVerifier
from shared.tombstones import Tombstones, TombstoneVerifier

# Streamed turns still running at shutdown get this long to store their reply.
SHUTDOWN_GRACE_SECONDS = 10.0


def create_app(
    settings: ChatSettings | None = None,
    *,
    db: Database | None = None,
    verifier: TokenVerifier | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    settings = settings or get_settings()
    # The MCP client's HTTP library logs every request at INFO; our access log already does.
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            jwks_http = await stack.enter_async_context(httpx.AsyncClient(verify=system_trust()))
            app.state.verifier = verifier or TokenVerifier.from_settings(
                settings.trusted_issuers(), http=jwks_http, leeway=settings.jwt_leeway_seconds
            )
            todo = TodoMcp(settings.todo_mcp_url, timeout=settings.todo_timeout_seconds)
            stack.push_async_callback(todo.aclose)
            agent = await _agent(settings, stack)
            await stack.enter_async_context(database(app, settings, name="chat", db=db))
            # A deleted account's remaining tokens are refused once its rows are purged.
            tombstones = Tombstones(app.state.db, DELETED_SUBJECTS)
            await stack.enter_async_context(tombstones.watching())
            app.state.verifier = TombstoneVerifier(app.state.verifier, tombstones)
            app.state.chat = ChatContext(
                settings=settings,
                db=app.state.db,
                agent=agent,
                todo=todo,
                clock=clock,
            )
            app.state.chat_tasks = set()
            stack.push_async_callback(_finish_streams, app.state.chat_tasks)
            yield

    app = create_service_app("chat", "Chat service", settings, lifespan, docs_prefix="/api/chat")
    app.include_router(router)
    return app


async def _agent(settings: ChatSettings, stack: contextlib.AsyncExitStack) -> Agent:
    if settings.agent is AgentKind.RULES:
        return RulesAgent(max_tool_calls=settings.max_tool_calls_per_turn)
    assert settings.openai_api_key is not None
    client = AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
        http_client=model_http_client(settings.openai_timeout_seconds),
    )
    stack.push_async_callback(client.close)
    return OpenAIAgent(
        client,
        model=settings.openai_model,
        max_tool_rounds=settings.openai_max_tool_rounds,
        max_output_tokens=settings.openai_max_output_tokens,
        max_output_tokens_field=settings.openai_max_output_tokens_field,
        timeout_seconds=settings.openai_timeout_seconds,
        max_tool_calls=settings.max_tool_calls_per_turn,
        temperature=settings.openai_temperature,
    )


async def _finish_streams(tasks: set[asyncio.Task[None]]) -> None:
    """Let streamed turns store their replies; cancel any that outstay the grace period."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=SHUTDOWN_GRACE_SECONDS)
    await stop_tasks(pending, seconds=1.0)
