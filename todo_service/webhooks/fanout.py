"""The worker's consumer group ``webhooks`` on the tasks stream: each event becomes one
pending delivery per webhook of its user (the event's key) that names its type, all in one
transaction with the record of the event's id, so a redelivered event adds nothing.

A user with ``pending_per_user`` deliveries pending (receivers that stall or fail, and a
stream of changes) gets the event's deliveries recorded as failed instead: the backlog, and
what the delivery loop's claim reads past a user at its share of the attempts, stay bounded.
Fan-outs of one user running at once may each pass the bound by one event's deliveries.
A webhook held back after failures (``delivery``) gets its delivery due when the hold ends."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import Clock
from shared.db import Database
from shared.events import TASKS_STREAM, Event, RedisStreamSubscription, handle_once
from shared.worker import Loop, consumer_name
from todo_service.models import WEBHOOK_DELIVERIES, WEBHOOK_EVENTS, WEBHOOKS
from todo_service.settings import TodoSettings

logger = logging.getLogger(__name__)

GROUP = "webhooks"


class WebhookFanout:
    def __init__(self, db: Database, *, clock: Clock, pending_per_user: int) -> None:
        self._db = db
        self._clock = clock
        self._pending_per_user = pending_per_user

    async def apply(self, session: AsyncSession, event: Event) -> None:
        if not event.key:
            logger.error("event %s without a key: not fanned out", event.id)
            return
        connection = await session.connection()
        webhooks = (
            await connection.execute(
                select(WEBHOOKS.c.id, WEBHOOKS.c.held_until).where(
                    WEBHOOKS.c.user_id == event.key, WEBHOOKS.c.events.any_() == event.type
                )
            )
        ).all()
        if not webhooks:
            return
        now = self._clock()
        full = await self._pending(connection, event.key) >= self._pending_per_user
        not_queued = {
            "status": "failed",
            "finished_at": now,
            "last_error": f"not queued: {self._pending_per_user} deliveries of this "
            "account were pending",
        }
        payload = event.to_json().decode()
        await connection.execute(
            insert(WEBHOOK_DELIVERIES)
            .values(
                [
                    {
                        "webhook_id": webhook.id,
                        "user_id": event.key,
                        "event_id": event.id,
                        "event_type": event.type,
                        "payload": payload,
                        "created_at": now,
                        **(
                            not_queued
                            if full
                            else {
                                "status": "pending",
                                "next_attempt_at": max(now, webhook.held_until or now),
                            }
                        ),
                    }
                    for webhook in webhooks
                ]
            )
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        )

    async def _pending(self, connection: AsyncConnection, user_id: str) -> int:
        """The user's pending deliveries, counted up to the bound."""
        pending = (
            select(literal(1))
            .where(
                WEBHOOK_DELIVERIES.c.user_id == user_id, WEBHOOK_DELIVERIES.c.status == "pending"
            )
            .limit(self._pending_per_user)
            .subquery()
        )
        count: int = (
            await connection.execute(select(func.count()).select_from(pending))
        ).scalar_one()
        return count

    async def handle(self, event: Event) -> None:
        await handle_once(self._db, WEBHOOK_EVENTS, event, self.apply)


def fanout_loop(
    settings: TodoSettings,
    database: Database,
    redis: Redis,
    *,
    clock: Clock,
    consumer: str | None = None,
) -> Loop:
    """Reads the tasks stream as the ``webhooks`` group; replicas share its entries."""
    subscription = RedisStreamSubscription(
        redis,
        stream=TASKS_STREAM,
        group=GROUP,
        consumer=consumer or consumer_name(),
        batch=settings.events_batch,
        block_ms=max(1, int(settings.events_block_seconds * 1000)),
        claim_idle_ms=int(settings.events_claim_idle_seconds * 1000),
    )
    fanout = WebhookFanout(
        database, clock=clock, pending_per_user=settings.webhook_pending_per_user
    )

    async def step() -> int:
        return await subscription.poll(fanout.handle)

    return Loop("webhooks-fanout", step)
