"""The request metrics every service keeps (``shared.middleware``): their labels are bounded
whatever a client sends, so requests cannot grow a process's memory or its ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared.app import create_service_app
from shared.settings import ServiceSettings

SERVICE = "metrics-test"


@asynccontextmanager
async def nothing(app: FastAPI) -> AsyncIterator[None]:
    yield


def methods_counted() -> set[str]:
    return {
        sample.labels["method"]
        for metric in REGISTRY.collect()
        if metric.name == "http_requests"
        for sample in metric.samples
        if sample.labels.get("service") == SERVICE
    }


async def test_invented_methods_do_not_each_make_new_metric_series() -> None:
    app = create_service_app(SERVICE, "metrics test", ServiceSettings(), nothing, readiness={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        assert (await client.get("/healthz")).status_code == 200
        # Any token is a method to HTTP/1.1 and reaches the app (a 405); each used to be a
        # label value of its own, a counter and a 13-bucket histogram kept for good.
        for number in range(200):
            answer = await client.request(f"INVENTED{number}", "/healthz")
            assert answer.status_code == 405
        assert (await client.request("PROPFIND", "/healthz")).status_code == 405
        assert (await client.delete("/healthz")).status_code == 405
    assert methods_counted() == {"GET", "DELETE", "other"}
