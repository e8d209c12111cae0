"""Driving the event consumers in tests: a ``user.deleted`` on the real stream, and waiting
(bounded) for a worker to have acted on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from shared.events import Event, RedisStreamPublisher, redis_client

USERS_STREAM = "events.users"


def user_deleted(subject: str, event_id: str) -> Event:
    return Event(
        id=event_id,
        type="user.deleted",
        version=1,
        key=subject,
        occurred_at="2026-12-06T00:00:00Z",
        data={"user_id": subject, "deleted_at": "2026-12-06T00:00:00Z"},
    )


async def publish(redis_url: str, event: Event) -> None:
    redis = redis_client(redis_url)
    try:
        await RedisStreamPublisher(redis, maxlen=10_000).publish(
            USERS_STREAM, event.id, event.to_json()
        )
    finally:
        await redis.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 15.0) -> None:
    """Wait until ``check`` holds; fail after ``seconds``, also when a check itself hangs
    (its stack is then in the failure, and the test's servers are still stopped)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0) + 1.0):
                if await check():
                    return
        except TimeoutError as exc:
            raise AssertionError(f"a check did not answer within {seconds} s") from exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)
