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
    return purge_worker_app(
        PURGE,
        settings or get_settings(),
        db=db,
        consumer=consumer,
        expiring={"turn-keys-retention": "chat.turn_keys"},
    )


if __name__ == "__main__":
    from shared.serve import serve

    serve("chat_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
