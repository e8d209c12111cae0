"""Deleted subjects: once a service has purged a deleted account's rows, that account's
remaining access tokens are refused there and no row of it can be stored again.

Each service keeps its own ``deleted_subjects`` table (``tombstone_table``), filled by its
consumer of ``user.deleted`` together with the purge (``bury``). Two defences use it:

- ``TombstoneVerifier`` wraps the service's token verifier: a token of a buried subject is a
  401 ``account_deleted``, whatever its remaining lifetime.
- A trigger on every user-owned table (``refusal_trigger_sql``) refuses an insert for a
  buried subject. It takes a shared advisory lock on the subject and ``bury`` an exclusive
  one, so a write that passed the token check just before the purge either commits before
  the purge starts (and is purged with the rest) or waits for it (and is refused): no row
  survives the purge, whichever write path stored it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, text
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database, is_database_outage
from shared.errors import DELETED_SUBJECT_SQLSTATE
from shared.tokens import InvalidToken, Principal, TokenVerifier

logger = logging.getLogger(__name__)

# The advisory lock namespace of subjects (the first int4 key; the second is hashtext).
SUBJECT_LOCK_CLASS = 0x0B0E


class AccountDeleted(InvalidToken):
    code = "account_deleted"
    message = "The account of this access token was deleted"


def tombstone_table(metadata: MetaData) -> Table:
    return Table(
        "deleted_subjects",
        metadata,
        Column("subject", Text, primary_key=True),
        Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def refusal_function_sql(schema: str) -> str:
    """The trigger function of ``schema`` (run by its migration)."""
    return f"""
CREATE OR REPLACE FUNCTION "{schema}".refuse_deleted_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({SUBJECT_LOCK_CLASS}, hashtext(NEW.user_id));
    IF EXISTS (SELECT 1 FROM "{schema}".deleted_subjects WHERE subject = NEW.user_id) THEN
        RAISE EXCEPTION 'the account was deleted' USING ERRCODE = '{DELETED_SUBJECT_SQLSTATE}';
    END IF;
    RETURN NEW;
END
$$"""  # noqa: S608 - the service's own schema name


def refusal_trigger_sql(schema: str, table: str) -> str:
    return (
        f'CREATE TRIGGER refuse_deleted_subject BEFORE INSERT ON "{schema}"."{table}" '
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_deleted_subject()'
    )


async def bury(session: AsyncSession, table: Table, subject: str) -> None:
    """Record ``subject`` as deleted, holding its lock until the transaction ends: purge its
    rows after this, in the same transaction."""
    await (await session.connection()).execute(
        text("SELECT pg_advisory_xact_lock(:space, hashtext(:subject))"),
        {"space": SUBJECT_LOCK_CLASS, "subject": subject},
    )
    await (await session.connection()).execute(
        text(
            f"INSERT INTO {_qualified(table)} (subject) VALUES (:subject) "  # noqa: S608
            "ON CONFLICT (subject) DO NOTHING"
        ),
        {"subject": subject},
    )


class Tombstones:
    """Whether a subject is buried, asked of the service's database.

    A buried subject is remembered in process for good (it never comes back; the cache is
    bounded); any other is asked every time, one primary-key read, so every replica refuses
    a deleted account's token from the moment the purge committed.

    When the database cannot be reached the check is passed over, with a warning: the
    request's own statements need that database too, so it answers its ordinary outage
    error (a 503, an MCP internal error) rather than a refusal of the token, and a row it
    could still write is refused by the trigger.
    """

    def __init__(self, db: Database, table: Table, *, cache_size: int = 10_000) -> None:
        self._db = db
        self._sql = f"SELECT 1 FROM {_qualified(table)} WHERE subject = $1"  # noqa: S608
        self._size = cache_size
        self._buried: OrderedDict[str, None] = OrderedDict()

    async def is_buried(self, subject: str) -> bool:
        if subject in self._buried:
            return True
        try:
            row = await self._db.fetch_row(self._sql, subject)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            logger.warning("deleted subjects not checked: the database is unreachable")
            return False
        if row is None:
            return False
        _remember(self._buried, subject, None, self._size)
        return True


def _remember(cache: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class TombstoneVerifier:
    """A token verifier that also refuses the tokens of buried subjects (``AccountDeleted``).

    It stands where the service's ``TokenVerifier`` stood (``app.state.verifier``), so the
    REST routes and the MCP endpoint both go through it."""

    def __init__(self, inner: TokenVerifier, tombstones: Tombstones) -> None:
        self.inner = inner
        self.tombstones = tombstones

    async def verify(self, token: str) -> Principal:
        principal = await self.inner.verify(token)
        if await self.tombstones.is_buried(principal.sub):
            raise AccountDeleted()
        return principal

    async def ready(self) -> bool:
        return await self.inner.ready()

    def jwks_sources(self) -> Any:
        return self.inner.jwks_sources()
