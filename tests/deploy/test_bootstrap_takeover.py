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
