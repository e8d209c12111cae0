"""``python -m todo_service.worker``: consumes the users stream (``user.deleted`` purges a
user's rows) as the ``todo`` consumer group (shared/purge.py).

Serves ``/healthz`` and ``/readyz`` on ``PORT`` (default 8012).
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.db import Database
from shared.purge import purge_worker_app
from todo_service.events import PURGE
from todo_service.settings import TodoSettings, get_settings

DEFAULT_PORT = 8012


def create_app(
    settings: TodoSettings | None = None,
    *,
    db: Database | None = None,
    consumer: str | None = None,
) -> FastAPI:
    return purge_worker_app(PURGE, settings or get_settings(), db=db, consumer=consumer)


if __name__ == "__main__":
    from shared.serve import serve

    serve("todo_service.worker:create_app", default_port=DEFAULT_PORT, settings=get_settings())
