"""Bodies of ``/api/webhooks``. Requests reject unknown fields."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from todo_service.models import WEBHOOK_URL_MAX
from todo_service.schemas import UtcTimestamp

# The tasks stream's event types (docs/events.md); a webhook receives the ones it names.
EventType = Literal[
    "task.created",
    "task.updated",
    "task.completed",
    "task.reopened",
    "task.deleted",
    "reminder.due",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
DeliveryStatus = Literal["pending", "delivered", "failed"]


def _distinct(types: list[EventType]) -> list[EventType]:
    if len(set(types)) != len(types):
        raise ValueError("an event type is named twice")
    return types


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        str, StringConstraints(strict=True, min_length=1, max_length=WEBHOOK_URL_MAX)
    ] = Field(description="An https:// URL whose host resolves only to public addresses")
    events: Annotated[
        list[EventType],
        Field(min_length=1, max_length=len(EVENT_TYPES), json_schema_extra={"uniqueItems": True}),
        AfterValidator(_distinct),
    ] = Field(default_factory=lambda: list(EVENT_TYPES), description="Default: every type")


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: UtcTimestamp
    # A webhook is active from its creation until it is deleted.
    status: Literal["active"] = "active"


class WebhookCreated(WebhookPublic):
    """The answer to the registration: the only one that shows the signing secret."""

    secret: str = Field(description="Shown once: keep it to verify the signatures")


class DeliveryPublic(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: UtcTimestamp | None
    created_at: UtcTimestamp
    delivered_at: UtcTimestamp | None
