"""Serving an app to a test: in process, or over real HTTP on 127.0.0.1.

``serve(app)`` is the usual way: an ``httpx.AsyncClient`` over ``httpx.ASGITransport``, with
the app's lifespan entered for the client's lifetime. ``live_server(app)`` runs the app under
uvicorn in the test's own event loop, for what must cross a real socket: another service or
the MCP SDK's client calling this one, the gateway's wire handling, upstreams that stall or
go away. Everything stops when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn


@asynccontextmanager
async def from_address(app: Any, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` (its lifespan already entered) connecting from ``host``."""
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` (base URL ``http://testserver``), its lifespan entered."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def live_server(
    app: Any,
    *,
    lifespan: str = "on",
    http: Any = "auto",
    port: int = 0,
    proxy_headers: bool = True,
) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1; yields its base URL (``http://127.0.0.1:N``).

    The port is the kernel's choice unless ``port`` names one (to bring a server back on the
    same address). ``http`` is uvicorn's protocol option (``shared.server.http_protocol(...)``
    as ``python -m`` serves a process). ``proxy_headers`` is as ``shared.serve`` runs a service
    (uvicorn trusts X-Forwarded-* from 127.0.0.1); the gateway is served with it off, as
    ``python -m gateway`` is, because it reads those headers itself.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        http=http,
        proxy_headers=proxy_headers,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    # The loop belongs to pytest: no signal handlers of uvicorn's own.
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise its error here
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        server.exit_asked.set()
        await asyncio.wait_for(task, 15)


class _Server(uvicorn.Server):
    """uvicorn's server, which stops as soon as it is asked to rather than at its next tick
    (up to a tenth of a second later): many tests start and stop one each."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_asked = asyncio.Event()

    async def main_loop(self) -> None:
        # uvicorn's own loop (a tick every 0.1 s), but woken at once when asked to stop.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_asked.wait(), 0.1)
            should_exit = await self.on_tick(counter)


@contextmanager
def _no_signals() -> Iterator[None]:
    yield
