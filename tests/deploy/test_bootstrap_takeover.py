"""A database migrated before the role model (as its owner) is taken over by the bootstrap."""

from __future__ import annotations

import asyncio

from alembic import command

from shared.migrations import alembic_config
from tests.deploy.support import (
    PASSWORDS,
    connect,
    create_deployment,
    drop_deployment,
    migrate,
    run_bootstrap,
)


async def test_bootstrap_hands_an_owner_migrated_schema_to_its_migration_role(
    database_url: str,
) -> None:
    deployment = await create_deployment(database_url, superuser_admin=False)
    try:
        await migrate(deployment, "auth", as_role=deployment.admin)
        await run_bootstrap(deployment, PASSWORDS)

        superuser = await connect(deployment.superuser_url)
        try:
            owners = await superuser.fetch(
                "SELECT c.relname, c.relowner::regrole::text AS owner FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'auth'"
            )
            assert {row["relname"] for row in owners} >= {"users", "alembic_version"}
            assert {row["owner"] for row in owners} == {"auth_migrator"}
            assert await superuser.fetchval(
                "SELECT has_table_privilege('auth_app', 'auth.users', 'SELECT, INSERT, UPDATE, "
                "DELETE') AND NOT has_table_privilege('auth_app', 'auth.users', 'TRUNCATE')"
            )
        finally:
            await superuser.close()

        # Owning every object now, the migration role can take the schema down and up again.
        config = alembic_config("auth_service", deployment.url("auth_migrator"))
        await asyncio.to_thread(command.downgrade, config, "base")
        await asyncio.to_thread(command.upgrade, config, "head")
    finally:
        await drop_deployment(deployment)


async def test_bootstrap_hands_over_every_kind_of_object_an_owner_migrated(
    database_url: str,
) -> None:
    """Tables, views, sequences (owned by a column or standing alone), enums, domains and
    routines (the todo schema's trigger functions) all change hands."""
    deployment = await create_deployment(database_url, superuser_admin=False)
    try:
        await migrate(deployment, "todo", as_role=deployment.admin)
        admin = await connect(deployment.admin_url)
        try:
            await admin.execute(
                "CREATE SEQUENCE todo.standalone_seq;"
                "CREATE VIEW todo.open_tasks AS SELECT id FROM todo.tasks WHERE NOT completed;"
                "CREATE DOMAIN todo.short_text AS text CHECK (length(VALUE) < 10);"
            )
        finally:
            await admin.close()
        await run_bootstrap(deployment, PASSWORDS)

        superuser = await connect(deployment.superuser_url)
        try:
            owners = await superuser.fetch(
                "SELECT 'class' AS catalog, relname AS name, relowner::regrole::text AS owner "
                "FROM pg_class WHERE relnamespace = 'todo'::regnamespace "
                "UNION ALL SELECT 'type', typname, typowner::regrole::text "
                "FROM pg_type WHERE typnamespace = 'todo'::regnamespace "
                "UNION ALL SELECT 'routine', proname, proowner::regrole::text "
                "FROM pg_proc WHERE pronamespace = 'todo'::regnamespace"
            )
        finally:
            await superuser.close()
        names = {(row["catalog"], row["name"]) for row in owners}
        assert {
            ("class", "tasks"),
            ("class", "open_tasks"),
            ("class", "standalone_seq"),
            ("type", "task_priority"),
            ("type", "short_text"),
            ("routine", "refuse_deleted_subject"),
        } <= names
        assert {row["owner"] for row in owners} == {"todo_migrator"}
    finally:
        await drop_deployment(deployment)
