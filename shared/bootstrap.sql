-- Schemas, extensions and least-privilege roles of the todo platform. Idempotent: run it on
-- every deploy, before the migrations.
--
-- Run it as the database owner (Neon: the project's owner role on the direct host; compose: the
-- postgres superuser), inside one transaction:
--   python -m shared.bootstrap            (reads the URL and the passwords from the environment)
--   PGOPTIONS="-c todo_platform.auth_app_password=..." psql "$URL" --single-transaction -f shared/bootstrap.sql
--
-- For each service (auth, todo, chat, web):
--   <service>_migrator  owns schema <service> and runs that service's migrations; nothing else.
--   <service>_app       what the running service logs in as: USAGE on schema <service>,
--                       SELECT/INSERT/UPDATE/DELETE on its tables, USAGE on its sequences.
--                       No DDL, no other schema, no CREATE anywhere, no temporary tables.
--                       A statement ends after 30 s, a session idle in a transaction after 60 s.
-- A password in the setting todo_platform.<role>_password is (re)set; an absent or empty one
-- leaves that role's password as it is, so one role's password can be rotated on its own.
-- python -m shared.bootstrap puts the password's SCRAM-SHA-256 verifier there, never the
-- password itself (the server stores a verifier as it is); by hand, put a verifier there
-- too (shared.bootstrap.scram_verifier), so no statement or log carries the password.

-- Two deploys starting at once take turns instead of racing on CREATE ROLE.
SELECT pg_advisory_xact_lock(hashtext('todo-platform bootstrap'));

-- Extensions the migrations use. Creating one needs more than a migration role has; the
-- migration's own CREATE EXTENSION IF NOT EXISTS is then a no-op that needs no privilege.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

-- public keeps the shared extensions and nothing else: nobody but its owner creates there.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $bootstrap$
DECLARE
    service text;
    migrator text;
    app text;
    role_name text;
    secret text;
    drifted text;
    item record;
BEGIN
    -- Connecting is granted per role below; no temporary tables or schemas for anyone else.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());

    FOREACH service IN ARRAY ARRAY['auth', 'todo', 'chat', 'web'] LOOP
        migrator := service || '_migrator';
        app := service || '_app';

        FOREACH role_name IN ARRAY ARRAY[migrator, app] LOOP
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            END IF;
            -- A same-named role with more power than these need is refused, never used.
            SELECT rolname INTO drifted FROM pg_roles
             WHERE rolname = role_name
               AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls);
            IF drifted IS NOT NULL THEN
                RAISE EXCEPTION 'role % has privileged attributes; refusing to use it', drifted;
            END IF;
            secret := current_setting('todo_platform.' || role_name || '_password', true);
            IF coalesce(secret, '') <> '' THEN
                EXECUTE format('ALTER ROLE %I PASSWORD %L', role_name, secret);
            END IF;
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
        END LOOP;

        -- The owner acts for the migration role below (owning its schema, its default
        -- privileges). A superuser can already; a non-superuser owner (Neon's) becomes a member.
        IF NOT pg_has_role(current_user, migrator, 'USAGE') THEN
            EXECUTE format('GRANT %I TO %I', migrator, current_user);
        END IF;

        IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = service) THEN
            EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', service, migrator);
        ELSE
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, migrator);
        END IF;
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', service);

        -- Objects created before this role model (say, migrated as the owner) change hands, so
        -- the next migration can alter them: tables and views, sequences, types (enums,
        -- domains, ranges) and routines. A table's owned sequences, indexes and row type
        -- follow it, and what an extension installed stays the extension's.
        FOR item IN
            SELECT kind, name FROM (
                SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                       c.oid::regclass::text, c.relnamespace, c.relowner, 'pg_class'::regclass,
                       c.oid
                  FROM pg_class c
                 WHERE c.relkind IN ('r', 'p', 'v')
                    OR (c.relkind = 'S' AND NOT EXISTS (
                            SELECT FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype IN ('a', 'i')))
                UNION ALL
                SELECT 'TYPE', t.oid::regtype::text, t.typnamespace, t.typowner,
                       'pg_type'::regclass, t.oid
                  FROM pg_type t WHERE t.typtype IN ('e', 'd', 'r')
                UNION ALL
                SELECT 'ROUTINE', p.oid::regprocedure::text, p.pronamespace, p.proowner,
                       'pg_proc'::regclass, p.oid
                  FROM pg_proc p
            ) AS owned (kind, name, namespace, owner, catalog, oid)
             WHERE namespace = service::regnamespace AND owner <> migrator::regrole
               AND NOT EXISTS (SELECT FROM pg_depend d
                                WHERE d.classid = owned.catalog AND d.objid = owned.oid
                                  AND d.deptype = 'e')
             ORDER BY kind, name
        LOOP
            EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.name, migrator);
        END LOOP;

        -- The service's data, present and future, and nothing more.
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', service, app);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
                       service, app);
        EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO %I', service, app);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                       'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
                       migrator, service, app);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                       'GRANT USAGE ON SEQUENCES TO %I', migrator, service, app);

        -- Time bounds on every session of the running service, set on the role so they hold
        -- behind a transaction pooler too: a statement (a lock wait included) is cancelled
        -- after 30 s (the gateway gives up on auth and todo after 15); a session left idle in
        -- a transaction (a bug, a task cancelled mid-transaction) is ended after 60 s, and its
        -- locks with it. The migrator has neither: a migration may build a large index.
        EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', app, '30s');
        EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', app, '60s');
    END LOOP;
END
$bootstrap$;
