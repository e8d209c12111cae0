"""Settings of the todo service (environment prefix ``TODO_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import DATA_DIR, ServiceSettings

# Unread notifications one user keeps (TODO_NOTIFICATIONS_UNREAD_MAX); the scheduler's default.
NOTIFICATIONS_UNREAD_MAX = 1000


class TodoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TODO_", env_file=".env", extra="ignore")
    secret_fields = ServiceSettings.secret_fields | {"webhook_keys"}

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
    # Streams one process serves at once, per user and in all (each polls the database);
    # the next is refused with 429. Per process: N replicas serve up to N times as many.
    notifications_streams_per_user: int = Field(default=8, ge=1, le=1000)
    notifications_streams_max: int = Field(default=1000, ge=1)
    # Notifications read longer ago than this are deleted by the worker (unread ones stay).
    notifications_read_retention_days: int = Field(default=30, ge=1, le=3650)
    # Unread notifications one user keeps: the scheduler deletes the oldest beyond them in the
    # transaction that adds new ones, whatever made the reminders fire (docs/todo.md).
    notifications_unread_max: int = Field(default=NOTIFICATIONS_UNREAD_MAX, ge=1, le=100_000)

    # Webhooks (docs/webhooks.md). Fernet keys sealing the signing secrets at rest, one per
    # line, newest first (rotation, docs/webhooks.md: append the new key everywhere first,
    # then move it first and reseal, then drop the old one). A value, or
    # TODO_WEBHOOK_KEYS_FILE naming a file. The API seals with it and the worker opens with
    # it: both need it. In development a key is generated on first run under .data/keys/.
    webhook_keys: SecretStr | None = None
    dev_webhook_key_file: Path = DATA_DIR / "keys" / "todo-webhook-keys"
    # Development only: http:// and any port to a loopback address (a receiver on this
    # machine). Refused outside development; every other address class stays refused.
    webhooks_allow_loopback: bool = False
    # Ports a webhook URL may name (its scheme's default when it names none).
    webhook_ports: frozenset[int] = frozenset({443})
    # One delivery attempt: connecting, each read and write, and the whole exchange.
    webhook_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_read_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_attempt_timeout: float = Field(default=20.0, gt=0, le=300)
    # A success that took longer than this holds its webhook back like a failure does.
    webhook_slow_seconds: float = Field(default=5.0, gt=0, le=300)
    # Bytes of a receiver's answer read at most (the rest is dropped with the connection).
    webhook_response_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    # Retries: the n-th failure waits base * 2**(n-1) seconds (at most max), times a random
    # factor in [0.5, 1); a delivery not delivered within the window after its event is failed.
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Deliveries attempted at once by one worker, and at most this many of them one user's
    # (so one user's slow receivers or backlog cannot hold every slot); finished ones are
    # kept this long.
    webhook_batch: int = Field(default=20, ge=1, le=500)
    webhook_attempts_per_user: int = Field(default=4, ge=1, le=500)
    # Pending deliveries one user may have; an event's deliveries beyond it are recorded as
    # failed, not queued. It bounds what a claim reads past a user at the bound above.
    webhook_pending_per_user: int = Field(default=10_000, ge=1, le=1_000_000)
    webhook_retention_seconds: float = Field(default=7 * 24 * 3600.0, ge=0)

    @model_validator(mode="after")
    def _loopback_only_in_development(self) -> TodoSettings:
        if self.webhooks_allow_loopback and not self.is_development:
            raise ValueError("TODO_WEBHOOKS_ALLOW_LOOPBACK is for development only")
        return self


@lru_cache
def get_settings() -> TodoSettings:
    return TodoSettings()
