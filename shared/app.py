"""What every service's ``create_app`` shares: error envelope, middleware, probes, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.db import Database, wait_for_database
from shared.docs import add_swagger_ui
from shared.errors import NotReady, install_error_handlers
from shared.log import configure_logging
from shared.metrics import start_metrics_server
from shared.middleware import RequestContextMiddleware
from shared.openapi import install_openapi_corrections
from shared.settings import ServiceSettings

ReadinessCheck = Callable[[FastAPI], Awaitable[bool]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    name: str,
    title: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    *,
    docs_prefix: str | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    app_class: type[FastAPI] = FastAPI,
    request_context: bool = True,
    error_pages: bool = False,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the platform's common shape. Nothing connects until startup.

    ``docs_prefix``: the service's documentation page is ``<prefix>/docs`` and its OpenAPI
    document ``<prefix>/openapi.json``. ``readiness``: the checks of ``/readyz`` (by default
    the service's database). ``app_class`` is the FastAPI subclass to build (the gateway's);
    ``request_context=False`` leaves out the request-context middleware, for an app whose ASGI
    entry does that work for every request itself (the gateway's ``Edge``). ``error_pages``:
    what the request-context middleware refuses (a body over the limit, a database outage) is
    an HTML page rather than the envelope, for an app that people use (the web client).
    """
    if readiness is None:
        readiness = {"database": database_ready}
    if docs_prefix is not None:
        fastapi_kwargs.update(
            docs_url=f"{docs_prefix}/docs", openapi_url=f"{docs_prefix}/openapi.json"
        )
    configure_logging(
        name,
        level=settings.log_level,
        json_lines=settings.log_json
        if settings.log_json is not None
        else not settings.is_development,
    )

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_metrics = start_metrics_server(settings.metrics_host, settings.metrics_port)
        try:
            async with lifespan(app):
                yield
        finally:
            stop_metrics()

    # One documentation page per service, under the service's own prefix (the gateway reaches
    # it there); FastAPI's second UI at the root /redoc would be reachable on the port only.
    # The page is ours (shared.docs), not FastAPI's, whose loads Swagger UI from a CDN.
    fastapi_kwargs.setdefault("redoc_url", None)
    # The platform's metrics are Prometheus' (shared.metrics) and no OpenTelemetry SDK is
    # installed: FastAPI's OpenTelemetry bridge, on by default, would only ask the API for
    # its three providers on every request (about 3 % of a service's CPU) to find none.
    fastapi_kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
    docs_url: str | None = fastapi_kwargs.pop("docs_url", None)
    app = app_class(title=title, lifespan=_lifespan, docs_url=None, **fastapi_kwargs)
    app.state.settings = settings
    if docs_url is not None and app.openapi_url is not None:
        add_swagger_ui(app, docs_url=docs_url, openapi_url=app.openapi_url, title=title)
    install_error_handlers(app)
    install_openapi_corrections(app)
    if request_context:
        app.add_middleware(
            RequestContextMiddleware,
            service=name,
            max_body_bytes=settings.max_body_bytes,
            pages=error_pages,
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    checked = readiness

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: what this process needs itself is reachable."""
        checks = {check: await probe(request.app) for check, probe in checked.items()}
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        raise NotReady(checks)

    return app


@asynccontextmanager
async def database(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    name: str,
    db: Database | None = None,
) -> AsyncIterator[Database]:
    """Own the service's ``Database`` (its one pool) for the app's lifetime, as
    ``app.state.db``; a given one (the tests') is used as it is and left open."""
    owned = db is None
    if db is None:
        db = Database.open(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            connect_timeout=settings.db_connect_timeout,
            ping_after_idle=settings.db_ping_after_idle_seconds,
            application_name=name,
        )
    try:
        if owned:
            await wait_for_database(db.engine, attempts=settings.db_startup_attempts)
        app.state.db = db
        yield db
    finally:
        if owned:
            await db.dispose()


async def database_ready(app: FastAPI) -> bool:
    """Readiness probe: one trivial query within two seconds."""
    db: Database = app.state.db
    try:
        async with asyncio.timeout(2.0):
            await db.ping()
        return True
    except Exception:
        return False
