"""The events the chat service consumes (docs/events.md): ``user.deleted`` from the
users stream, applied once each (shared/events.py), purging the user's rows for good."""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.models import (
    CONVERSATIONS,
    DELETED_SUBJECTS,
    MESSAGES,
    PROCESSED_EVENTS,
    TURN_KEYS,
)
from shared.db import Database
from shared.events import Event, handle_once
from shared.tombstones import bury

logger = logging.getLogger(__name__)

# The auth service's users stream and the event types this service acts on.
USERS_STREAM = "events.users"
USER_DELETED = "user.deleted"
# This service's consumer group on that stream.
GROUP = "chat"

# Children before parents, so no foreign key action has work left.
PURGED = (MESSAGES, TURN_KEYS, CONVERSATIONS)


async def purge_user(session: AsyncSession, subject: str) -> None:
    """Record the subject as deleted (its new rows are refused from here on), then delete
    every row of it."""
    await bury(session, DELETED_SUBJECTS, subject)
    connection = await session.connection()
    for table in PURGED:
        await connection.execute(table.delete().where(table.c.user_id == subject))


async def apply(session: AsyncSession, event: Event) -> None:
    if event.type == USER_DELETED and event.version == 1:
        subject = event.data.get("user_id")
        if not isinstance(subject, str) or not subject or subject != event.key:
            logger.error("user.deleted %s without a consistent user_id: ignored", event.id)
            return
        await purge_user(session, subject)
        logger.info("purged the rows of a deleted user (event %s)", event.id)
    # Other types and versions on the stream are not this service's concern.


async def handle(db: Database, event: Event) -> None:
    await handle_once(db, PROCESSED_EVENTS, event, apply)
