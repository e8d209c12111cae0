"""The gateway's application factory.

``create_app`` returns a :class:`Gateway`: a FastAPI app for the lifespan and the gateway's
own routes, whose ASGI entry hands every HTTP request to the raw :class:`Edge` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from gateway.headers import TrustedProxies
from gateway.own import GatewayState, router
from gateway.proxy import Edge, client_session
from gateway.ratelimit import RateLimiter
from gateway.routes import DOCS_URL, upstreams_from
from gateway.settings import GatewaySettings, get_settings
from shared.docs import add_swagger_ui
from shared.errors import install_error_handlers
from shared.log import configure_logging
from shared.metrics import start_metrics_server
from shared.tokens import IssuerKeys, JWKSKeySource, KeySource, SecretKeySource, TokenVerifier

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


def build_verifier(
    settings: GatewaySettings, http: httpx.AsyncClient
) -> tuple[TokenVerifier, list[JWKSKeySource]]:
    """The trusted issuers' verifier, and its JWKS sources (to warm them up at start)."""
    issuers = []
    jwks_sources = []
    for issuer in settings.trusted_issuers():
        source: KeySource
        if issuer.hs256_secret is not None:
            source = SecretKeySource(issuer.hs256_secret.get_secret_value())
        else:
            assert issuer.jwks_url is not None
            source = JWKSKeySource(issuer.jwks_url, http=http)
            jwks_sources.append(source)
        issuers.append(IssuerKeys(issuer.issuer, issuer.audience, issuer.algorithm, source))
    return TokenVerifier(issuers, leeway=settings.jwt_leeway_seconds), jwks_sources


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


def create_app(
    settings: GatewaySettings | None = None, *, verifier: TokenVerifier | None = None
) -> Gateway:
    """The gateway. ``verifier`` replaces the one built from settings (tests)."""
    settings = settings or get_settings()
    configure_logging(
        "gateway",
        level=settings.log_level,
        json_lines=settings.log_json
        if settings.log_json is not None
        else not settings.is_development,
    )
    # Health and OpenAPI fetches are the gateway's own business, not worth a line each.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    upstreams = upstreams_from(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, Gateway)
        stop_metrics = start_metrics_server(settings.metrics_host, settings.metrics_port)
        http = httpx.AsyncClient(timeout=settings.health_timeout)
        active_verifier, jwks_sources = (
            (verifier, []) if verifier is not None else build_verifier(settings, http)
        )
        warmup = asyncio.create_task(warm_keys(jwks_sources))
        sessions = {
            name: client_session(
                upstream,
                max_connections=settings.upstream_max_connections,
                keepalive=settings.upstream_keepalive_seconds,
            )
            for name, upstream in upstreams.items()
        }
        app.state.gateway = GatewayState(
            settings=settings, upstreams=upstreams, http=http, verifier=active_verifier
        )
        app.state.limiter = RateLimiter(
            settings.rate_limit_storage_uri, settings.rate_limit_strategy
        )
        edge = Edge(
            upstreams=upstreams,
            sessions=sessions,
            verifier=active_verifier,
            limiter=app.state.limiter,
            user_limits=settings.user_limits(),
            ip_limits=settings.auth_ip_limits(),
            trusted_proxies=TrustedProxies(settings.trusted_networks()),
            cors_origins=settings.cors_origins,
            cors_max_age=settings.cors_max_age,
            hsts=settings.strict_transport_security,
            max_body_bytes=settings.max_body_bytes,
            own_app=functools.partial(FastAPI.__call__, app),
            access_log=settings.access_log,
        )
        app.edge = edge
        try:
            yield
        finally:
            app.edge = None
            warmup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warmup
            await edge.close()
            await http.aclose()
            stop_metrics()

    app = Gateway(
        title="Gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    # Swagger UI on the merged document; Authorize logs in at /api/auth/login.
    add_swagger_ui(
        app, docs_url=DOCS_URL, openapi_url="/api/openapi.json", title="Todo platform API"
    )
    return app
