"""Request and response bodies of the chat service. Requests reject unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.columns import MAX_ID
from shared.text import Composed
from shared.timezones import TimeZoneName

MESSAGE_MAX = 4000


# Stored and measured in NFC (``shared.text``).
ChatText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX), Composed
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
