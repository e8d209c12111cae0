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


async def user_registered(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> int:
    """``user.registered`` v1: ``{user_id, registered_at}``."""
    return await add_event(
        session,
        OUTBOX,
        stream=USERS_STREAM,
        key=str(user_id),
        type=USER_REGISTERED,
        version=1,
        data={"user_id": str(user_id), "registered_at": utc_text(at)},
    )


async def user_deleted(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> int:
    """``user.deleted`` v1: ``{user_id, deleted_at}``. Consumers purge the user's rows."""
    return await add_event(
        session,
        OUTBOX,
        stream=USERS_STREAM,
        key=str(user_id),
        type=USER_DELETED,
        version=1,
        data={"user_id": str(user_id), "deleted_at": utc_text(at)},
    )
