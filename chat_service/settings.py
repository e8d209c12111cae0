"""Settings of the chat service (environment prefix ``CHAT_``)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AgentKind(StrEnum):
    RULES = "rules"
    OPENAI = "openai"


class ChatSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", env_file=".env", extra="ignore")
    secret_fields = ServiceSettings.secret_fields | {"openai_api_key"}

    # Which agent answers: the offline rule-based one, or any OpenAI-compatible model.
    agent: AgentKind = AgentKind.RULES

    # The todo service's MCP endpoint; chat calls it with the user's own bearer token.
    todo_mcp_url: str = "http://127.0.0.1:8002/api/mcp"
    todo_timeout_seconds: float = Field(default=10.0, gt=0)

    # How many recent messages the agent sees (the window is loaded from the database).
    history_window: int = Field(default=20, ge=1, le=200)
    # A whole turn (agent plus tools) is cut off after this long: a 504, never a hang.
    turn_timeout_seconds: float = Field(default=60.0, gt=0)
    # At most this many tool calls per turn, for either agent: a request that needs more
    # ("delete 1, 2, ..., 999") gets a reply asking to narrow it, and no call beyond the cap.
    max_tool_calls_per_turn: int = Field(default=10, ge=1, le=100)

    openai_base_url: str | None = None  # None: the official endpoint
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    # One model call, the SDK's retries and their pauses included: a 504 past it.
    openai_timeout_seconds: float = Field(default=30.0, gt=0)
    openai_max_retries: int = Field(default=1, ge=0, le=5)
    openai_max_tool_rounds: int = Field(default=5, ge=1, le=20)
    # The most tokens the model may write in one answer (``max_completion_tokens``).
    openai_max_output_tokens: int = Field(default=1024, ge=16, le=32_768)
    # The request field that carries it: some compatible servers (older Azure API versions
    # among them) know only ``max_tokens``.
    openai_max_output_tokens_field: Literal["max_completion_tokens", "max_tokens"] = (
        "max_completion_tokens"
    )
    openai_temperature: float | None = None

    # How long a POST /api/chat with an Idempotency-Key is remembered and replayed.
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)

    # What one account may store: its most recently active conversations (starting one more
    # deletes the least recently active, with its messages) and the messages of one
    # conversation (a turn needs room for its message and its reply; past that, a 409).
    max_conversations_per_user: int = Field(default=100, ge=1, le=10_000)
    max_messages_per_conversation: int = Field(default=500, ge=2, le=10_000)

    # Default page size of the conversation and message lists (a client may ask up to 100).
    page_size: int = Field(default=20, ge=1, le=100)

    @model_validator(mode="after")
    def _openai_needs_a_key(self) -> ChatSettings:
        if self.agent is AgentKind.OPENAI and self.openai_api_key is None:
            raise ValueError("CHAT_OPENAI_API_KEY is required when CHAT_AGENT=openai")
        return self


@lru_cache
def get_settings() -> ChatSettings:
    return ChatSettings()
