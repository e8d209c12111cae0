"""An httpx2 transport over aiohttp: the wire under the MCP client's calls to the todo service.

The MCP SDK speaks HTTP through httpx2, whose connection pool (httpcore2 and h11) cost more of
the chat process's CPU per tool call than the rest of the call put together (bench/RESULTS.md,
"Chat"). This transport keeps the SDK's client and everything above the wire, and hands the
request to aiohttp's pool, as the gateway's forwarding does.

What the SDK relies on is kept: the body streams (so a server-sent event stream still arrives
event by event), httpx2 decodes any content encoding itself (aiohttp does not), redirects are
not followed here (the SDK decides), and failures are httpx2's exceptions: a refused
connection is a ``ConnectError``, an unanswered request a ``ReadTimeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx2

# Framing headers: aiohttp writes its own for the body it sends.
_FRAMING = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One aiohttp session (a keep-alive pool), opened on first use, for the app's lifetime."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _FRAMING
        ]
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        try:
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:
            raise _httpx_error(exc, request) from exc
        return httpx2.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx2.AsyncByteStream):
    """The response body as it arrives; closing it hands the connection back to the pool."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


def _httpx_error(exc: Exception, request: httpx2.Request) -> Exception:
    """The httpx2 exception for an aiohttp failure (anything else passes through as is)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx2.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx2.NetworkError(message, request=request)
    return exc
