"""``python -m auth_service.worker``: publishes the auth outbox to the events stream.

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8011). Several replicas may run:
one publishes at a time (shared/outbox.py), the others stand by.
"""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from auth_service.models import OUTBOX
from auth_service.settings import AuthSettings, get_settings
from shared.db import Database
from shared.worker import Loop, create_worker_app, outbox_loop

DEFAULT_PORT = 8011


def create_app(settings: AuthSettings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        return [outbox_loop(database, OUTBOX, redis, settings)]

    return create_worker_app(name="auth", settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("auth_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
