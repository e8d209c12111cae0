"""The public API, called through the gateway like any other client does.

One ``aiohttp`` session per process, kept alive to the gateway. Every call carries the
user's access token (when there is one) and the browser's address in ``X-Forwarded-For``,
which the gateway believes from this service only, so its per-address limits count browsers
rather than this service.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from shared.pagination import MAX_CURSOR_LENGTH
from shared.request_context import current_request_id
from web_service.settings import WebSettings

logger = logging.getLogger(__name__)

Params = Mapping[str, str | int | list[str]] | list[tuple[str, str]]

# The notification stream sends a keepalive at least every 15 s: silence for this long means
# the connection is gone.
EVENT_STREAM_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def expected(self, ok: tuple[int, ...] = (200,)) -> ApiResponse:
        """This answer when its status is one of ``ok``; otherwise its ``ApiError``."""
        if self.status not in ok:
            raise ApiError.from_response(self)
        return self


@dataclass
class ApiError(Exception):
    """A refusal of the API (or the gateway being unreachable), as the pages explain it."""

    status: int
    code: str
    detail: Any = None
    retry_after: int | None = None
    body: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.status} {self.code}")

    @classmethod
    def from_response(cls, response: ApiResponse) -> ApiError:
        code, detail, body = "error", None, None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("code") or code)
            detail = body.get("detail")
        return cls(
            status=response.status,
            code=code,
            detail=detail,
            retry_after=_seconds(response.headers.get("Retry-After")),
            body=body,
        )

    def field_errors(self) -> dict[str, str]:
        """A 422's problems by the body field they are about (``loc`` ``["body", name, ...]``)."""
        found: dict[str, str] = {}
        if self.status == 422 and isinstance(self.detail, list):
            for item in self.detail:
                loc = item.get("loc") if isinstance(item, dict) else None
                if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body":
                    found.setdefault(str(loc[1]), str(item.get("msg", "Invalid value")))
        return found


def page_cursor(query: Mapping[str, str], name: str = "cursor") -> str | None:
    """The cursor a page's address carries in ``name``, passed on to the API, which checks
    it; None when there is none or it is longer than any the API gives."""
    cursor = query.get(name)
    return cursor if cursor and len(cursor) <= MAX_CURSOR_LENGTH else None


def next_cursor(link: str | None) -> str | None:
    """The ``cursor`` of a ``Link: <...>; rel="next"`` header."""
    if not link:
        return None
    match = re.search(r"<([^>]*)>\s*;\s*rel=\"?next\"?", link)
    if match is None:
        return None
    values = parse_qs(urlsplit(match.group(1)).query).get("cursor")
    return values[0] if values else None


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


class GatewayClient:
    def __init__(self, settings: WebSettings) -> None:
        self._base = settings.gateway_url.rstrip("/")
        self._settings = settings
        self._stream_timeout = self._timeout(settings.chat_read_timeout)
        self._session: aiohttp.ClientSession | None = None
        # Long-lived event streams on connections of their own, so that streams held open
        # never keep a page's call waiting for a connection.
        self._events: aiohttp.ClientSession | None = None

    def _timeout(self, sock_read: float) -> aiohttp.ClientTimeout:
        """No limit on the whole (a stream lasts), on connecting, and on silence between reads."""
        return aiohttp.ClientTimeout(
            total=None, connect=self._settings.gateway_connect_timeout, sock_read=sock_read
        )

    def _client(self, connector: aiohttp.TCPConnector, sock_read: float) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout(sock_read),
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._settings.gateway_max_connections,
            # Shorter than the gateway's keep-alive, so a connection it is closing is never reused.
            keepalive_timeout=4.0,
        )
        self._session = self._client(connector, self._settings.gateway_read_timeout)
        self._events = self._client(
            aiohttp.TCPConnector(limit=self._settings.notification_streams_max),
            EVENT_STREAM_READ_TIMEOUT,
        )

    async def close(self) -> None:
        for session in (self._session, self._events):
            if session is not None:
                await session.close()
        self._session = self._events = None

    def _headers(
        self, token: str | None, client_ip: str | None, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "todo-platform-web"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        request_id = current_request_id()
        if request_id:
            headers["X-Request-ID"] = request_id
        if extra:
            headers.update(extra)
        return headers

    @asynccontextmanager
    async def _request(
        self,
        session: aiohttp.ClientSession | None,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``method path`` on ``session``, open for the block. An unreachable or timed-out
        gateway (while connecting or while the block reads) is an ``ApiError`` 503 / 504 with
        nothing sent or changed known."""
        assert session is not None, "GatewayClient.start() was not awaited"
        try:
            async with session.request(
                method, self._base + path, allow_redirects=False, **kwargs
            ) as response:
                yield response
        except TimeoutError:
            raise ApiError(504, "gateway_timeout") from None
        except aiohttp.ClientError as error:
            logger.warning("gateway unreachable: %s %s: %s", method, path, error)
            raise ApiError(503, "gateway_unavailable") from None

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        client_ip: str | None = None,
        json_body: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """One request; any status is returned (``expect`` raises on refusals)."""
        async with self._request(
            self._session,
            method,
            path,
            params=params,
            json=json_body,
            headers=self._headers(token, client_ip, headers),
        ) as response:
            return ApiResponse(response.status, response.headers, await response.read())

    async def expect(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> ApiResponse:
        return (await self.call(method, path, **kwargs)).expected(ok)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        token: str,
        client_ip: str | None,
        json_body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streamed answer (server-sent events), open for the block."""
        async with self._request(
            self._session,
            method,
            path,
            json=json_body,
            headers=self._headers(token, client_ip, headers),
            timeout=self._stream_timeout,
        ) as response:
            yield response

    @asynccontextmanager
    async def event_stream(
        self,
        path: str,
        *,
        token: str,
        client_ip: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``GET path`` answered with server-sent events, open for the block (its own
        connection pool; see ``WEB_NOTIFICATION_STREAMS_MAX``)."""
        extra = {"Accept": "text/event-stream", **(headers or {})}
        async with self._request(
            self._events, "GET", path, headers=self._headers(token, client_ip, extra)
        ) as response:
            yield response
