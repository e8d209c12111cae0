"""``python -m shared.bootstrap``: schemas, extensions and least-privilege roles, idempotently.

Runs ``shared/bootstrap.sql`` in one transaction as the database owner named by
``BOOTSTRAP_DATABASE_URL`` (Neon: the owner role on the direct host, never the ``-pooler`` one;
compose: the postgres superuser). Each role's password comes from ``<ROLE>_DB_PASSWORD``, for
example ``AUTH_APP_DB_PASSWORD``; an unset one leaves that role's password as it is, so a single
password can be rotated without knowing the others. Each variable may instead name a file that
holds the value (``BOOTSTRAP_DATABASE_URL_FILE``, ``AUTH_APP_DB_PASSWORD_FILE``, ...).

A password never reaches the server: what is sent is its SCRAM-SHA-256 verifier, made here (as
``psql``'s ``\\password`` does), which PostgreSQL stores as it is. A plain ``ALTER ROLE ...
PASSWORD`` would carry it in a statement or a bound parameter, which the server's statement
log (``log_statement``), an auditing extension or a provider's query insights may record.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Mapping
from importlib import resources

import asyncpg
from scramp import ScramException, ScramMechanism

from shared.db import connect_target
from shared.settings import secret_from_environment

logger = logging.getLogger(__name__)

SERVICES = ("auth", "todo", "chat", "web")
ROLES = tuple(f"{service}_{kind}" for service in SERVICES for kind in ("migrator", "app"))
URL_VARIABLE = "BOOTSTRAP_DATABASE_URL"


# What PostgreSQL's own clients use for a verifier (libpq's PQencryptPasswordConn).
SCRAM_ITERATIONS = 4096
_SCRAM = ScramMechanism("SCRAM-SHA-256")


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, 7677; the
    password SASLprep-normalised, by scramp): ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
    <ServerKey>``. A password SASLprep prohibits (control or private-use characters, say) is
    refused with a ``ValueError`` that does not repeat it: PostgreSQL would hash such a
    password's raw bytes, which no other SCRAM client reproduces."""
    try:
        salt, stored_key, server_key, iterations = _SCRAM.make_auth_info(
            password, iteration_count=SCRAM_ITERATIONS, salt=salt
        )
    except ScramException:
        raise ValueError("a role password with characters SASLprep prohibits") from None

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def password_variable(role: str) -> str:
    return f"{role.upper()}_DB_PASSWORD"


def bootstrap_sql() -> str:
    return resources.files("shared").joinpath("bootstrap.sql").read_text()


def passwords_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    found = {role: secret_from_environment(password_variable(role), environ) for role in ROLES}
    return {role: password for role, password in found.items() if password}


async def bootstrap(
    admin_url: str, passwords: Mapping[str, str], *, connect_timeout: float = 10.0
) -> None:
    """Apply the bootstrap; ``passwords`` maps role names to the passwords to set."""
    unknown = set(passwords) - set(ROLES)
    if unknown:
        raise ValueError(f"no such role in the bootstrap: {', '.join(sorted(unknown))}")
    target = connect_target(admin_url, connect_timeout=connect_timeout)
    if target.pooled:
        # Session settings and DDL do not belong behind a transaction-mode pooler.
        raise ValueError("bootstrap needs the direct host, not a -pooler one")
    dsn = target.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, **target.connect_args)
    try:
        async with connection.transaction():
            for role, password in passwords.items():
                # The verifier, never the password; transaction-local: gone at the commit.
                await connection.execute(
                    "SELECT set_config($1, $2, true)",
                    f"todo_platform.{role}_password",
                    scram_verifier(password),
                )
            await connection.execute(bootstrap_sql())
    finally:
        await connection.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        url = secret_from_environment(URL_VARIABLE)
        passwords = passwords_from_environment(os.environ)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if not url:
        raise SystemExit(f"{URL_VARIABLE} is required: the database owner's URL (direct host)")
    asyncio.run(bootstrap(url, passwords))
    kept = [role for role in ROLES if role not in passwords]
    logger.info(
        "bootstrap applied; passwords set for: %s; left as they were for: %s",
        ", ".join(passwords) or "none",
        ", ".join(kept) or "none",
    )


if __name__ == "__main__":
    main()
