"""Run a service's app factory under uvicorn (``python -m <service>``)."""

from __future__ import annotations

import os

import uvicorn

from shared.server import HttpLimits, http_protocol
from shared.settings import ServiceSettings


def serve(factory: str, *, default_port: int, settings: ServiceSettings) -> None:
    uvicorn.run(
        factory,
        factory=True,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", default_port)),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        # The platform's httptools protocol, bounded by the service's settings.
        http=http_protocol(HttpLimits.of(settings)),
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_config=None,
        access_log=False,
        server_header=False,
    )
