"""Serve an ASGI app over real HTTP on 127.0.0.1, inside the test's event loop.

For clients that must speak real HTTP (the MCP SDK's streamable HTTP client, another service
calling this one). The app's lifespan runs as under ``python -m``; everything stops on exit.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def live_server(app: Any, *, lifespan: str = "on", http: Any = "auto") -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on a free port; yields its base URL (``http://127.0.0.1:N``).

    ``http`` is uvicorn's protocol option (``shared.server.http_protocol(...)`` as ``python -m``
    serves a service)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        http=http,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise its error here
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
