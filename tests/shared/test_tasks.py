"""Shutdown stops background tasks, also one that swallowed its cancellation, and never waits
on one for longer than its bound."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.db import Database
from shared.settings import ServiceSettings
from shared.tasks import stop_tasks
from shared.worker import Loop, create_worker_app
from tests.support.serving import serve


def swallowing_once() -> tuple[Loop, list[asyncio.Task[object]]]:
    """A loop whose round swallows the first cancellation it gets, as ``asyncio.wait_for``
    on Python 3.11 does when what it waited for ends at that moment; the list holds its task
    once it has."""
    swallowed: list[asyncio.Task[object]] = []

    async def step() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if swallowed:
                raise
            task = asyncio.current_task()
            assert task is not None
            swallowed.append(task)
        return 0

    return Loop("swallower", step, idle_seconds=0.01), swallowed


async def test_the_worker_stops_when_a_loop_swallowed_its_cancellation(
    database: Database,
) -> None:
    loop, swallowed = swallowing_once()
    settings = ServiceSettings(events_redis_url="redis://127.0.0.1:9/0")
    worker = create_worker_app(
        name="test", settings=settings, loops=lambda db, redis: [loop], db=database
    )

    async def run_and_stop() -> None:
        async with serve(worker):
            await asyncio.sleep(0.05)

    # Watched from outside, not under a timeout: cancelling the shutdown would cancel the
    # loop it awaits a second time, which is what the shutdown itself has to do.
    running = asyncio.create_task(run_and_stop())
    done, _ = await asyncio.wait([running], timeout=5)
    if not done:
        running.cancel()
        await asyncio.wait([running])
    assert done, "shutdown waited for good on a loop that had swallowed its cancellation"
    running.result()
    [task] = swallowed
    assert task.done()


async def test_a_task_that_will_not_stop_is_logged_and_left_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_tasks([task], seconds=0.3)
    assert not task.done()
    assert "still running after 0.3 s: stubborn" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait([task])


async def test_a_task_that_failed_has_its_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise RuntimeError("the broken janitor")

    task = asyncio.create_task(failing(), name="janitor")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="shared.tasks"):
        await stop_tasks([task])
    assert "background task janitor failed" in caplog.text
    assert "the broken janitor" in caplog.text
