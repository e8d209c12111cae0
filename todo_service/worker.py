"""``python -m todo_service.worker``: the todo service's background work.

- consumes the users stream (``user.deleted`` purges a user's rows) as the ``todo`` consumer
  group (shared/purge.py);
- publishes the todo outbox (task events, due reminders) to the tasks stream
  (shared/outbox.py, docs/events.md);
- fires due reminders: notifications and ``reminder.due`` events (todo_service/scheduler.py);
- deletes notifications read more than ``TODO_NOTIFICATIONS_READ_RETENTION_DAYS`` ago, the
  ids of applied users-stream events older than ``TODO_EVENTS_PROCESSED_RETENTION_SECONDS``,
  webhook deliveries finished (with fanned-out event ids) more than
  ``TODO_WEBHOOK_RETENTION_SECONDS`` ago, and expired idempotency keys (bounded batches, every
  few minutes, each loop on its own schedule: however busy the work that makes those rows is);
- fans the tasks stream out to the users' webhooks as the ``webhooks`` consumer group, and
  delivers them (todo_service/webhooks, docs/webhooks.md).

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8012). Several replicas may run:
each stream entry reaches one of them, one publishes the outbox at a time, and each due
delivery is claimed by one (``SKIP LOCKED``).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import Redis

from shared.clock import Clock, utcnow
from shared.db import Database
from shared.purge import processed_retention_loop, purge_loop
from shared.sealing import SecretBox
from shared.worker import (
    RETENTION_BATCH,
    Loop,
    create_worker_app,
    expired_rows_loop,
    outbox_loop,
    periodic_loop,
)
from todo_service.events import PURGE
from todo_service.models import OUTBOX
from todo_service.notifications import forget_read
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings, get_settings
from todo_service.webhooks.delivery import WebhookDeliverer
from todo_service.webhooks.fanout import fanout_loop
from todo_service.webhooks.keys import WebhookKeys
from todo_service.webhooks.targets import Resolver, system_resolver

DEFAULT_PORT = 8012


def create_app(
    settings: TodoSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
    clock: Clock = utcnow,
    resolver: Resolver = system_resolver,
    webhook_box: SecretBox | None = None,
) -> FastAPI:
    """The worker; ``db``, ``consumer`` (its name in the consumer groups), ``clock``, the
    webhooks' DNS ``resolver`` and sealing ``webhook_box`` are replaced in tests."""
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        async def fire() -> int:
            return await fire_due(
                database,
                now=clock(),
                batch=settings.reminders_batch,
                unread_max=settings.notifications_unread_max,
            )

        async def forget_read_notifications() -> int:
            keep = timedelta(days=settings.notifications_read_retention_days)
            return await forget_read(database, before=clock() - keep, batch=RETENTION_BATCH)

        keys = WebhookKeys(settings, webhook_box)
        deliverer = WebhookDeliverer(database, keys, settings, clock=clock, resolver=resolver)

        async def forget_finished_deliveries() -> int:
            return await deliverer.forget_finished(batch=RETENTION_BATCH)

        return [
            purge_loop(PURGE, settings, database, redis, consumer=consumer),
            processed_retention_loop(PURGE, settings, database),
            periodic_loop("notifications-retention", forget_read_notifications),
            outbox_loop(database, OUTBOX, redis, settings),
            Loop("reminders", fire, idle_seconds=settings.reminders_poll_seconds),
            fanout_loop(settings, database, redis, clock=clock, consumer=consumer),
            Loop("webhooks-delivery", deliverer.deliver_once),
            periodic_loop("webhooks-retention", forget_finished_deliveries),
            expired_rows_loop("idempotency-retention", database, "todo.idempotency_keys", clock),
        ]

    return create_worker_app(name=PURGE.group, settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("todo_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
