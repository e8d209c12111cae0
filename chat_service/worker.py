"""``python -m chat_service.worker``: consumes the users stream (``user.deleted`` purges a
user's rows) as the ``chat`` consumer group.

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8013). Several replicas may run:
each entry reaches one consumer of the group, and a replayed one is dropped by its id.
"""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from chat_service import events
from chat_service.settings import ChatSettings, get_settings
from shared.db import Database
from shared.events import Event, RedisStreamSubscription
from shared.worker import Loop, consumer_name, create_worker_app

DEFAULT_PORT = 8013


def create_app(
    settings: ChatSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        subscription = RedisStreamSubscription(
            redis,
            stream=events.USERS_STREAM,
            group=events.GROUP,
            consumer=consumer or consumer_name(),
            batch=settings.events_batch,
            claim_idle_ms=int(settings.events_claim_idle_seconds * 1000),
        )

        async def handle(event: Event) -> None:
            await events.handle(database, event)

        async def step() -> int:
            return await subscription.poll(handle)

        return [Loop("users", step)]

    return create_worker_app(name="chat", settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("chat_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
