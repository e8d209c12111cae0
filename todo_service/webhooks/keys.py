"""The signing secrets at rest: sealed with ``TODO_WEBHOOK_KEYS`` (shared/sealing.py).

Without keys, development generates one under ``.data/keys/``; production has no webhooks
(the API answers 503 ``webhooks_unavailable`` and the worker delivers nothing) until
the keys are configured.
"""

from __future__ import annotations

import asyncio
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


class WebhookKeys:
    """The box the API seals with and the worker opens with. With keys configured (or in
    production, where none means no webhooks) it is settled at start-up; a development
    process without keys loads or generates its key on first use only, so a process that
    never touches a webhook writes no key file."""

    def __init__(self, settings: TodoSettings, box: SecretBox | None = None) -> None:
        self._settings = settings
        self._box = box
        self._settled = box is not None
        if not self._settled and (settings.webhook_keys is not None or not settings.is_development):
            self._box = load_webhook_box(settings)
            self._settled = True

    async def box(self) -> SecretBox | None:
        if not self._settled:
            self._box = await asyncio.to_thread(load_webhook_box, self._settings)
            self._settled = True
        return self._box


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
