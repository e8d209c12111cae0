"""The web client's session keys rotated as docs/deploy.md says, across replicas.

A rolling restart runs each step of the rotation beside the step before it: for a while some
replicas hold the old key list and some the new one, and a browser's requests land on either.
Whatever one replica seals (the session's tokens, the anonymous CSRF token of the sign-in
form) the other must open, or the browser is signed out (a session whose tokens do not open
is ended) or its form refused.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.serving import serve
from tests.web.conftest import PASSWORD, Platform, credentials, register
from web_service.app import create_app
from web_service.crypto import TokenBox
from web_service.settings import WebSettings

DEPLOY = Path(__file__).parents[2] / "docs" / "deploy.md"
# A step writes the secret's keys as names, e.g. "Secret = `NEW, CURRENT`", newest first.
STEP = re.compile(r"Secret = `([A-Z]+(?:, [A-Z]+)*)`")


def documented_rotation() -> list[list[str]]:
    """The key lists the replicas hold before the rotation and after each of its steps."""
    text = DEPLOY.read_text()
    section = text.split("### Web session-key rotation", 1)[1].split("\n## ", 1)[0]
    steps = [match.group(1).split(", ") for match in STEP.finditer(section)]
    assert steps, "no step of the rotation found in docs/deploy.md"
    return [["CURRENT"], *steps]


ROTATION = documented_rotation()


class Balancer:
    """A load balancer in front of the replicas: each request goes to ``to``."""

    def __init__(self, apps: list[Any]) -> None:
        self.apps = apps
        self.to = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.apps[self.to](scope, receive, send)


@pytest.fixture
async def replicas(
    clean: Platform, migrated_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Balancer, httpx.AsyncClient]]:
    keys = {"CURRENT": Fernet.generate_key(), "NEW": Fernet.generate_key()}
    before, after = request.param
    apps = [
        create_app(
            WebSettings(
                _env_file=None,
                environment="test",
                database_url=migrated_url,
                gateway_url=clean.gateway_url,
            ),
            db=clean.db,
            box=TokenBox([keys[name] for name in names]),
        )
        for names in (before, after)
    ]
    balancer = Balancer(apps)
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(serve(app))
        transport = httpx.ASGITransport(app=balancer)
        browser = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://testserver")
        )
        browser.headers["Sec-Fetch-Site"] = "same-origin"
        yield balancer, browser


@pytest.mark.parametrize(
    "replicas",
    list(itertools.pairwise(ROTATION)),
    ids=[f"{'+'.join(a)}-beside-{'+'.join(b)}" for a, b in itertools.pairwise(ROTATION)],
    indirect=True,
)
@pytest.mark.parametrize("first", [0, 1], ids=["from-old", "from-new"])
async def test_every_step_of_the_key_rotation_keeps_browsers_signed_in_across_replicas(
    clean: Platform, replicas: tuple[Balancer, httpx.AsyncClient], first: int
) -> None:
    balancer, browser = replicas
    other = 1 - first
    await register(clean, "ann@example.com")
    balancer.to = first
    page = await browser.get("/signin")
    balancer.to = other  # the form, sealed by one replica, posted to the other
    signed_in = await browser.post("/signin", data=credentials(page, PASSWORD))
    assert signed_in.status_code == 303, signed_in.text
    for replica in (first, other, first):  # tokens sealed by the other, then its own
        balancer.to = replica
        tasks = await browser.get("/tasks")
        assert tasks.status_code == 200, (replica, tasks.headers.get("location"))
