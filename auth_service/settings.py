"""Settings of the auth service (environment prefix ``AUTH_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import DATA_DIR, ServiceSettings

# OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=".env", extra="ignore")

    # The users stream's length: its events are small (``USER_EVENT_MAX_BYTES``) and a
    # ``user.deleted`` trimmed before a lagging consumer read it would leave that service's
    # rows of the account for good, so it keeps ten times the tasks stream's entries in a
    # tenth of their memory (docs/deploy.md, "Redis's memory").
    events_stream_maxlen: int = Field(default=100_000, ge=1000)

    # Ed25519 private keys in PKCS#8 PEM, oldest first; the last one signs, every one is
    # published in the JWKS until it is removed (retired). A value, or a file holding the blocks.
    signing_keys: SecretStr | None = None
    signing_key_file: Path | None = None
    dev_key_file: Path = DATA_DIR / "keys" / "auth-signing-key.pem"

    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_days: int = 30
    # A login session's absolute lifetime: rotation never extends a session past it.
    session_max_days: int = Field(default=90, ge=1)

    # Live login sessions one account keeps: a new one beyond it ends the oldest (by when it
    # began), so however often the password is used no account holds more rows than this.
    max_sessions_per_user: int = Field(default=100, ge=1)

    # A session that ended (revoked, or past its absolute end) is deleted with its refresh
    # tokens this long after, by the worker: a token of it is refused the same either way.
    ended_sessions_retention_days: int = Field(default=7, ge=0)

    argon2_time_cost: int = OWASP_MIN_TIME_COST
    argon2_memory_kib: int = OWASP_MIN_MEMORY_KIB
    argon2_parallelism: int = 1
    # Hashing runs in worker threads; this caps how many run at once so logins cannot
    # take every core from the requests that are already in flight.
    password_hash_workers: int = Field(default=2, ge=1)
    # Hashes that may wait for a thread beyond those running; one more sign-in, registration
    # or password change is a 503 with Retry-After (no request waits behind a long line,
    # and no hash is computed for a client that gave up waiting).
    password_hash_queue: int = Field(default=32, ge=0)
    # Hashing threads run this many niceness steps below the event loop's thread (Linux;
    # 0 = same priority), so the kernel prefers the loop when both want a core: requests in
    # flight stay fast while logins queue.
    password_hash_niceness: int = Field(default=10, ge=0, le=19)

    # Throttling of password guesses (docs/auth.md). Failed logins per (account, client
    # address; IPv6 by its /64) within a window: at the threshold that pair waits for the
    # window to end. The same threshold and window bound wrong current passwords at
    # POST /password, counted per account.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_window_seconds: int = Field(default=15 * 60, ge=1)
    # Failed logins per account from all addresses it has not signed in from, per window.
    lockout_account_ceiling: int = Field(default=100, ge=1)
    lockout_account_window_seconds: int = Field(default=24 * 60 * 60, ge=1)
    # An address the account signed in from passes the ceiling for this long after.
    known_address_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _check_security_floor(self) -> AuthSettings:
        if (
            self.argon2_memory_kib < OWASP_MIN_MEMORY_KIB
            or self.argon2_time_cost < OWASP_MIN_TIME_COST
        ):
            raise ValueError("argon2 parameters below OWASP's minimum (19 MiB, t=2)")
        return self


@lru_cache
def get_settings() -> AuthSettings:
    return AuthSettings()
