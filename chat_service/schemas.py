"""Request and response bodies of the chat service. Requests reject unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.pagination import MAX_ID

MESSAGE_MAX = 4000


def _iana_zone(name: str) -> str:
    """Only names the zone database knows; ``ZoneInfo`` also refuses paths and odd keys."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a known IANA time zone (e.g. 'Europe/Paris', 'UTC')") from None
    return name


TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_zone)
]
ChatText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX)
]


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: ChatText
    conversation_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    timezone: TimeZoneName | None = Field(
        default=None, description="IANA name for relative dates such as 'tomorrow'; UTC if absent"
    )


class ToolCallPublic(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any = Field(description="What the tool answered; for a failed call, {error: ...}")


class ChatOut(BaseModel):
    conversation_id: int
    response: str
    tool_calls: list[ToolCallPublic]


class ConversationPublic(BaseModel):
    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class MessagePublic(BaseModel):
    id: int
    role: Literal["user", "assistant"]
    content: str
    tool_calls: list[ToolCallPublic] | None
    created_at: datetime


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic] = Field(
        description="One page of the conversation's messages, oldest first (see Link for more)"
    )
