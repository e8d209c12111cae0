"""Settings of the todo service (environment prefix ``TODO_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class TodoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TODO_", env_file=".env", extra="ignore")

    # How long a POST with an Idempotency-Key is remembered and replayed.
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)


@lru_cache
def get_settings() -> TodoSettings:
    return TodoSettings()
