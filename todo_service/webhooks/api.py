"""HTTP routes of the webhooks (``/api/webhooks``): register, list, read, delete, and a
webhook's deliveries. Thin: parse, check the target, call the service, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from shared.deps import DatabaseDep, row_id
from shared.errors import ERROR_DESCRIPTIONS, ServiceUnavailable, ValidationFailed, error_responses
from shared.openapi import location_header
from shared.pagination import MAX_CURSOR_LENGTH, PAGE_HEADERS
from shared.sealing import SecretBox
from todo_service.routing import UserId, api_router, json_response, page_response
from todo_service.settings import TodoSettings
from todo_service.statements import PageJSON
from todo_service.webhooks import service
from todo_service.webhooks.keys import WebhookKeys
from todo_service.webhooks.schemas import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from todo_service.webhooks.targets import Resolver, TargetRefused, check_target, parse_target

router = api_router("/api/webhooks", "webhooks")
_ONE = error_responses(
    404, descriptions={404: "No such webhook, or not the current user's (`webhook_not_found`)"}
)

WebhookId = Annotated[int, row_id("webhook")]


class WebhooksUnavailable(
    ServiceUnavailable,
    code="webhooks_unavailable",
    message="Webhooks are not configured on this server",
):
    """No webhook sealing keys are configured, so no secret can be kept."""


class WebhookUrlRefused(ValidationFailed):
    """A URL the SSRF checks refuse; ``code`` names the reason (docs/webhooks.md)."""


async def _box(request: Request) -> SecretBox:
    keys: WebhookKeys = request.app.state.webhook_keys
    box = await keys.box()
    if box is None:
        raise WebhooksUnavailable()
    return box


BoxDep = Annotated[SecretBox, Depends(_box)]


async def checked_url(request: Request, url: str) -> str:
    """The URL as it will be called, once its host resolved to allowed addresses only."""
    settings: TodoSettings = request.app.state.settings
    resolver: Resolver = request.app.state.webhook_resolver
    try:
        target = parse_target(url, allow_loopback=settings.webhooks_allow_loopback)
        await check_target(
            target,
            resolver=resolver,
            ports=settings.webhook_ports,
            allow_loopback=settings.webhooks_allow_loopback,
        )
    except TargetRefused as refused:
        raise WebhookUrlRefused(
            f"The webhook URL is refused: {refused.message}", code=f"webhook_url_{refused.code}"
        ) from None
    return str(target.url)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses={
        201: {"headers": location_header("The webhook's URL, `/api/webhooks/{id}`")},
        **error_responses(
            409,
            422,
            503,
            descriptions={
                409: "The user already has the most webhooks allowed (`webhook_limit_reached`)",
                422: "Invalid body, or a URL the SSRF checks refuse (`webhook_url_*`)",
                503: "Webhooks are not configured on this server "
                "(`webhooks_unavailable`); or " + ERROR_DESCRIPTIONS[503],
            },
        ),
    },
    summary="Register a webhook (its secret is shown only in this answer)",
)
async def create_webhook(
    body: WebhookCreate, request: Request, db: DatabaseDep, user_id: UserId, box: BoxDep
) -> Response:
    # Resolved before the transaction: no connection is held during the lookup.
    url = await checked_url(request, body.url)
    created = await service.create_webhook(
        db, user_id, url=url, events=body.events, box=box, clock=request.app.state.clock
    )
    return json_response(
        created.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/webhooks/{created.id}", "Cache-Control": "no-store"},
    )


@router.get("", response_model=list[WebhookPublic], summary="The user's webhooks")
async def list_webhooks(db: DatabaseDep, user_id: UserId) -> list[WebhookPublic]:
    return await service.list_webhooks(db, user_id)


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=_ONE, summary="One webhook")
async def read_webhook(webhook_id: WebhookId, db: DatabaseDep, user_id: UserId) -> WebhookPublic:
    return await service.get_webhook(db, user_id, webhook_id)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ONE,
    summary="Delete a webhook and its deliveries",
)
async def delete_webhook(webhook_id: WebhookId, db: DatabaseDep, user_id: UserId) -> Response:
    await service.delete_webhook(db, user_id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=list[DeliveryPublic],
    responses={200: {"headers": PAGE_HEADERS}, **_ONE, **error_responses(400)},
    summary="A webhook's deliveries, newest first",
    description='`X-Total-Count` is the total; `Link: <...>; rel="next"` the next page.',
)
async def list_deliveries(
    webhook_id: WebhookId,
    request: Request,
    db: DatabaseDep,
    user_id: UserId,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
) -> Response:
    page = await service.list_deliveries(db, user_id, webhook_id, limit=limit, cursor=cursor)
    items_json = "[" + ",".join(item.model_dump_json() for item in page.items) + "]"
    return page_response(request, PageJSON(items_json, page.total, page.next_cursor))
