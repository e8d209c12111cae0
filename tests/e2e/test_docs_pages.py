"""Every Swagger UI page of the running platform is self-contained (tests/support/docs_page.py):
the gateway's merged one and each service's own, on the service's port."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.support.docs_page import assert_self_contained_docs

PAGES = {
    "gateway": ("/api/docs", "/api/openapi.json"),
    "auth": ("/api/auth/docs", "/api/auth/openapi.json"),
    "todo": ("/api/tasks/docs", "/api/tasks/openapi.json"),
    "chat": ("/api/chat/docs", "/api/chat/openapi.json"),
}


@pytest.mark.parametrize("service", list(PAGES))
async def test_docs_page_loads_nothing_from_another_origin(stack: Stack, service: str) -> None:
    docs_url, openapi_url = PAGES[service]
    async with httpx.AsyncClient(base_url=stack.url(service), timeout=30) as client:
        await assert_self_contained_docs(client, docs_url, openapi_url)
