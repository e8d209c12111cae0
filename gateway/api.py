"""The gateway's own routes: aggregated health and the merged OpenAPI document.

None of these is on the hot path, so they use FastAPI and httpx like every other service.
The probes (``/healthz``, ``/readyz``) come with the shared app factory, the docs page with
``shared.docs``.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel

from gateway import openapi
from gateway.cache import Cached
from gateway.routes import Upstream
from gateway.settings import GatewaySettings
from shared.errors import ServiceUnavailable, error_responses

# A service's OpenAPI document is kept this long (one that could not be fetched is retried
# after GATEWAY_OPENAPI_RETRY_SECONDS instead).
OPENAPI_CACHE_SECONDS = 30.0
# GET /api/health answers from one round of readiness checks for this long: a flood of
# requests costs each service one probe a second.
HEALTH_CACHE_SECONDS = 1.0


@dataclass
class GatewayState:
    """What the gateway's own routes need, built by the lifespan."""

    settings: GatewaySettings
    upstreams: dict[str, Upstream]
    http: httpx.AsyncClient
    health: Cached[dict[str, ServiceHealth]] = field(init=False)
    # Each service's document (None: it could not be fetched), and the last merge of them.
    openapi_parts: dict[str, Cached[dict[str, Any] | None]] = field(init=False)
    openapi_merged: tuple[list[dict[str, Any] | None], bytes] | None = None

    def __post_init__(self) -> None:
        self.health = Cached(lambda: _platform_readiness(self), lambda _: HEALTH_CACHE_SECONDS)
        retry = self.settings.openapi_retry_seconds
        self.openapi_parts = {
            name: Cached(
                functools.partial(_fetch_openapi, self, upstream),
                lambda document: OPENAPI_CACHE_SECONDS if document is not None else retry,
            )
            for name, upstream in self.upstreams.items()
            if upstream.openapi_path is not None
        }


async def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]


class ServiceHealth(BaseModel):
    status: Literal["ready", "not_ready", "unavailable"]
    http_status: int | None = None
    error: str | None = None


class PlatformHealth(BaseModel):
    status: Literal["ok"]
    services: dict[str, ServiceHealth]


router = APIRouter()


@router.get(
    "/api/health",
    tags=["platform"],
    response_model=PlatformHealth,
    response_model_exclude_none=True,
    responses=error_responses(
        503,
        descriptions={
            503: "At least one service is not ready: `service_unavailable`, and `detail` "
            "is the same object as the 200's, with `status` `degraded`"
        },
    ),
)
async def platform_health(state: State) -> Any:
    """Every service's readiness: 200 when all are ready, otherwise 503 with the same detail.
    Answered from one round of checks for up to a second."""
    services = await state.health.get()
    if all(service.status == "ready" for service in services.values()):
        return PlatformHealth(status="ok", services=services)
    detail = {
        "status": "degraded",
        "services": {name: s.model_dump(exclude_none=True) for name, s in services.items()},
    }
    raise ServiceUnavailable(detail=detail)


async def _platform_readiness(state: GatewayState) -> dict[str, ServiceHealth]:
    names = list(state.upstreams)
    results = await asyncio.gather(*(_readiness(state, state.upstreams[name]) for name in names))
    return dict(zip(names, results, strict=True))


async def _readiness(state: GatewayState, upstream: Upstream) -> ServiceHealth:
    try:
        response = await state.http.get(
            f"{upstream.url}/readyz", timeout=state.settings.health_timeout
        )
    except httpx.TimeoutException:
        return ServiceHealth(status="unavailable", error="timeout")
    except httpx.HTTPError:
        return ServiceHealth(status="unavailable", error="unreachable")
    if response.status_code == 200:
        return ServiceHealth(status="ready", http_status=200)
    return ServiceHealth(status="not_ready", http_status=response.status_code)


@router.get("/api/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request, state: State) -> Response:
    """The services' documents merged; a service that is down is left out, with a note.
    Merged again only when a service's document was fetched anew."""
    names = list(state.openapi_parts)
    fetched = await asyncio.gather(*(state.openapi_parts[name].get() for name in names))
    merged_before = state.openapi_merged
    if merged_before is not None and all(
        now is before for now, before in zip(fetched, merged_before[0], strict=True)
    ):
        return Response(merged_before[1], media_type="application/json")
    documents = {name: doc for name, doc in zip(names, fetched, strict=True) if doc is not None}
    unavailable = [name for name, doc in zip(names, fetched, strict=True) if doc is None]
    own = _own_document(request.app)
    merged = openapi.merge(
        {**documents, "gateway": own},
        prefixes={
            **{name: state.upstreams[name].prefixes for name in names},
            "gateway": ("/api/health",),
        },
        unavailable=unavailable,
        own="gateway",
    )
    body = json.dumps(merged, ensure_ascii=False, separators=(",", ":")).encode()
    state.openapi_merged = (fetched, body)
    return Response(body, media_type="application/json")


async def _fetch_openapi(state: GatewayState, upstream: Upstream) -> dict[str, Any] | None:
    try:
        response = await state.http.get(
            f"{upstream.url}{upstream.openapi_path}", timeout=state.settings.health_timeout
        )
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return document if isinstance(document, dict) and "paths" in document else None


def _own_document(app: FastAPI) -> dict[str, Any]:
    return get_openapi(title=app.title, version=app.version, routes=app.routes)
