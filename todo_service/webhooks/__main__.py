"""``python -m todo_service.webhooks reseal``: after a new key was put first in
``TODO_WEBHOOK_KEYS``, seal every stored signing secret under it; the old key can then be
removed."""

from __future__ import annotations

import asyncio
import sys

from shared.db import Database
from todo_service.settings import get_settings
from todo_service.webhooks.keys import VARIABLE, load_webhook_box, reseal_secrets


async def _reseal() -> int:
    settings = get_settings()
    box = load_webhook_box(settings)
    if box is None:
        print(f"{VARIABLE} is not set", file=sys.stderr)
        return 1
    db = Database.open(settings.require_database_url())
    try:
        count = await reseal_secrets(db, box)
    finally:
        await db.dispose()
    print(f"resealed {count} webhook secrets")
    return 0


def main(argv: list[str]) -> int:
    if argv != ["reseal"]:
        print("usage: python -m todo_service.webhooks reseal", file=sys.stderr)
        return 2
    return asyncio.run(_reseal())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
