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
    # The reminder scheduler (todo worker): seconds between scans when nothing was due (a
    # reminder fires at most about this late), and tasks handled per transaction.
    reminders_poll_seconds: float = Field(default=1.0, gt=0, le=30)
    reminders_batch: int = Field(default=200, ge=1, le=5000)
    # GET /api/notifications/stream: seconds between the stream's checks for new rows, and
    # between keepalive comments (below the gateway's read timeout of the todo upstream, 15 s),
    # and the most missed notifications sent on a resume (the newest of them).
    notifications_poll_seconds: float = Field(default=1.0, gt=0, le=30)
    notifications_keepalive_seconds: float = Field(default=10.0, gt=0, le=14)
    notifications_backlog_max: int = Field(default=100, ge=1, le=1000)


@lru_cache
def get_settings() -> TodoSettings:
    return TodoSettings()
