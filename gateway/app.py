"""The gateway's application factory.

``create_app`` returns a :class:`Gateway`: a FastAPI app for the lifespan and the gateway's
own routes, whose ASGI entry hands every HTTP request to the raw :class:`Edge` first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from gateway.api import GatewayState, router
from gateway.proxy import Collaborators, Edge, client_session
from gateway.ratelimit import RateLimiter
from gateway.routes import DOCS_URL, upstreams_from
from gateway.settings import GatewaySettings, get_settings
from shared.app import create_service_app
from shared.docs import add_swagger_ui
from shared.http import system_trust
from shared.tasks import stop_tasks
from shared.tokens import JWKSKeySource, TokenVerifier

logger = logging.getLogger(__name__)

# Key warm-up at start: retried with backoff for about a minute (the auth service may start
# at the same moment); after that an unknown key id still triggers a fetch on demand.
WARMUP_ATTEMPTS = 16
WARMUP_MAX_DELAY = 5.0


class Gateway(FastAPI):
    """FastAPI for the lifespan and the gateway's own routes; HTTP enters through the Edge.

    Overriding ``__call__`` keeps a proxied request free of Starlette's middleware stack and
    router: the Edge answers it directly and calls back into FastAPI only for own routes.
    """

    edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge
        if edge is not None and scope["type"] == "http":
            await edge(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def warm_keys(sources: list[JWKSKeySource]) -> None:
    """Load every issuer's keys as soon as it answers, so the first tokens verify at once."""
    delay = 0.1
    pending = list(sources)
    for _ in range(WARMUP_ATTEMPTS):
        for source in pending:
            await source.refresh(force=True)
        pending = [source for source in pending if not await source.ready()]
        if not pending:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, WARMUP_MAX_DELAY)
    logger.warning("keys not loaded yet from %s", ", ".join(s.url for s in pending))


async def keys_ready(app: FastAPI) -> bool:
    """Readiness: the trusted issuers' keys are loaded (the upstreams are not checked)."""
    verifier: TokenVerifier = app.state.verifier
    return await verifier.ready()


def create_app(
    settings: GatewaySettings | None = None, *, verifier: TokenVerifier | None = None
) -> Gateway:
    """The gateway. ``verifier`` replaces the one built from settings (tests)."""
    settings = settings or get_settings()
    upstreams = upstreams_from(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, Gateway)
        http = httpx.AsyncClient(timeout=settings.health_timeout, verify=system_trust())
        app.state.verifier = verifier or TokenVerifier.from_settings(
            settings.trusted_issuers(), http=http, leeway=settings.jwt_leeway_seconds
        )
        warmup = asyncio.create_task(warm_keys(app.state.verifier.jwks_sources()))
        app.state.gateway = GatewayState(settings=settings, upstreams=upstreams, http=http)
        collaborators = Collaborators(
            sessions={
                name: client_session(
                    upstream,
                    max_connections=settings.upstream_max_connections,
                    keepalive=settings.upstream_keepalive_seconds,
                )
                for name, upstream in upstreams.items()
            },
            verifier=app.state.verifier,
            limiter=RateLimiter(settings.rate_limit_storage_uri, settings.rate_limit_strategy),
            own_app=functools.partial(FastAPI.__call__, app),
        )
        edge = Edge(settings, collaborators)
        app.edge = edge
        try:
            yield
        finally:
            app.edge = None
            await stop_tasks([warmup])
            await edge.close()
            await http.aclose()

    app = create_service_app(
        name="gateway",
        title="Gateway",
        settings=settings,
        lifespan=lifespan,
        readiness={"keys": keys_ready},
        app_class=Gateway,
        # The Edge gives every request, own routes included, its id, metrics and log line.
        request_context=False,
        openapi_url=None,
    )
    assert isinstance(app, Gateway)
    # Health and OpenAPI fetches are the gateway's own business, not worth a line each.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app.include_router(router)
    # Swagger UI on the merged document (the gateway serves no document of its own, so the
    # factory adds none); Authorize logs in at /api/auth/login.
    add_swagger_ui(
        app, docs_url=DOCS_URL, openapi_url="/api/openapi.json", title="Todo platform API"
    )
    return app
