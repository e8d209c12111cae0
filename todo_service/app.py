"""The todo service's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from shared.app import create_service_app, database
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.http import system_trust
from shared.sealing import SecretBox
from shared.streams import StreamSlots
from shared.tokens import TokenVerifier
from shared.tombstones import Tombstones, TombstoneVerifier
from todo_service.api import router
from todo_service.mcp import mount_mcp
from todo_service.models import DELETED_SUBJECTS
from todo_service.notifications_api import router as notifications_router
from todo_service.settings import TodoSettings, get_settings
from todo_service.stats import router as stats_router
from todo_service.webhooks.api import router as webhooks_router
from todo_service.webhooks.keys import WebhookKeys
from todo_service.webhooks.targets import Resolver, system_resolver


def create_app(
    settings: TodoSettings | None = None,
    *,
    db: Database | None = None,
    verifier: TokenVerifier | None = None,
    clock: Clock = utcnow,
    resolver: Resolver = system_resolver,
    webhook_box: SecretBox | None = None,
) -> FastAPI:
    """The app; ``db``, ``verifier``, ``clock``, the webhooks' DNS ``resolver`` and sealing
    ``webhook_box`` replace the real ones in tests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clock = clock
        app.state.notification_streams = StreamSlots(
            per_user=settings.notifications_streams_per_user,
            total=settings.notifications_streams_max,
        )
        app.state.webhook_resolver = resolver
        app.state.webhook_keys = WebhookKeys(settings, webhook_box)
        # The JWKS client: only key fetches use it (rare, cached), never the request path.
        async with httpx.AsyncClient(verify=system_trust()) as http:
            app.state.verifier = verifier or TokenVerifier.from_settings(
                settings.trusted_issuers(), http=http, leeway=settings.jwt_leeway_seconds
            )
            async with (
                database(app, settings, name="todo", db=db) as opened,
                Tombstones(opened, DELETED_SUBJECTS).watching() as tombstones,
            ):
                # A deleted account's remaining tokens are refused once its rows are purged.
                app.state.verifier = TombstoneVerifier(app.state.verifier, tombstones)
                yield

    app = create_service_app("todo", "Todo service", settings, lifespan, docs_prefix="/api/tasks")
    # Before the task routes: /api/tasks/stats is not a task id.
    app.include_router(stats_router)
    app.include_router(router)
    app.include_router(notifications_router)
    app.include_router(webhooks_router)
    mount_mcp(app, settings)
    return app
