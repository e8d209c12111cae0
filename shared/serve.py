"""Run a service's app factory under uvicorn (``python -m <service>``)."""

from __future__ import annotations

import os

import uvicorn


def serve(factory: str, *, default_port: int) -> None:
    uvicorn.run(
        factory,
        factory=True,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", default_port)),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_config=None,
        access_log=False,
        server_header=False,
    )
