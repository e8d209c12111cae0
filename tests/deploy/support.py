"""Throw-away databases on the session's PostgreSQL for the deploy tests, and role URLs.

Roles belong to the whole server, not one database: a test module that bootstraps creates the
platform's roles and drops them again when it is done, and refuses to run where they already
exist (a ``TEST_DATABASE_URL`` pointing at a real deployment).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from shared.bootstrap import ROLES, password_variable
from shared.db import connect_target
from shared.settings import FILE_SUFFIX

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {role: f"{role}-{secrets.token_hex(8)}" for role in ROLES}
# Package, schema and prefix of each service with a database.
SERVICES = {"auth": "auth_service", "todo": "todo_service", "chat": "chat_service"}
# Read by shared/serve.py (and gateway/__main__.py) rather than by the settings classes.
PROCESS_VARIABLES = {"HOST", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}


def require_service(package: str) -> None:
    """Skip while a service package is still incomplete in this checkout (being written)."""
    for module in ("settings", "app", "__main__"):
        if importlib.util.find_spec(f"{package}.{module}") is None:
            pytest.skip(f"{package}.{module} does not exist yet")


def settings_fields(package: str) -> set[str]:
    """The variable names (without the service's prefix, lower case) that the package's
    settings read: each field, and ``<field>_file`` for each secret field."""
    require_service(package)
    settings_class = type(importlib.import_module(f"{package}.settings").get_settings())
    fields = set(settings_class.model_fields)
    return fields | {f"{field}{FILE_SUFFIX.lower()}" for field in settings_class.secret_fields}


def role_url(base_url: str, *, database: str, user: str, password: str | None = None) -> str:
    url = make_url(base_url).set(database=database, username=user, password=password)
    return url.render_as_string(hide_password=False)


async def connect(url: str) -> asyncpg.Connection[Any]:
    target = connect_target(url)
    dsn = target.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection: asyncpg.Connection[Any] = await asyncpg.connect(dsn, **target.connect_args)
    return connection


@dataclass(frozen=True)
class Deployment:
    """One database on the test server, bootstrapped by ``admin`` (its owner)."""

    server_url: str  # the superuser's URL of the test server
    database: str
    admin: str
    admin_is_superuser: bool

    @property
    def admin_url(self) -> str:
        return role_url(self.server_url, database=self.database, user=self.admin)

    @property
    def superuser_url(self) -> str:
        return role_url(
            self.server_url,
            database=self.database,
            user=make_url(self.server_url).username or "postgres",
        )

    def url(self, role: str) -> str:
        """The role's URL with its password as userinfo, as a deployment configures it."""
        return role_url(
            self.server_url, database=self.database, user=role, password=PASSWORDS[role]
        )


async def create_deployment(server_url: str, *, superuser_admin: bool) -> Deployment:
    """A fresh database whose owner is a superuser (compose) or a CREATEROLE owner (Neon)."""
    server = await connect(server_url)
    try:
        existing = await server.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(ROLES)
        )
        if existing:
            pytest.skip("the platform's roles already exist on this server; not touching them")
        suffix = secrets.token_hex(4)
        database = f"deploy_test_{suffix}"
        if superuser_admin:
            admin = make_url(server_url).username or "postgres"
        else:
            admin = f"deploy_owner_{suffix}"
            await server.execute(f'CREATE ROLE "{admin}" LOGIN CREATEROLE')
        await server.execute(f'CREATE DATABASE "{database}" OWNER "{admin}"')
    finally:
        await server.close()
    return Deployment(server_url, database, admin, superuser_admin)


async def drop_deployment(deployment: Deployment) -> None:
    """Drop the database, then the roles the bootstrap made (they own nothing else)."""
    server = await connect(deployment.server_url)
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{deployment.database}" WITH (FORCE)')
        for role in ROLES:
            await server.execute(f'DROP ROLE IF EXISTS "{role}"')
        if not deployment.admin_is_superuser:
            await server.execute(f'DROP ROLE IF EXISTS "{deployment.admin}"')
    finally:
        await server.close()


async def run_module(module: str, *args: str, env: Mapping[str, str]) -> str:
    """``python -m module`` as a deploy job runs it: only the given environment variables."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env={"PATH": os.environ.get("PATH", ""), "ENVIRONMENT": "test", **env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"python -m {module} failed:\n{text}"
    return text


async def run_bootstrap(deployment: Deployment, passwords: Mapping[str, str]) -> str:
    env = {"BOOTSTRAP_DATABASE_URL": deployment.admin_url}
    env.update({password_variable(role): value for role, value in passwords.items()})
    return await run_module("shared.bootstrap", env=env)


async def migrate(deployment: Deployment, service: str, *, as_role: str) -> str:
    """``python -m shared.migrate <package>`` with the service's migration URL set."""
    url = deployment.admin_url if as_role == deployment.admin else deployment.url(as_role)
    return await run_module(
        "shared.migrate",
        SERVICES[service],
        env={f"{service.upper()}_MIGRATION_DATABASE_URL": url},
    )
