"""``python -m chat_service.worker``: consumes the users stream (``user.deleted`` purges a
user's rows) as the ``chat`` consumer group (shared/purge.py).

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8013).
"""

from __future__ import annotations

from fastapi import FastAPI

from chat_service.events import PURGE
from chat_service.settings import ChatSettings, get_settings
from shared.db import Database
from shared.purge import purge_worker_app

DEFAULT_PORT = 8013


def create_app(
    settings: ChatSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
) -> FastAPI:
    return purge_worker_app(PURGE, settings or get_settings(), db=db, consumer=consumer)


if __name__ == "__main__":
    from shared.serve import serve

    serve("chat_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
