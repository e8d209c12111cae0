"""The delivery claim: a user at the bound of attempts with a backlog of due deliveries is
skipped, and the others' deliveries behind it are claimed, oldest first, within their own
bound (what each already has running counts)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from shared.sealing import SecretBox
from todo_service.settings import TodoSettings
from todo_service.webhooks.delivery import WebhookDeliverer
from todo_service.webhooks.keys import WebhookKeys

# More than one claim reads before the per-user bound picks among them.
BACKLOG = 500

_SEED = """
INSERT INTO todo.webhooks (id, user_id, url, events, secret_sealed, created_at)
VALUES (1, 'bob', 'https://hooks.example.com/b', ARRAY['task.created'], '\\x00', :now),
       (2, 'alice', 'https://hooks.example.com/a', ARRAY['task.created'], '\\x00', :now),
       (3, 'carol', 'https://hooks.example.com/c', ARRAY['task.created'], '\\x00', :now)
"""
_DELIVERIES = """
INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type, payload,
                                     next_attempt_at, created_at)
SELECT :webhook, :user, :tag || n, 'task.created', '{}',
       CAST(:first AS timestamptz) + n * interval '1 ms', :now
FROM generate_series(1, :count) AS n
"""


async def seed(sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    """Bob's backlog is due first, then Alice's one delivery and Carol's six; Alice has one
    more that is not due yet."""
    now = clock()
    async with sessionmaker() as session:
        connection = await session.connection()
        await connection.execute(text(_SEED), {"now": now})
        for webhook, user, count, hours_ago in (
            (1, "bob", BACKLOG, 3),
            (2, "alice", 1, 2),
            (3, "carol", 6, 1),
        ):
            first = now - timedelta(hours=hours_ago)
            await connection.execute(
                text(_DELIVERIES),
                {"webhook": webhook, "user": user, "tag": user, "count": count, "first": first,
                 "now": now},
            )  # fmt: skip
        await connection.execute(
            text(_DELIVERIES),
            {"webhook": 2, "user": "alice", "tag": "later", "count": 1,
             "first": now + timedelta(hours=1), "now": now},
        )  # fmt: skip
        await connection.execute(text("ANALYZE todo.webhook_deliveries"))
        await session.commit()


async def test_the_others_due_behind_a_backlog_at_the_bound_are_claimed_within_their_bound(
    database: Database,
    sessionmaker: async_sessionmaker[AsyncSession],
    todo_settings: TodoSettings,
    box: SecretBox,
    clock: FrozenClock,
) -> None:
    await seed(sessionmaker, clock)
    claiming = WebhookDeliverer(
        database, WebhookKeys(todo_settings, box), todo_settings, clock=clock
    )
    per_user = todo_settings.webhook_attempts_per_user
    claimed = await claiming._claim(8, Counter({"bob": per_user, "carol": 1}))
    assert Counter(row.user_id for row in claimed) == {"alice": 1, "carol": per_user - 1}
    assert not [row for row in claimed if row.event_id.startswith("later")]
    # Each user's oldest first.
    carols = sorted(row.event_id for row in claimed if row.user_id == "carol")
    assert carols == [f"carol{n}" for n in range(1, per_user)]
