"""Stopping a process's background tasks (worker loops, janitors, warm-ups) at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Any

logger = logging.getLogger(__name__)

# How long shutdown waits for its background tasks, and how often it cancels one again.
STOP_SECONDS = 10.0
CANCEL_AGAIN_SECONDS = 0.5


async def stop_tasks(
    tasks: Collection[asyncio.Task[Any]], *, seconds: float = STOP_SECONDS
) -> None:
    """Cancel ``tasks`` and wait until they have ended.

    A cancellation can be swallowed: on Python 3.11 ``asyncio.wait_for`` (redis-py sends
    every command through it when a socket timeout is set) returns its result instead of
    raising when what it waited for ends at the moment the cancellation arrives, and a loop
    then runs on. So a task still running is cancelled again every ``CANCEL_AGAIN_SECONDS``;
    one still running after ``seconds`` is logged and left to the process's exit, never
    holding shutdown. A task that ended with an error has it logged."""
    ended = {task for task in tasks if task.done()}
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + seconds
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            logger.error("background tasks still running after %.1f s: %s", seconds, names)
            break
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=min(CANCEL_AGAIN_SECONDS, left))
        ended |= done
    for task in ended:
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=task.exception())
