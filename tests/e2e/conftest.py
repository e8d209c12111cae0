"""End-to-end fixtures: one running stack per test package (see ``tests/e2e/stack.py``).

Tests talk to the gateway only, except where a test is about a service's own port. Data is
committed for real; every service schema is emptied when the package's tests are done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.stack import Stack, running_stack
from tests.e2e.users import User, register_and_login


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stack(migrated_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """Every service of this checkout running, the gateway in front: one stack for this
    package (``tests/e2e/stack.py``)."""
    async with running_stack(migrated_url, engine) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the gateway (the only port a real client uses)."""
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def user(gateway: httpx.AsyncClient) -> User:
    return await register_and_login(gateway)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures tests recorded with ``record_property`` (the fault tests' timings),
    so every run reports them."""
    lines = [
        f"{report.nodeid.rsplit('::', 1)[-1]}: {name} = {value}"
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for name, value in report.user_properties
    ]
    if lines:
        terminalreporter.section("end-to-end figures")
        for line in lines:
            terminalreporter.write_line(line)
