"""``python -m todo_service.worker``: the todo service's background work.

- consumes the users stream (``user.deleted`` purges a user's rows) as the ``todo`` consumer
  group (shared/purge.py);
- publishes the todo outbox (task events, due reminders) to the tasks stream
  (shared/outbox.py, docs/events.md);
- fires due reminders: notifications and ``reminder.due`` events (todo_service/scheduler.py).

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8012). Several replicas may run:
each users-stream entry reaches one of them, and one publishes the outbox at a time.
"""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from shared.clock import Clock, utcnow
from shared.db import Database
from shared.events import RedisStreamPublisher
from shared.outbox import OutboxDispatcher
from shared.purge import purge_loop
from shared.worker import Loop, create_worker_app
from todo_service.events import PURGE
from todo_service.models import OUTBOX
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings, get_settings

DEFAULT_PORT = 8012


def create_app(
    settings: TodoSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        dispatcher = OutboxDispatcher(
            database,
            OUTBOX,
            RedisStreamPublisher(redis, maxlen=settings.events_stream_maxlen),
            batch=settings.events_batch,
            retention_seconds=settings.events_outbox_retention_seconds,
        )

        async def fire() -> int:
            return await fire_due(database, now=clock(), batch=settings.reminders_batch)

        return [
            purge_loop(PURGE, settings, database, redis, consumer=consumer),
            Loop("outbox", dispatcher.dispatch_once),
            Loop("reminders", fire, idle_seconds=settings.reminders_poll_seconds),
        ]

    return create_worker_app(name=PURGE.group, settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("todo_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
