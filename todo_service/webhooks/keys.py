"""The signing secrets at rest: sealed with ``TODO_WEBHOOK_KEYS`` (shared/sealing.py).

Without keys, development generates one under ``.data/keys/``; production has no webhooks
(the API answers 503 ``webhooks_unavailable`` and the worker delivers nothing) until
the keys are configured.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from shared.db import Database
from shared.sealing import SecretBox, load_secret_box
from todo_service.models import WEBHOOKS
from todo_service.settings import TodoSettings

logger = logging.getLogger(__name__)

VARIABLE = "TODO_WEBHOOK_KEYS"


def load_webhook_box(settings: TodoSettings) -> SecretBox | None:
    if settings.webhook_keys is None and not settings.is_development:
        logger.warning("%s is not set: webhooks are unavailable", VARIABLE)
        return None
    try:
        return load_secret_box(
            settings.webhook_keys,
            variable=VARIABLE,
            is_development=settings.is_development,
            dev_key_file=settings.dev_webhook_key_file,
        )
    except FileExistsError:
        # Another process of this machine created the development key just now.
        return load_secret_box(
            None,
            variable=VARIABLE,
            is_development=True,
            dev_key_file=settings.dev_webhook_key_file,
        )


async def reseal_secrets(db: Database, box: SecretBox, *, batch: int = 500) -> int:
    """Seal every stored secret under the newest key (after a new key was put first), in
    batches of one transaction each; the number of webhooks resealed."""
    done = 0
    after = 0
    while True:
        async with db.unit_of_work() as session:
            connection = await session.connection()
            rows = (
                await connection.execute(
                    select(WEBHOOKS.c.id, WEBHOOKS.c.secret_sealed)
                    .where(WEBHOOKS.c.id > after)
                    .order_by(WEBHOOKS.c.id)
                    .limit(batch)
                    .with_for_update()
                )
            ).all()
            for row in rows:
                await connection.execute(
                    WEBHOOKS.update()
                    .where(WEBHOOKS.c.id == row.id)
                    .values(secret_sealed=box.reseal(bytes(row.secret_sealed)))
                )
        if not rows:
            return done
        done += len(rows)
        after = rows[-1].id
