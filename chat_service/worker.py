"""``python -m chat_service.worker``: the chat service's background work.

- consumes the users stream (``user.deleted`` purges a user's rows) as the ``chat`` consumer
  group (shared/purge.py);
- deletes the ids of applied users-stream events older than
  ``CHAT_EVENTS_PROCESSED_RETENTION_SECONDS``, and expired turn keys (bounded batches, every
  few minutes).

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8013).
"""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from chat_service.events import PURGE
from chat_service.settings import ChatSettings, get_settings
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.purge import processed_retention_loop, purge_loop
from shared.worker import Loop, create_worker_app, expired_rows_loop

DEFAULT_PORT = 8013


def create_app(
    settings: ChatSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        return [
            purge_loop(PURGE, settings, database, redis, consumer=consumer),
            processed_retention_loop(PURGE, settings, database),
            expired_rows_loop("turn-keys-retention", database, "chat.turn_keys", clock),
        ]

    return create_worker_app(name=PURGE.group, settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("chat_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
