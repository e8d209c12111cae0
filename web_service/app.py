"""The web service's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.app import create_service_app, database, database_ready
from shared.clock import Clock, utcnow
from shared.db import Database
from web_service.settings import WebSettings, get_settings


def create_app(
    settings: WebSettings | None = None,
    *,
    db: Database | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database(app, settings, name="web", db=db):
            yield

    app = create_service_app(
        name="web",
        title="Web client",
        settings=settings,
        lifespan=lifespan,
        readiness={"database": database_ready},
        openapi_url=None,
    )
    return app
