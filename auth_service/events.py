"""The events the auth service publishes (docs/events.md has their schemas).

Every event is written to ``auth.outbox`` in the transaction of its change; the worker
(``python -m auth_service.worker``) publishes it to the ``USERS_STREAM`` stream.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import OUTBOX
from shared.events import USER_DELETED, USERS_STREAM, utc_text
from shared.outbox import add_event

USER_REGISTERED = "user.registered"
# The largest event of the users stream, in bytes: the envelope, a user id and a moment.
USER_EVENT_MAX_BYTES = 512


async def user_registered(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> int:
    """``user.registered`` v1: ``{user_id, registered_at}``."""
    return await _user_event(session, USER_REGISTERED, user_id, registered_at=at)


async def user_deleted(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> int:
    """``user.deleted`` v1: ``{user_id, deleted_at}``. Consumers purge the user's rows."""
    return await _user_event(session, USER_DELETED, user_id, deleted_at=at)


async def _user_event(
    session: AsyncSession, type_: str, user_id: uuid.UUID, **moments: datetime
) -> int:
    """A v1 event of the users stream, keyed by the user: their id and the moments given."""
    data = {"user_id": str(user_id)} | {name: utc_text(at) for name, at in moments.items()}
    return await add_event(
        session, OUTBOX, stream=USERS_STREAM, key=str(user_id), type=type_, version=1, data=data
    )
