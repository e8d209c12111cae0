"""The request metrics every service keeps (``shared.middleware``): a method outside HTTP's
usual nine is counted as ``other``, so anonymous requests cannot multiply a process's series
(and its ``/metrics``) by the 25 further methods the HTTP parser accepts (WebDAV's and more)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httptools
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


# Methods the servers' parser (llhttp, through httptools) accepts beyond the usual nine; each
# reaches the app (a 405) and used to be label values of its own on every route and status,
# a counter and a 13-bucket histogram each, kept for the process's life.
UNUSUAL_METHODS = [
    "COPY",
    "LOCK",
    "MKCOL",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
    "SEARCH",
    "UNLOCK",
    "BIND",
    "REBIND",
    "UNBIND",
    "ACL",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PURGE",
    "MKCALENDAR",
    "LINK",
    "UNLINK",
    "SOURCE",
    "QUERY",
]


def test_the_servers_parser_accepts_these_methods() -> None:
    class Callbacks:
        pass

    for method in UNUSUAL_METHODS:
        parser = httptools.HttpRequestParser(Callbacks())
        parser.feed_data(method.encode() + b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parser.get_method() == method.encode()


async def test_unusual_methods_are_counted_as_one_other_method() -> None:
    app = create_service_app(SERVICE, "metrics test", ServiceSettings(), nothing, readiness={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        assert (await client.get("/healthz")).status_code == 200
        for method in UNUSUAL_METHODS:
            assert (await client.request(method, "/healthz")).status_code == 405
        assert (await client.delete("/healthz")).status_code == 405
    assert methods_counted() == {"GET", "DELETE", "other"}
