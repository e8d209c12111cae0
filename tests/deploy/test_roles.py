"""Least privilege in the database: ``shared/bootstrap.sql`` on the real PostgreSQL.

Each run of this module bootstraps a database of its own twice, once as a CREATEROLE owner that
is not a superuser (Neon's owner role) and once as a superuser (compose's ``postgres``), then
migrates every service as its migration role, exactly as the deploy jobs do.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from auth_service.app import create_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from shared.bootstrap import ROLES, bootstrap
from shared.migrate import available_services
from tests.deploy.support import (
    PASSWORDS,
    SERVICES,
    Deployment,
    connect,
    create_deployment,
    drop_deployment,
    migrate,
    role_url,
    run_bootstrap,
)
from tests.support.serving import serve
from tests.support.tls import open_postgres, postgres_port, pump

MIGRATED = [name for name, package in SERVICES.items() if package in available_services()]
DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
NOT_GRANTED = ("TRUNCATE", "REFERENCES", "TRIGGER")

# One statement per service that its running role must be able to do, and others must not.
WORK: dict[str, list[str]] = {
    "auth": [
        "INSERT INTO auth.users (id, email, password_hash) "
        "VALUES ('00000000-0000-4000-8000-000000000001', 'ann@example.com', 'x')",
        "UPDATE auth.users SET name = 'Ann' WHERE email = 'ann@example.com'",
        "SELECT name FROM auth.users WHERE email = 'ann@example.com'",
        "INSERT INTO auth.attempt_counters (key_hash, window_started_at, failures) "
        "VALUES ('h', now(), 1)",
        "DELETE FROM auth.attempt_counters",
        "DELETE FROM auth.users",
    ],
    "todo": [
        "INSERT INTO todo.tasks (user_id, title, created_at, updated_at, version) "
        "VALUES ('u1', 'buy milk', now(), now(), 1)",
        "UPDATE todo.tasks SET completed = true, completed_at = now() WHERE user_id = 'u1'",
        "SELECT title FROM todo.tasks WHERE user_id = 'u1' AND title ILIKE '%milk%'",
        "DELETE FROM todo.tasks",
    ],
    "chat": [
        "INSERT INTO chat.conversations (user_id, title) VALUES ('u1', 'hello')",
        "INSERT INTO chat.messages (conversation_id, user_id, role, content) "
        "SELECT id, 'u1', 'user', 'hi' FROM chat.conversations",
        "UPDATE chat.conversations SET title = 'renamed'",
        "SELECT content FROM chat.messages WHERE user_id = 'u1'",
        "DELETE FROM chat.conversations",
    ],
}
# A table of each schema to aim at from the other services' roles.
TARGET_TABLE = {"auth": "auth.users", "todo": "todo.tasks", "chat": "chat.messages"}


@pytest.fixture(scope="module", params=["neon-like owner", "superuser"])
async def deployment(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[Deployment]:
    created = await create_deployment(database_url, superuser_admin=request.param == "superuser")
    try:
        await run_bootstrap(created, PASSWORDS)
        await run_bootstrap(created, {})  # a second deploy changes nothing
        for service in MIGRATED:
            await migrate(created, service, as_role=f"{service}_migrator")
        yield created
    finally:
        await drop_deployment(created)


@pytest.fixture
async def superuser(deployment: Deployment) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await connect(deployment.superuser_url)
    try:
        yield connection
    finally:
        await connection.close()


async def as_role(deployment: Deployment, role: str) -> asyncpg.Connection[Any]:
    return await connect(deployment.url(role))


async def privilege_snapshot(connection: asyncpg.Connection[Any]) -> list[Any]:
    """Everything the bootstrap sets: role attributes, memberships, ownership and grants."""
    queries = [
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
        "rolbypassrls, rolconnlimit, rolpassword FROM pg_authid "
        "WHERE rolname = ANY($1::text[]) ORDER BY 1",
        "SELECT roleid::regrole::text, member::regrole::text, admin_option, inherit_option, "
        "set_option FROM pg_auth_members WHERE roleid::regrole::text = ANY($1::text[]) "
        "ORDER BY 1, 2, 3",
        "SELECT datacl::text FROM pg_database WHERE datname = current_database() AND $1::text[] "
        "IS NOT NULL",
        "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace "
        "WHERE nspname IN ('public', 'auth', 'todo', 'chat') AND $1::text[] IS NOT NULL "
        "ORDER BY 1",
        "SELECT defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype, "
        "defaclacl::text FROM pg_default_acl WHERE $1::text[] IS NOT NULL ORDER BY 1, 2, 3",
        "SELECT c.oid::regclass::text, c.relowner::regrole::text, c.relacl::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('auth', 'todo', 'chat') AND $1::text[] IS NOT NULL ORDER BY 1",
        "SELECT extname, extnamespace::regnamespace::text FROM pg_extension "
        "WHERE $1::text[] IS NOT NULL ORDER BY 1",
    ]
    return [[tuple(row) for row in await connection.fetch(query, list(ROLES))] for query in queries]


async def test_bootstrap_again_after_the_migrations_changes_nothing(
    deployment: Deployment, superuser: asyncpg.Connection[Any]
) -> None:
    before = await privilege_snapshot(superuser)
    await bootstrap(deployment.admin_url, {})
    after = await privilege_snapshot(superuser)
    assert before[0], "no roles found"
    assert after == before


async def test_no_role_has_privileged_attributes_and_every_role_has_a_password(
    superuser: asyncpg.Connection[Any],
) -> None:
    rows = await superuser.fetch(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
        "rolcanlogin, rolpassword FROM pg_authid WHERE rolname = ANY($1::text[])",
        list(ROLES),
    )
    assert sorted(row["rolname"] for row in rows) == sorted(ROLES)
    for row in rows:
        assert not any(
            row[attribute]
            for attribute in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication")
        ), row
        assert not row["rolbypassrls"], row
        assert row["rolcanlogin"], row
        assert row["rolpassword"].startswith("SCRAM-SHA-256$"), row["rolname"]


async def test_one_password_is_rotated_without_touching_the_others(
    deployment: Deployment, superuser: asyncpg.Connection[Any]
) -> None:
    query = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1::text[])"
    before = dict(await superuser.fetch(query, list(ROLES)))
    await bootstrap(deployment.admin_url, {"chat_app": "a-new-password-for-chat"})
    after = dict(await superuser.fetch(query, list(ROLES)))
    try:
        assert after["chat_app"] != before["chat_app"]
        assert {r: v for r, v in after.items() if r != "chat_app"} == {
            r: v for r, v in before.items() if r != "chat_app"
        }
    finally:
        await bootstrap(deployment.admin_url, {"chat_app": PASSWORDS["chat_app"]})


@asynccontextmanager
async def recording_relay(url: str, directory: Path) -> AsyncIterator[tuple[str, bytearray]]:
    """A relay in front of the test server: yields ``url`` pointed at it, and every byte a
    client sent through it (the server's own socket directory or host is left as it is)."""
    parsed = make_url(url)
    sent = bytearray()
    port = postgres_port(url)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await open_postgres(url)
        await asyncio.gather(
            pump(reader, server_writer, record=sent),
            pump(server_reader, writer),
            return_exceptions=True,
        )

    if parsed.host:
        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        relay_port = server.sockets[0].getsockname()[1]
        # In clear, so that what the relay records is what the server reads.
        relayed = parsed.set(host="127.0.0.1", port=relay_port).update_query_dict(
            {"sslmode": "disable"}
        )
    else:
        server = await asyncio.start_unix_server(relay, str(directory / f".s.PGSQL.{port}"))
        relayed = parsed.update_query_dict({"host": str(directory), "port": str(port)})
    try:
        yield relayed.render_as_string(hide_password=False), sent
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "password",
    [
        "ascii-" + secrets.token_urlsafe(16),
        # SASLprep maps and normalises (NFKC: the Roman numeral twelve is "XII").
        "pässwörd\u00a0\u216b-" + secrets.token_hex(4),
    ],
    ids=["ascii", "normalised"],
)
async def test_a_password_never_reaches_the_server_only_its_verifier(
    deployment: Deployment, tmp_path: Path, password: str
) -> None:
    async with recording_relay(deployment.admin_url, tmp_path) as (relayed, sent):
        await bootstrap(relayed, {"chat_app": password})
    try:
        assert b"todo_platform.chat_app_password" in sent  # the bootstrap went through
        assert password.encode() not in sent
        # The verifier stored is the right one: the role signs in with its password.
        connection = await connect(
            role_url(
                deployment.server_url,
                database=deployment.database,
                user="chat_app",
                password=password,
            )
        )
        await connection.close()
    finally:
        await bootstrap(deployment.admin_url, {"chat_app": PASSWORDS["chat_app"]})


async def test_a_password_saslprep_prohibits_is_refused_without_being_repeated(
    deployment: Deployment, superuser: asyncpg.Connection[Any]
) -> None:
    password = "private\ue000use-" + secrets.token_hex(4)
    query = "SELECT rolpassword FROM pg_authid WHERE rolname = 'chat_app'"
    before = await superuser.fetchval(query)
    with pytest.raises(ValueError, match="SASLprep prohibits") as refused:
        await bootstrap(deployment.admin_url, {"chat_app": password})
    assert password not in str(refused.value)
    assert await superuser.fetchval(query) == before


@pytest.mark.parametrize("role", sorted(ROLES))
async def test_app_roles_bound_a_statement_and_an_idle_transaction_and_migrators_do_not(
    deployment: Deployment, role: str
) -> None:
    connection = await as_role(deployment, role)
    try:
        statement = await connection.fetchval("SHOW statement_timeout")
        idle = await connection.fetchval("SHOW idle_in_transaction_session_timeout")
    finally:
        await connection.close()
    if role.endswith("_app"):
        assert (statement, idle) == ("30s", "1min")
    else:  # a migration may build a large index
        assert (statement, idle) == ("0", "0")


@pytest.mark.parametrize("service", MIGRATED)
async def test_each_app_role_does_its_services_work(deployment: Deployment, service: str) -> None:
    connection = await as_role(deployment, f"{service}_app")
    try:
        assert await connection.fetchval("SELECT current_user") == f"{service}_app"
        async with connection.transaction():
            for statement in WORK[service]:
                await connection.execute(statement)
    finally:
        await connection.close()


@pytest.mark.parametrize("service", MIGRATED)
async def test_app_role_has_exactly_dml_on_every_table_and_sequence_of_its_schema(
    superuser: asyncpg.Connection[Any], service: str
) -> None:
    app = f"{service}_app"
    relations = await superuser.fetch(
        "SELECT c.oid::regclass::text AS name, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S')",
        service,
    )
    assert any(row["relkind"] == "r" for row in relations)
    for name, kind in relations:
        if kind == "S":
            assert await superuser.fetchval(
                "SELECT has_sequence_privilege($1, $2, 'USAGE')", app, name
            )
            assert not await superuser.fetchval(
                "SELECT has_sequence_privilege($1, $2, 'UPDATE')", app, name
            )
            continue
        for privilege in DML:
            assert await superuser.fetchval(
                "SELECT has_table_privilege($1, $2, $3)", app, name, privilege
            ), (name, privilege)
        for privilege in NOT_GRANTED:
            assert not await superuser.fetchval(
                "SELECT has_table_privilege($1, $2, $3)", app, name, privilege
            ), (name, privilege)


@pytest.mark.parametrize("role_kind", ["app", "migrator"])
async def test_no_role_reaches_another_services_schema(
    superuser: asyncpg.Connection[Any], role_kind: str
) -> None:
    for service in SERVICES:
        role = f"{service}_{role_kind}"
        for other in SERVICES:
            if other == service:
                continue
            assert not await superuser.fetchval(
                "SELECT has_schema_privilege($1, $2, 'USAGE') "
                "OR has_schema_privilege($1, $2, 'CREATE')",
                role,
                other,
            ), (role, other)


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("todo_app", "SELECT * FROM auth.users"),
        ("todo_app", "SELECT * FROM auth.refresh_tokens"),
        ("chat_app", "SELECT * FROM todo.tasks"),
        ("chat_app", "DELETE FROM todo.tasks"),
        ("chat_app", "UPDATE todo.tasks SET title = 'x'"),
        ("auth_app", "SELECT * FROM chat.messages"),
        ("auth_app", "INSERT INTO chat.conversations (user_id, title) VALUES ('u', 't')"),
        ("todo_app", "SELECT * FROM chat.conversations"),
        ("chat_app", "SELECT * FROM auth.users"),
        ("auth_app", "SELECT * FROM todo.tasks"),
        ("todo_migrator", "SELECT * FROM auth.users"),
        ("chat_migrator", "DROP TABLE todo.tasks"),
    ],
)
async def test_a_role_is_refused_another_services_data(
    deployment: Deployment, role: str, statement: str
) -> None:
    connection = await as_role(deployment, role)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.mark.parametrize("service", MIGRATED)
@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE {schema}.extra (id int)",
        "CREATE TABLE public.extra (id int)",
        "CREATE TEMPORARY TABLE extra (id int)",
        "CREATE SCHEMA extra",
        "CREATE FUNCTION {schema}.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "DROP TABLE {table}",
        "ALTER TABLE {table} ADD COLUMN extra int",
        "TRUNCATE {table}",
    ],
)
async def test_app_role_cannot_change_any_schema(
    deployment: Deployment, service: str, statement: str
) -> None:
    connection = await as_role(deployment, f"{service}_app")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement.format(schema=service, table=TARGET_TABLE[service]))
    finally:
        await connection.close()


async def test_migrator_creates_tables_that_the_app_role_may_use_at_once(
    deployment: Deployment,
) -> None:
    migrator = await as_role(deployment, "chat_migrator")
    app = await as_role(deployment, "chat_app")
    try:
        await migrator.execute(
            "CREATE TABLE chat.later (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            "serial_id bigserial, note text)"
        )
        try:
            await app.execute("INSERT INTO chat.later (note) VALUES ('x')")
            await app.execute("UPDATE chat.later SET note = 'y'")
            assert await app.fetchval("SELECT note FROM chat.later") == "y"
            await app.execute("DELETE FROM chat.later")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute("TRUNCATE chat.later")
        finally:
            await migrator.execute("DROP TABLE chat.later")
    finally:
        await app.close()
        await migrator.close()


async def test_migrator_needs_no_database_privilege_for_an_installed_extension(
    deployment: Deployment,
) -> None:
    migrator = await as_role(deployment, "todo_migrator")
    try:
        # What the todo migration runs: a no-op because the bootstrap installed it.
        await migrator.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await migrator.execute("CREATE EXTENSION IF NOT EXISTS citext")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await migrator.execute("CREATE SCHEMA IF NOT EXISTS todo")
    finally:
        await migrator.close()


async def test_auth_service_runs_on_its_app_role(deployment: Deployment) -> None:
    """The real auth app, connected as ``auth_app``: register, log in, rotate, probe."""
    settings = AuthSettings(
        _env_file=None,
        environment="test",
        database_url=deployment.url("auth_app"),
        signing_keys=SecretStr(generate_pem()),
    )
    async with serve(create_app(settings)) as client:
        assert (await client.get("/readyz")).status_code == 200
        account = {"email": "ann@example.com", "password": "correct horse battery"}
        assert (await client.post("/api/auth/register", json=account)).status_code == 201
        wrong = {**account, "password": "not the password"}
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
        login = await client.post("/api/auth/login", json=account)
        assert login.status_code == 200, login.text
        refreshed = await client.post(
            "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
