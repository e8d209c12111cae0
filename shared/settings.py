"""Settings base shared by every service (pydantic-settings)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(".data")

logger = logging.getLogger(__name__)


def development_secret(path: Path, generate: Callable[[], str], *, what: str) -> str:
    """A development-only secret kept in ``path`` (under ``.data/``): read when it is there,
    else ``generate()``d and written, so restarts keep it. The file is created with mode 0600
    from the start (never readable by others, not even briefly) and only if absent: a
    process that loses the race to create it reads the winner's."""
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    logger.warning("generated a development %s at %s", what, path)
    return secret


# Read without a service prefix when the service's own variable is absent.
PLATFORM_VARIABLES = {
    "environment": "ENVIRONMENT",
    "database_url": "DATABASE_URL",
    "migration_database_url": "MIGRATION_DATABASE_URL",
    "jwt_issuer": "JWT_ISSUER",
    "jwt_audience": "JWT_AUDIENCE",
    "auth_jwks_url": "AUTH_JWKS_URL",
    "extra_trusted_issuers": "EXTRA_TRUSTED_ISSUERS",
    "log_json": "LOG_JSON",
    "events_redis_url": "EVENTS_REDIS_URL",
}


JSON_FIELDS = {"extra_trusted_issuers"}

# A secret setting ``X`` may instead name a file that holds its value: ``X_FILE`` (a compose
# secret, a Kubernetes Secret volume), so the value never sits in the process environment.
FILE_SUFFIX = "_FILE"


def read_secret_file(variable: str, path: str) -> str | None:
    """The value in the file ``variable`` names, without its final newline; empty is unset."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {path}: {error.strerror}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    return value or None


def secret_from_environment(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``name``'s value, or the contents of the file ``name_FILE`` names; refuses both.

    An empty variable counts as unset (compose writes ``${X:-}`` as an empty string).
    """
    environ = os.environ if environ is None else environ
    value = environ.get(name) or None
    path = environ.get(name + FILE_SUFFIX)
    if not path:
        return value
    if value is not None:
        raise ValueError(f"both {name} and {name}{FILE_SUFFIX} are set: set one of them")
    return read_secret_file(name + FILE_SUFFIX, path)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class TrustedIssuer(BaseModel):
    """One issuer whose access tokens a service accepts.

    Exactly one key source: ``jwks_url`` (asymmetric, EdDSA by default) or ``hs256_secret``.
    """

    # A refused issuer's error names the problem, never the values (its secret among them).
    model_config = ConfigDict(hide_input_in_errors=True)

    issuer: str
    audience: str
    jwks_url: str | None = None
    hs256_secret: SecretStr | None = None
    algorithm: str = "EdDSA"

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if (self.jwks_url is None) == (self.hs256_secret is None):
            raise ValueError("a trusted issuer needs exactly one of jwks_url or hs256_secret")
        if self.hs256_secret is not None:
            if len(self.hs256_secret.get_secret_value()) < 32:
                raise ValueError("an HS256 secret must be at least 32 characters long")
            self.algorithm = "HS256"
        elif self.algorithm not in {"EdDSA", "ES256", "RS256"}:
            raise ValueError(f"unsupported algorithm for a JWKS issuer: {self.algorithm}")
        return self


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``env_prefix`` (AUTH_, TODO_, ...)."""

    # A refused setting is a startup error in the process's log: it names the problem, never
    # the input (for a check of the whole model that is every setting, secrets included).
    # Each service's own model_config is merged with this one.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_file_encoding="utf-8", hide_input_in_errors=True
    )

    # Settings that hold a secret: each also reads ``<VARIABLE>_FILE`` (see FILE_SUFFIX).
    # Subclasses add their own.
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"database_url", "migration_database_url", "extra_trusted_issuers", "events_redis_url"}
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_json: bool | None = None  # default: JSON everywhere except development

    # Each service's URL falls back to the plain DATABASE_URL (read without prefix).
    database_url: str | None = None
    # Migrations may use another URL (Neon's direct host and the schema-owning role).
    migration_database_url: str | None = None
    # A fixed pool: SQLAlchemy closes an overflow connection as soon as it is checked in, so
    # under sustained concurrency above the pool size every burst would open (and PostgreSQL
    # fork) a fresh backend. Requests beyond the pool wait for a connection instead, at most
    # ``db_pool_timeout`` seconds, then get a 503 with Retry-After.
    db_pool_size: int = 10
    db_max_overflow: int = 0
    db_pool_timeout: float = 10.0
    db_connect_timeout: float = 10.0
    db_startup_attempts: int = 10
    # Check pooled connections before use only after a second idle: under load a checkout
    # costs no round trip (a connection the server closed is still replaced without one); a
    # connection left idle (a suspended Neon compute) is checked. None: check every checkout.
    db_ping_after_idle_seconds: float | None = 1.0

    # Platform-wide token settings: one issuer name and one audience for every service.
    jwt_issuer: str = "todo-platform-auth"
    jwt_audience: str = "todo-platform"
    jwt_leeway_seconds: int = 30
    auth_jwks_url: str = "http://127.0.0.1:8001/api/auth/jwks"
    # Extra issuers (interop, e.g. Better Auth): a JSON list of TrustedIssuer objects.
    extra_trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)

    max_body_bytes: int = 1024 * 1024
    # What the HTTP server (shared/server.py) accepts before the app sees a request: the
    # request target (414 beyond), one header field, the request line and headers together,
    # the number of header fields (431 beyond), and seconds for the request line and headers
    # from their first byte, and of silence within a body (408, then the connection closes).
    # A service's section and field limits leave room for the headers the gateway adds
    # (X-Forwarded-*, X-Request-ID, X-User-Id) to a request it accepted within its own.
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_header_section_bytes: int = 64 * 1024
    max_header_count: int = 128
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # A body must also keep up an average rate: after the grace, at least this many bytes a
    # second since it began (Kestrel's defaults), else 408, so a byte sent now and then (never
    # silent for the body timeout) cannot hold a connection for as long as the body lasts.
    # 0 turns the rate off.
    min_body_rate_bytes_per_second: float = Field(default=240.0, ge=0)
    body_rate_grace_seconds: float = Field(default=5.0, ge=0)
    # Domain events (docs/events.md): the Redis that carries the streams (its URL holds the
    # password, so it is a secret setting), and the bounds of the workers that use it.
    events_redis_url: str | None = None
    # Entries kept per stream the service publishes (approximately): a group that falls
    # further behind loses the oldest. At 10 KiB a task event at most, the shipped Redis's
    # maxmemory holds this many of the tasks stream (docs/deploy.md, "Redis's memory"); raise
    # both together. Auth's users stream, of small events, keeps more (AuthSettings).
    events_stream_maxlen: int = Field(default=10_000, ge=1000)
    # Outbox rows published per round; entries read from a stream per round.
    events_batch: int = Field(default=100, ge=1, le=10_000)
    # Pause of a worker loop that found nothing to do.
    events_idle_seconds: float = Field(default=0.5, gt=0, le=60)
    # How long a consumer's read waits on the stream for new entries (then its loop goes
    # round: a heartbeat, a look at its pending entries). Below the Redis client's socket
    # timeout (shared.events.redis_client, 10 s), which also bounds a blocking read.
    events_block_seconds: float = Field(default=2.0, ge=0.001, le=5)
    # A consumer's entry left unacknowledged this long is taken over by another consumer.
    events_claim_idle_seconds: float = Field(default=60.0, gt=0)
    # An event whose handler fails this many deliveries goes to the dead-letter stream.
    events_max_deliveries: int = Field(default=5, ge=1, le=100)
    # Sent outbox rows are deleted after this long.
    events_outbox_retention_seconds: float = Field(default=7 * 24 * 3600, ge=0)
    # The ids of applied events (a consumer's processed_events) are forgotten after this long:
    # far beyond any redelivery (a stream entry is claimed again within minutes, a sent
    # outbox row is republished only before it is marked sent, and kept a week).
    events_processed_retention_seconds: float = Field(default=30 * 24 * 3600, ge=24 * 3600)
    # A worker is unready when a loop has not finished a round for this long.
    events_stale_seconds: float = Field(default=60.0, gt=0)
    # Prometheus metrics on an internal port of their own; None turns the listener off.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="before")
    @classmethod
    def _platform_fallbacks(cls, data: Any) -> Any:
        """Secret files, then platform-wide variables unless the service's own one is set.

        For a secret setting, ``<PREFIX><NAME>_FILE`` stands for ``<PREFIX><NAME>`` and the
        platform-wide ``<NAME>_FILE`` for ``<NAME>``; giving a variable and its file is refused.
        """
        if not isinstance(data, dict):
            return data
        prefix = cls.model_config.get("env_prefix", "")
        for field in sorted(cls.secret_fields):
            variable = f"{prefix}{field.upper()}"
            path = os.environ.get(variable + FILE_SUFFIX)
            if not path:
                continue
            if data.get(field) not in (None, ""):
                raise ValueError(f"both {variable} and {variable}{FILE_SUFFIX} are set: set one")
            value = read_secret_file(variable + FILE_SUFFIX, path)
            if value is not None:
                data[field] = json.loads(value) if field in JSON_FIELDS else value
        for field, env_name in PLATFORM_VARIABLES.items():
            if field in data:
                continue
            if field in cls.secret_fields:
                platform_value = secret_from_environment(env_name)
            else:
                platform_value = os.environ.get(env_name)
            if platform_value is not None:
                data[field] = json.loads(platform_value) if field in JSON_FIELDS else platform_value
        return data

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    def trusted_issuers(self) -> list[TrustedIssuer]:
        """Our own auth service first, then any configured interop issuers."""
        own = TrustedIssuer(
            issuer=self.jwt_issuer, audience=self.jwt_audience, jwks_url=self.auth_jwks_url
        )
        return [own, *self.extra_trusted_issuers]

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "no database configured: set DATABASE_URL (or the service's own variable); "
                "`make run` starts an embedded PostgreSQL and sets it for you"
            )
        return self.database_url

    def migration_url(self) -> str:
        return self.migration_database_url or self.require_database_url()
