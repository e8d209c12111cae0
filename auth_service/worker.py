"""``python -m auth_service.worker``: publishes the auth outbox to the events stream, and
deletes login sessions that ended longer ago than ``AUTH_ENDED_SESSIONS_RETENTION_DAYS``.

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8011). Several replicas may run:
one publishes at a time (shared/outbox.py), the others stand by; their retention rounds skip
each other's rows.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import Redis

from auth_service.models import OUTBOX
from auth_service.service import forget_ended_sessions
from auth_service.settings import AuthSettings, get_settings
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.worker import Loop, create_worker_app, outbox_loop, periodic_loop

DEFAULT_PORT = 8011
# Ended sessions deleted per statement (each with its refresh tokens).
RETENTION_BATCH = 100


def create_app(
    settings: AuthSettings | None = None, *, db: Database | None = None, clock: Clock = utcnow
) -> FastAPI:
    settings = settings or get_settings()

    def loops(database: Database, redis: Redis) -> list[Loop]:
        async def forget_sessions() -> int:
            keep = timedelta(days=settings.ended_sessions_retention_days)
            return await forget_ended_sessions(
                database, before=clock() - keep, batch=RETENTION_BATCH
            )

        return [
            outbox_loop(database, OUTBOX, redis, settings),
            periodic_loop("sessions-retention", forget_sessions),
        ]

    return create_worker_app(name="auth", settings=settings, loops=loops, db=db)


if __name__ == "__main__":
    from shared.serve import serve

    serve("auth_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
