"""The worker's consumer group ``webhooks`` on the tasks stream: each event becomes one
pending delivery per webhook of its user (the event's key) that names its type, all in one
transaction with the record of the event's id, so a redelivered event adds nothing."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import Clock
from shared.db import Database
from shared.events import TASKS_STREAM, Event, RedisStreamSubscription, handle_once
from shared.settings import ServiceSettings
from shared.worker import Loop, consumer_name
from todo_service.models import WEBHOOK_DELIVERIES, WEBHOOK_EVENTS, WEBHOOKS

logger = logging.getLogger(__name__)

GROUP = "webhooks"


class WebhookFanout:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def apply(self, session: AsyncSession, event: Event) -> None:
        if not event.key:
            logger.error("event %s without a key: not fanned out", event.id)
            return
        connection = await session.connection()
        webhooks = (
            await connection.execute(
                select(WEBHOOKS.c.id).where(
                    WEBHOOKS.c.user_id == event.key, WEBHOOKS.c.events.any_() == event.type
                )
            )
        ).all()
        if not webhooks:
            return
        now = self._clock()
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
                        "status": "pending",
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for webhook in webhooks
                ]
            )
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        )

    async def handle(self, event: Event) -> None:
        await handle_once(self._db, WEBHOOK_EVENTS, event, self.apply)


def fanout_loop(
    settings: ServiceSettings,
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
    fanout = WebhookFanout(database, clock=clock)

    async def step() -> int:
        return await subscription.poll(fanout.handle)

    return Loop("webhooks-fanout", step)
