"""The consumer side of ``user.deleted`` (docs/events.md), the same in every service that
holds user-owned rows: each event applied once (``handle_once``), the subject buried (its
remaining tokens and new rows refused, shared/tombstones.py) and its rows deleted, by a
worker process reading the users stream as the service's consumer group."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import Table, text
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import utcnow
from shared.db import Database
from shared.events import (
    USER_DELETED,
    USERS_STREAM,
    Event,
    RedisStreamSubscription,
    forget_processed,
    handle_once,
)
from shared.settings import ServiceSettings
from shared.tombstones import bury
from shared.worker import Loop, consumer_name, create_worker_app, expired_rows_loop, periodic_loop

logger = logging.getLogger(__name__)

# How long one statement of an account's purge may run (the deletion of a table's rows of
# that account), in place of the 30 s the running roles allow (shared/bootstrap.sql). Still
# a bound: a purge stuck behind a lock ends and its event is delivered again.
PURGE_STATEMENT_TIMEOUT = "10min"


@dataclass(frozen=True)
class UserPurge:
    """What one service purges: its consumer group on the users stream, its tombstone and
    processed-event tables, and its user-owned tables, children before parents (so no
    foreign key action has work left)."""

    group: str
    deleted_subjects: Table
    processed_events: Table
    tables: tuple[Table, ...]

    async def purge_user(self, session: AsyncSession, subject: str) -> None:
        """Record the subject as deleted (its new rows are refused from here on), then
        delete every row of it. An account of any size is purged: the transaction allows its
        statements ``PURGE_STATEMENT_TIMEOUT`` instead of the running role's 30 s."""
        connection = await session.connection()
        await connection.execute(
            text("SELECT set_config('statement_timeout', :bound, true)"),  # SET LOCAL
            {"bound": PURGE_STATEMENT_TIMEOUT},
        )
        await bury(session, self.deleted_subjects, subject)
        for table in self.tables:
            await connection.execute(table.delete().where(table.c.user_id == subject))

    async def apply(self, session: AsyncSession, event: Event) -> None:
        if event.type == USER_DELETED and event.version == 1:
            subject = event.data.get("user_id")
            if not isinstance(subject, str) or not subject or subject != event.key:
                logger.error("user.deleted %s without a consistent user_id: ignored", event.id)
                return
            await self.purge_user(session, subject)
            logger.info("purged the rows of a deleted user (event %s)", event.id)
        # Other types and versions on the stream are not this service's concern.

    async def handle(self, db: Database, event: Event) -> None:
        await handle_once(db, self.processed_events, event, self.apply)


def purge_loop(
    purge: UserPurge,
    settings: ServiceSettings,
    database: Database,
    redis: Redis,
    *,
    consumer: str | None = None,
) -> Loop:
    """The loop that reads the users stream as ``purge``'s group. Several replicas may run:
    each entry reaches one consumer of the group, and a replayed one is dropped by its id."""
    subscription = RedisStreamSubscription(
        redis,
        stream=USERS_STREAM,
        group=purge.group,
        consumer=consumer or consumer_name(),
        batch=settings.events_batch,
        block_ms=max(1, int(settings.events_block_seconds * 1000)),
        claim_idle_ms=int(settings.events_claim_idle_seconds * 1000),
        max_deliveries=settings.events_max_deliveries,
    )

    async def handle(event: Event) -> None:
        await purge.handle(database, event)

    async def step() -> int:
        return await subscription.poll(handle)

    return Loop("users", step)


def processed_retention_loop(
    purge: UserPurge, settings: ServiceSettings, database: Database
) -> Loop:
    """The loop that forgets the ids of applied events once they are older than
    ``events_processed_retention_seconds`` (in bounded batches): far older than any
    redelivery, so the table does not grow with every deletion ever made."""

    async def step() -> int:
        return await forget_processed(
            database,
            purge.processed_events,
            keep_seconds=settings.events_processed_retention_seconds,
            batch=settings.events_batch * 10,
        )

    return periodic_loop("users-retention", step)


def purge_worker_app(
    purge: UserPurge,
    settings: ServiceSettings,
    *,
    db: Database | None = None,
    consumer: str | None = None,
    expiring: Mapping[str, str] | None = None,
) -> FastAPI:
    """The worker of a service whose events work is the purge: one loop over the users
    stream, one forgetting old ids of applied events, and one deleting the expired rows of
    each table in ``expiring`` (its loop's name to the table's qualified name)."""

    def loops(database: Database, redis: Redis) -> list[Loop]:
        return [
            purge_loop(purge, settings, database, redis, consumer=consumer),
            processed_retention_loop(purge, settings, database),
            *(
                expired_rows_loop(name, database, table, utcnow)
                for name, table in (expiring or {}).items()
            ),
        ]

    return create_worker_app(name=purge.group, settings=settings, loops=loops, db=db)
