"""Settings of the web service (environment prefix ``WEB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import DATA_DIR, ServiceSettings


class WebSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WEB_", env_file=".env", extra="ignore")
    secret_fields = ServiceSettings.secret_fields | {"session_keys"}

    # The public API: the gateway, called like any other client with the user's token.
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_connect_timeout: float = Field(default=2.0, gt=0)
    gateway_read_timeout: float = Field(default=15.0, gt=0)
    # A chat turn runs a model and its tools: its stream may stay open far longer.
    chat_read_timeout: float = Field(default=120.0, gt=0)
    gateway_max_connections: int = Field(default=256, ge=1)
    # Chat turns one process relays at once, per user and in all: a turn holds a connection
    # of the gateway pool for as long as the model and its tools take, so turns never take
    # the whole pool (``chat_turns_max`` must be below ``gateway_max_connections``) and one
    # user never takes every turn's connection.
    chat_turns_per_user: int = Field(default=2, ge=1)
    chat_turns_max: int = Field(default=64, ge=1)

    # Fernet keys (urlsafe base64, 32 bytes each) that encrypt the stored tokens, one per line,
    # newest first: the first encrypts, every one decrypts (rotation, docs/deploy.md: append
    # the new key in every replica, then move it first, and drop the old one once every
    # session has been rewritten or has ended). A value, or
    # WEB_SESSION_KEYS_FILE naming a file that holds it. In development a key is generated on
    # first run under .data/keys/.
    session_keys: SecretStr | None = None
    dev_session_key_file: Path = DATA_DIR / "keys" / "web-session-keys"

    # The cookie: ``Secure`` with the ``__Host-`` prefix where the site is HTTPS. None: on
    # everywhere except in development (docs/deploy.md: production needs TLS in front).
    secure_cookies: bool | None = None
    # The site's origin as browsers see it ("https://todo.example.com"), checked against a
    # state-changing request's Origin. None: the request's own (X-Forwarded-Host from the
    # gateway, or Host).
    public_origin: str | None = None
    # A session is refreshed this many seconds before its access token expires.
    refresh_margin_seconds: int = Field(default=30, ge=0)
    # Seconds an idle session lives (each request pushes it on); the family's absolute
    # lifetime (the refresh token's expiry) ends it in any case.
    idle_timeout_seconds: int = Field(default=7 * 24 * 60 * 60, ge=60)

    # Sign-in and sign-up POSTs per client address (IPv6 by its /64) within a window.
    auth_post_limit: int = Field(default=10, ge=1)
    auth_post_window_seconds: int = Field(default=60, ge=1)

    # A page's form is a few kilobytes; a chat message at most 4,000 characters.
    max_body_bytes: int = 64 * 1024

    # Tasks per page of the list, and conversations / messages per page of the chat.
    page_size: int = Field(default=50, ge=1, le=100)
    chat_page_size: int = Field(default=20, ge=1, le=100)

    # Notifications per page of /notifications.
    notifications_page_size: int = Field(default=20, ge=1, le=100)
    # The live notification stream (GET /notifications/stream): one relayed stream lasts at
    # most this long (and never past its access token's expiry), then the browser reconnects
    # with the session's token, refreshed if due.
    notification_stream_seconds: int = Field(default=600, ge=1)
    # While a stream is open, the session is checked this often (a signed-out session's
    # stream ends), and a keepalive comment is sent when nothing else was.
    notification_stream_check_seconds: float = Field(default=15.0, gt=0)
    # Streams one process relays: per user (tabs), and in all (each holds a connection).
    notification_streams_per_user: int = Field(default=8, ge=1)
    notification_streams_max: int = Field(default=2000, ge=1)
    # What the browser waits before reconnecting: after a stream's normal end, and after a
    # refusal (the API unavailable, no free slot).
    notification_retry_ms: int = Field(default=2000, ge=100)
    notification_busy_retry_ms: int = Field(default=30000, ge=100)

    @model_validator(mode="after")
    def _pages_keep_connections(self) -> WebSettings:
        if self.chat_turns_max >= self.gateway_max_connections:
            raise ValueError(
                "WEB_CHAT_TURNS_MAX must be below WEB_GATEWAY_MAX_CONNECTIONS: the pages need "
                "connections of their own while chat turns are open"
            )
        return self

    @property
    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return not self.is_development


@lru_cache
def get_settings() -> WebSettings:
    return WebSettings()
