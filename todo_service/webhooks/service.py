"""The webhooks' data, always scoped to the token's user: another user's webhook is a 404
exactly like one that does not exist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text

from shared.clock import Clock
from shared.db import Database
from shared.errors import Conflict, NotFound
from shared.outbox import hash32
from shared.pagination import Page, cursor_id, decode_cursor_list, encode_cursor
from shared.sealing import SecretBox
from todo_service.models import WEBHOOK_DELIVERIES, WEBHOOKS, WEBHOOKS_PER_USER
from todo_service.webhooks.schemas import DeliveryPublic, WebhookCreated, WebhookPublic
from todo_service.webhooks.signing import new_secret

# Advisory lock namespace of a user's webhook registrations (count then insert).
REGISTRATION_LOCK_CLASS = 0x0B10


class WebhookNotFound(NotFound, code="webhook_not_found", message="No such webhook"):
    """No such webhook, or another user's."""


class WebhookLimitReached(
    Conflict,
    code="webhook_limit_reached",
    message=f"At most {WEBHOOKS_PER_USER} webhooks per user; delete one first",
):
    """The user already has as many webhooks as allowed."""


def _public(row: Any) -> WebhookPublic:
    return WebhookPublic(id=row.id, url=row.url, events=list(row.events), created_at=row.created_at)


_COLUMNS = (WEBHOOKS.c.id, WEBHOOKS.c.url, WEBHOOKS.c.events, WEBHOOKS.c.created_at)


async def create_webhook(
    db: Database,
    user_id: str,
    *,
    url: str,
    events: Sequence[str],
    box: SecretBox,
    clock: Clock,
) -> WebhookCreated:
    """Register a checked URL; the answer holds the secret, the row only its sealed form."""
    secret = new_secret()
    async with db.unit_of_work() as session:
        connection = await session.connection()
        # Two registrations of one user take turns, so the count below stays a bound.
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": REGISTRATION_LOCK_CLASS, "key": hash32(user_id)},
        )
        count = (
            await connection.execute(
                select(func.count()).select_from(WEBHOOKS).where(WEBHOOKS.c.user_id == user_id)
            )
        ).scalar_one()
        if count >= WEBHOOKS_PER_USER:
            raise WebhookLimitReached()
        row = (
            await connection.execute(
                WEBHOOKS.insert()
                .values(
                    user_id=user_id,
                    url=url,
                    events=list(events),
                    secret_sealed=box.seal(secret),
                    created_at=clock(),
                )
                .returning(*_COLUMNS)
            )
        ).one()
    return WebhookCreated(**_public(row).model_dump(), secret=secret)


async def list_webhooks(db: Database, user_id: str) -> list[WebhookPublic]:
    async with db.unit_of_work() as session:
        connection = await session.connection()
        rows = (
            await connection.execute(
                select(*_COLUMNS).where(WEBHOOKS.c.user_id == user_id).order_by(WEBHOOKS.c.id)
            )
        ).all()
    return [_public(row) for row in rows]


async def get_webhook(db: Database, user_id: str, webhook_id: int) -> WebhookPublic:
    async with db.unit_of_work() as session:
        connection = await session.connection()
        row = (
            await connection.execute(
                select(*_COLUMNS).where(WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.user_id == user_id)
            )
        ).first()
    if row is None:
        raise WebhookNotFound()
    return _public(row)


async def delete_webhook(db: Database, user_id: str, webhook_id: int) -> None:
    """Delete it and its deliveries (pending ones are never sent)."""
    async with db.unit_of_work() as session:
        connection = await session.connection()
        deleted = (
            await connection.execute(
                WEBHOOKS.delete()
                .where(WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.user_id == user_id)
                .returning(WEBHOOKS.c.id)
            )
        ).first()
    if deleted is None:
        raise WebhookNotFound()


async def list_deliveries(
    db: Database, user_id: str, webhook_id: int, *, limit: int, cursor: str | None
) -> Page[DeliveryPublic]:
    """A webhook's deliveries, newest first, in keyset pages (the cursor is the last id)."""
    before = cursor_id(decode_cursor_list(cursor, length=1)[0]) if cursor is not None else None
    d = WEBHOOK_DELIVERIES
    async with db.unit_of_work() as session:
        connection = await session.connection()
        owned = (
            await connection.execute(
                select(WEBHOOKS.c.id).where(
                    WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.user_id == user_id
                )
            )
        ).first()
        if owned is None:
            raise WebhookNotFound()
        scope = (d.c.webhook_id == webhook_id, d.c.user_id == user_id)
        query = select(
            d.c.id,
            d.c.event_id,
            d.c.event_type,
            d.c.status,
            d.c.attempts,
            d.c.last_status_code,
            d.c.last_error,
            d.c.next_attempt_at,
            d.c.created_at,
            d.c.delivered_at,
        ).where(*scope)
        if before is not None:
            query = query.where(d.c.id < before)
        rows = (await connection.execute(query.order_by(d.c.id.desc()).limit(limit + 1))).all()
        total = (
            await connection.execute(select(func.count()).select_from(d).where(*scope))
        ).scalar_one()
    items = [DeliveryPublic.model_validate(row._asdict()) for row in rows[:limit]]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page(items=items, total=int(total), next_cursor=next_cursor)
