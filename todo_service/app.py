"""The todo service's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.middleware import Middleware

from shared.app import create_service_app, database, database_ready
from shared.clock import Clock, utcnow
from shared.tokens import TokenVerifier
from todo_service.api import ListFastPath, router
from todo_service.mcp import mount_mcp
from todo_service.settings import TodoSettings, get_settings


def create_app(
    settings: TodoSettings | None = None,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    verifier: TokenVerifier | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """The app; ``sessionmaker``, ``verifier`` and ``clock`` replace the real ones in tests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clock = clock
        # The JWKS client: only key fetches use it (rare, cached), never the request path.
        async with httpx.AsyncClient() as http:
            app.state.verifier = verifier or TokenVerifier.from_settings(
                settings.trusted_issuers(), http=http, leeway=settings.jwt_leeway_seconds
            )
            async with database(app, settings, name="todo", sessionmaker=sessionmaker):
                yield

    app = create_service_app(
        name="todo",
        title="Todo service",
        settings=settings,
        lifespan=lifespan,
        readiness={"database": database_ready},
        docs_url="/api/tasks/docs",
        openapi_url="/api/tasks/openapi.json",
    )
    app.include_router(router)
    # Appended, so innermost: inside the request middleware, which create_service_app added.
    # It answers GET /api/tasks without the router: no dependency may be given to it here.
    app.user_middleware.append(Middleware(ListFastPath))
    mount_mcp(app, settings)
    return app
