"""The hot path: one raw ASGI callable that checks, forwards and streams every request.

No framework sits between uvicorn and this code for a proxied request: no routing table
walk, no dependency resolution, no middleware stack. Per request it does one pass over the
headers, a route look-up, the token check (cached after the first verification), the rate
limit, the forward over a kept-alive aiohttp connection, and streams the answer back chunk
by chunk as it arrives. The gateway's own routes (health, docs, OpenAPI) are handed to its
FastAPI app with the same request id, security headers and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from random import getrandbits

import aiohttp
from limits import RateLimitItem
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from gateway import routes
from gateway.headers import (
    API_CSP,
    CORS_ALLOW_HEADERS,
    CORS_ALLOW_METHODS,
    CORS_EXPOSE_HEADERS,
    DOCS_CSP,
    NO_STORE,
    REQUEST_DROP,
    REQUEST_DROP_PREFIXES,
    RESPONSE_DROP,
    WEB_RESPONSE_DROP,
    TrustedProxies,
    connection_tokens,
    not_stored_unless_said,
    security_headers,
)
from gateway.metrics import RATE_LIMITED, RequestMetrics
from gateway.ratelimit import RateLimiter
from gateway.routes import Kind, Match, Upstream
from gateway.settings import GatewaySettings
from shared import errors
from shared.middleware import head_as_get
from shared.network import client_network
from shared.request_context import accept_request_id, request_id_var, user_id_var
from shared.tokens import InvalidToken, Principal, TokenVerifier

logger = logging.getLogger("access")
errors_logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]


def _too_large() -> errors.PayloadTooLarge:
    # The connection is not reused: the rest of an oversized body is not worth waiting for.
    return errors.PayloadTooLarge(headers={"Connection": "close"})


# An oversized body is read and discarded up to this many times the limit before the 413,
# so the client is not reset while still sending and can read the answer. Beyond that the
# gateway answers at once and closes.
DRAIN_FACTOR = 8


class _ClientGone(Exception):
    """The client disconnected while sending its body: nothing to answer."""


# Connection options that name no header.
_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close"})
# Retry-After of a stream refused because an upstream's streams are all taken.
STREAMS_BUSY_RETRY_SECONDS = 5
# Probes are polled constantly; their lines would drown the log.
_QUIET = frozenset({"/healthz", "/readyz"})


def new_request_id() -> str:
    """32 random hex digits, like a UUID4's. An id is a label, not a secret: the process's
    PRNG is enough and costs no system call (``uuid4`` reads the kernel's random source)."""
    return f"{getrandbits(128):032x}"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def client_session(
    upstream: Upstream, *, max_connections: int, keepalive: float
) -> aiohttp.ClientSession:
    """One kept-alive connection pool per upstream, shared by every request to it.

    No cookie jar (cookies pass through untouched, never stored), no decompression (bodies
    pass through as the service encoded them), no headers the client did not send.
    """
    connector = aiohttp.TCPConnector(
        limit=max_connections, limit_per_host=0, keepalive_timeout=keepalive
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(
            total=None,
            # Waiting for a pooled connection and opening one; then each read of the answer.
            connect=upstream.connect_timeout + upstream.read_timeout,
            sock_connect=upstream.connect_timeout,
            sock_read=upstream.read_timeout,
        ),
        raise_for_status=False,
    )


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What the Edge works with, made by the gateway's lifespan: a kept-alive session per
    upstream, the token verifier, the rate limiter, and the gateway's own FastAPI app (for
    the routes it answers itself)."""

    sessions: Mapping[str, aiohttp.ClientSession]
    verifier: TokenVerifier
    limiter: RateLimiter
    own_app: ASGIApp


class Edge:
    """The gateway's ASGI entry for every HTTP request."""

    def __init__(self, settings: GatewaySettings, collaborators: Collaborators) -> None:
        self.upstreams = routes.upstreams_from(settings)
        self.sessions = dict(collaborators.sessions)
        self.verifier = collaborators.verifier
        self.limiter = collaborators.limiter
        self.own_app = collaborators.own_app
        self.user_limits = settings.user_limits()
        self.turn_limits = settings.chat_turn_limits()
        self.ip_limits = settings.auth_ip_limits()
        self.proxies = TrustedProxies(settings.trusted_networks())
        # Whose X-Forwarded-For names the client: proxies in front, and the web service
        # behind, calling the API for a browser (only the address is taken from it).
        self.forwarders = TrustedProxies(
            [*settings.trusted_networks(), *settings.forwarder_networks()]
        )
        self.cors_origins = frozenset(origin.encode("latin-1") for origin in settings.cors_origins)
        self.cors_max_age = str(settings.cors_max_age).encode()
        self.max_body_bytes = settings.max_body_bytes
        self.max_streams = settings.upstream_max_streams
        # Event streams being relayed, per upstream.
        self._streams: Counter[str] = Counter()
        self.access_log = settings.access_log
        self.metrics = RequestMetrics()
        hsts = settings.strict_transport_security
        self.api_headers = security_headers(csp=API_CSP, hsts=hsts)
        self.docs_headers = security_headers(csp=DOCS_CSP, hsts=hsts)
        # The web client's pages bring their own policy; these fill in whatever a response
        # left out, and are the whole set on the gateway's own refusal pages.
        self.web_headers = security_headers(csp=API_CSP, hsts=hsts)
        if self.cors_origins:
            self.api_headers.append((b"vary", b"Origin"))
            self.docs_headers.append((b"vary", b"Origin"))
        self._origins = {
            name: (URL(u.url).scheme, URL(u.url).raw_host or "", URL(u.url).port)
            for name, u in self.upstreams.items()
        }
        self._authorities = {name: _authorities(*origin) for name, origin in self._origins.items()}

    # --- entry ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        request = _Request(scope)
        request_id = (
            accept_request_id(request.request_id) if request.request_id else new_request_id()
        )
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        exchange = _Exchange(request_id.encode(), self._cors(request.origin))
        match = routes.NOT_FOUND
        try:
            match = routes.match(method, raw_path)
            if match.web:
                # Same-origin pages: no CORS, and the gateway's refusals as pages.
                exchange.web = True
                exchange.cors = []
            if (
                method == "OPTIONS"
                and request.origin is not None
                and request.preflight_method is not None
            ):
                await self._preflight(request, exchange, send)
            elif match.kind is Kind.OWN:
                await self._own(scope, receive, send, exchange, match)
            elif match.kind is Kind.NOT_FOUND:
                raise errors.NotFound()
            elif match.kind is Kind.INVALID:
                raise errors.BadRequest("The path is ambiguous", code="invalid_path")
            else:
                await self._proxy(scope, receive, send, request, match, exchange)
        except errors.AppError as refusal:
            await self._refuse(send, exchange, refusal)
        except _ClientGone:
            exchange.status = 499
        except Exception:
            errors_logger.exception("gateway error on %s %s", method, _text(raw_path))
            if not exchange.started:
                await self._refuse(send, exchange, errors.InternalError())
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(match.label, exchange.status, elapsed)
            if exchange.refused or (self.access_log and match.label not in _QUIET):
                # The path as the client sent it: a refused one is logged as it arrived.
                logger.info(
                    "%s %s %d %.1fms", method, _text(raw_path), exchange.status, elapsed * 1000
                )
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)

    # --- the proxied request ----------------------------------------------------------

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: _Request,
        match: Match,
        exchange: _Exchange,
    ) -> None:
        if request.duplicate_authorization:
            raise errors.DuplicateAuthorization()
        if request.duplicate_host:
            raise errors.DuplicateHost()
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            if request.content_length <= self.max_body_bytes * DRAIN_FACTOR:
                await _drain(receive, self.max_body_bytes * DRAIN_FACTOR)
            raise _too_large()

        forward = request.forward
        if request.cookie and not match.web:
            # The web client's session cookie is never an API credential, and no API service
            # has any business reading it.
            forward[:] = [(k, v) for k, v in forward if k != "cookie"]
        if not match.public:
            principal = await self._authenticate(request.authorization)
            user_id_var.set(principal.sub)
            if match.path_user is not None and match.path_user != principal.sub:
                raise errors.Forbidden("The user id in the path is not the token's user")
            if self.user_limits:
                await self._limit(self.user_limits, "user", "user", principal.issuer, principal.sub)
            if match.turn_limited and self.turn_limits:
                await self._limit(
                    self.turn_limits, "chat_turn", "chat_turn", principal.issuer, principal.sub
                )
            forward.append(("X-User-Id", principal.sub))

        peer = scope["client"][0] if scope.get("client") else "unknown"
        client_ip = self.forwarders.client_ip(peer, request.forwarded_for)
        if match.ip_limited and self.ip_limits:
            path = match.upstream_path.decode("latin-1")
            await self._limit(self.ip_limits, "ip", "ip", path, client_network(client_ip))

        body = await self._read_body(receive)
        self._forwarding_headers(scope, request, forward, peer, client_ip, exchange)

        assert match.upstream is not None
        scheme, host, port = self._origins[match.upstream]
        url = URL.build(
            scheme=scheme,
            host=host,
            port=port,
            path=match.upstream_path.decode("latin-1"),
            query_string=scope["query_string"].decode("latin-1"),
            encoded=True,
        )
        await self._forward(scope, receive, send, match.upstream, url, body, forward, exchange)

    async def _authenticate(self, authorization: bytes | None) -> Principal:
        if authorization is None or authorization[:7].lower() != b"bearer ":
            raise InvalidToken()
        try:
            return await self.verifier.verify(authorization[7:].strip().decode("ascii"))
        except (InvalidToken, UnicodeDecodeError):
            raise InvalidToken() from None

    async def _limit(self, items: list[RateLimitItem], scope_label: str, *key: str) -> None:
        retry_after = await self.limiter.hit(items, *key)
        if retry_after is not None:
            RATE_LIMITED.labels(scope_label).inc()
            raise errors.TooManyRequests(retry_after=retry_after)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole request body, at most ``max_body_bytes`` (413 before any service sees it)."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body_bytes:
                raise _too_large()
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _drain(receive, self.max_body_bytes * DRAIN_FACTOR - size)
                raise _too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _forwarding_headers(
        self,
        scope: Scope,
        request: _Request,
        forward: list[tuple[str, str]],
        peer: str,
        client_ip: str,
        exchange: _Exchange,
    ) -> None:
        trusted = bool(self.proxies) and self.proxies.trusts(peer)
        # Exactly the one address the gateway determined (the same its limits used), never the
        # chain: a service behind it believes this header (FORWARDED_ALLOW_IPS) and takes an
        # entry of it as the client, which must not be one the client wrote.
        forward.append(("X-Forwarded-For", client_ip))
        proto = request.forwarded_proto if trusted else None
        forward.append(("X-Forwarded-Proto", _text(proto) if proto else scope["scheme"]))
        host = request.forwarded_host if trusted and request.forwarded_host else request.host
        if host is not None:
            forward.append(("X-Forwarded-Host", _text(host)))
        forward.append(("X-Request-ID", exchange.request_id.decode()))

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: str,
        url: URL,
        body: bytes,
        headers: list[tuple[str, str]],
        exchange: _Exchange,
    ) -> None:
        session = self.sessions[upstream]
        try:
            response = await session.request(
                scope["method"],
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            )
        except Exception as exc:
            raise self._upstream_failure(upstream, exc) from None

        try:
            await self._relay(response, receive, send, upstream, exchange)
        finally:
            response.release()

    async def _relay(
        self,
        response: aiohttp.ClientResponse,
        receive: Receive,
        send: Send,
        upstream: str,
        exchange: _Exchange,
    ) -> None:
        headers: Headers = []
        named: set[bytes] | None = None
        has_length = False
        event_stream = False
        drop = WEB_RESPONSE_DROP if exchange.web else RESPONSE_DROP
        for name, value in response.raw_headers:
            lower = name.lower()
            if lower in drop:
                if lower == b"connection":
                    named = connection_tokens(value)
                continue
            if lower == b"content-length":
                has_length = True
            elif lower == b"content-type":
                event_stream = value.startswith(b"text/event-stream")
            elif lower == b"location":
                value = _relative_location(value, self._authorities[upstream])
            headers.append((lower, value))
        if named:
            headers = [(k, v) for k, v in headers if k not in named]
        if exchange.web:
            present = {name for name, _ in headers}
            headers += [pair for pair in self.web_headers if pair[0] not in present]
        else:
            headers += self.api_headers
            not_stored_unless_said(headers)
        headers.append((b"x-request-id", exchange.request_id))
        headers += exchange.cors
        content = response.content

        if has_length or content.at_eof():
            # A sized answer (every JSON one): read its first chunk before answering, so a
            # failure here is still a clean 502, and send it whole when it is all there.
            try:
                chunk = await content.readany()
            except Exception as exc:
                raise self._upstream_failure(upstream, exc) from None
            exchange.status = response.status
            exchange.started = True
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            if content.at_eof():
                await send({"type": "http.response.body", "body": chunk})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self._pump(content, send, upstream, event_stream=False)
            return

        # A stream (server-sent events, chunked): headers now, each chunk as it arrives, and
        # stop reading when the client goes away. An event stream holds its connection for as
        # long as it lasts, so at most ``max_streams`` of an upstream's run at once: the next
        # is refused, and its connection closed, before it starts.
        if event_stream:
            if self._streams[upstream] >= self.max_streams:
                raise errors.TooManyRequests(
                    "Too many event streams are open; try again later",
                    retry_after=STREAMS_BUSY_RETRY_SECONDS,
                    code="too_many_streams",
                )
            self._streams[upstream] += 1
        exchange.status = response.status
        exchange.started = True
        watcher = None
        try:
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            watcher = asyncio.ensure_future(_close_on_disconnect(receive, response))
            await self._pump(content, send, upstream, event_stream=event_stream)
        finally:
            if event_stream:
                self._streams[upstream] -= 1
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _pump(
        self, content: aiohttp.StreamReader, send: Send, upstream: str, *, event_stream: bool
    ) -> None:
        while True:
            try:
                chunk = await content.readany()
            except Exception as exc:
                refusal = self._upstream_failure(upstream, exc)
                if event_stream:
                    # The stream has started: the error becomes an event, then the end.
                    event = errors.error_event(refusal, request_id_var.get())
                    await send({"type": "http.response.body", "body": event})
                # Otherwise the response stays incomplete: uvicorn closes the connection,
                # so the client cannot mistake a cut body for a whole one.
                return
            if not chunk:
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    def _upstream_failure(self, upstream: str, exc: BaseException) -> errors.AppError:
        """Map a forwarding failure: refused or not accepting connections 503, reset or
        garbage 502, no answer in time 504."""
        refusal: errors.AppError
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            # No connection within the connect timeout: the service is not taking requests
            # (overloaded, or its address drops packets), which is unavailability, not slowness.
            kind = "connect_timeout"
            refusal = errors.ServiceUnavailable(f"The {upstream} service is unavailable")
        elif isinstance(exc, TimeoutError):
            kind = "timeout"
            refusal = errors.GatewayTimeout(f"The {upstream} service did not answer in time")
        elif isinstance(exc, aiohttp.ClientConnectorError):
            kind = "refused"
            refusal = errors.ServiceUnavailable(f"The {upstream} service is unavailable")
        elif isinstance(exc, aiohttp.ClientConnectionError):
            kind = "reset"
            refusal = errors.BadGateway(f"The {upstream} service closed the connection")
        elif isinstance(exc, aiohttp.ClientError):
            kind = "invalid"
            refusal = errors.BadGateway(f"The {upstream} service answered badly")
        else:
            raise exc
        self.metrics.upstream_error(upstream, kind)
        errors_logger.warning("upstream %s: %s (%s)", upstream, kind, exc.__class__.__name__)
        return refusal

    # --- answers of the gateway's own ---------------------------------------------------

    def _cors(self, origin: bytes | None) -> Headers:
        if origin is None or origin not in self.cors_origins:
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
        ]

    async def _preflight(self, request: _Request, exchange: _Exchange, send: Send) -> None:
        if not exchange.cors:
            raise errors.Forbidden("This origin is not allowed", code="origin_not_allowed")
        headers = [
            *exchange.cors,
            (b"access-control-allow-methods", CORS_ALLOW_METHODS),
            (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
            (b"access-control-max-age", self.cors_max_age),
            (b"content-length", b"0"),
            *self.api_headers,
            (b"x-request-id", exchange.request_id),
        ]
        exchange.status = 204
        exchange.started = True
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send, exchange: _Exchange, refusal: errors.AppError) -> None:
        payload, answer_headers = errors.error_answer(
            refusal, exchange.request_id.decode(), page=exchange.web
        )
        headers = [
            *answer_headers,
            *(self.web_headers if exchange.web else (*self.api_headers, NO_STORE)),
            (b"x-request-id", exchange.request_id),
            *exchange.cors,
        ]
        status = refusal.status_code
        exchange.status = status
        exchange.started = True
        exchange.refused = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _own(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange, match: Match
    ) -> None:
        docs = match.label == "/api/docs"
        if scope.get("raw_path") != match.upstream_path:
            # The app routes on the normalised path too (own paths have no escapes left).
            path = match.upstream_path
            scope = {**scope, "path": path.decode("latin-1"), "raw_path": path}
        extra = [
            *(self.docs_headers if docs else self.api_headers),
            (b"x-request-id", exchange.request_id),
            *exchange.cors,
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in RESPONSE_DROP
                ]
                not_stored_unless_said(kept)
                message = {**message, "headers": kept + extra}
                exchange.status = message["status"]
                exchange.started = True
            await send(message)

        # HEAD as GET without the body, as every service answers it.
        scope, send_own = head_as_get(scope, send_with_headers)
        await self.own_app(scope, receive, send_own)

    async def close(self) -> None:
        await asyncio.gather(*(session.close() for session in self.sessions.values()))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _authorities(scheme: str, host: str, port: int | None) -> tuple[bytes, ...]:
    """How a service's own absolute URLs name it: the host (IPv6 in brackets) and port the
    gateway connects to, as its ``Host`` header says; the host alone when that port is the
    scheme's default."""
    name = (f"[{host}]" if ":" in host else host).lower().encode("latin-1")
    if port is None:
        return (name,)
    with_port = name + b":" + str(port).encode()
    return (with_port, name) if _DEFAULT_PORTS.get(scheme) == port else (with_port,)


def _relative_location(value: bytes, authorities: tuple[bytes, ...]) -> bytes:
    """A ``Location`` naming the service's own internal address (an absolute URL a framework
    built from the ``Host`` the gateway sent, e.g. a trailing-slash redirect) as the path
    alone, which the client resolves against the gateway's address, as nginx's default
    ``proxy_redirect`` does; any other ``Location`` as it is."""
    scheme, separator, rest = value.partition(b"://")
    if not separator or scheme.lower() not in (b"http", b"https"):
        return value
    for authority in authorities:
        after = rest[len(authority) :]
        if rest[: len(authority)].lower() == authority and after[:1] in (b"", b"/", b"?", b"#"):
            return after if after.startswith(b"/") else b"/" + after
    return value


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a request body, at most ``budget`` bytes."""
    more = True
    while more and budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        budget -= len(message.get("body", b""))
        more = message.get("more_body", False)


async def _close_on_disconnect(receive: Receive, response: aiohttp.ClientResponse) -> None:
    """Stop reading from the service as soon as the client has gone."""
    message = await receive()
    if message["type"] == "http.disconnect":
        response.close()


class _Exchange:
    """What one request's answer needs: its id, CORS headers, and the status sent."""

    __slots__ = ("cors", "refused", "request_id", "started", "status", "web")

    def __init__(self, request_id: bytes, cors: Headers) -> None:
        self.request_id = request_id
        self.cors = cors
        # A web client's path: its answers keep their own security headers, and the
        # gateway's refusals are pages.
        self.web = False
        self.status = 500
        self.started = False
        # Answered by the gateway itself (an error envelope): always logged.
        self.refused = False


class _Request:
    """One pass over the client's headers: what the gateway reads, and what it forwards."""

    __slots__ = (
        "authorization",
        "connection",
        "content_length",
        "cookie",
        "duplicate_authorization",
        "duplicate_host",
        "forward",
        "forwarded_for",
        "forwarded_host",
        "forwarded_proto",
        "host",
        "origin",
        "preflight_method",
        "request_id",
    )

    def __init__(self, scope: Scope) -> None:
        self.authorization: bytes | None = None
        self.duplicate_authorization = False
        self.duplicate_host = False
        self.origin: bytes | None = None
        self.preflight_method: bytes | None = None
        self.request_id: str | None = None
        self.content_length: int | None = None
        self.forwarded_for: bytes | None = None
        self.forwarded_proto: bytes | None = None
        self.forwarded_host: bytes | None = None
        self.host: bytes | None = None
        self.connection: bytes | None = None
        self.cookie = False
        forward: list[tuple[str, str]] = []
        for name, value in scope["headers"]:
            if name in REQUEST_DROP:
                if name == b"x-request-id":
                    self.request_id = value.decode("latin-1")
                elif name == b"host":
                    self.duplicate_host = self.host is not None
                    self.host = value
                elif name == b"content-length":
                    self.content_length = int(value) if value.isdigit() else None
                elif name == b"connection":
                    self.connection = value
                continue
            if name.startswith(REQUEST_DROP_PREFIXES):
                if name == b"x-forwarded-for":
                    # Several lines are one list, in order (RFC 9110, 5.3): a chain split
                    # over lines is read whole, not from its last line alone.
                    if self.forwarded_for is not None:
                        value = self.forwarded_for + b", " + value
                    self.forwarded_for = value
                elif name == b"x-forwarded-proto":
                    self.forwarded_proto = value
                elif name == b"x-forwarded-host":
                    self.forwarded_host = value
                continue
            if name == b"authorization":
                self.duplicate_authorization = self.authorization is not None
                self.authorization = value
            elif name == b"origin":
                self.origin = value
            elif name == b"access-control-request-method":
                self.preflight_method = value
            elif name == b"cookie":
                self.cookie = True
            forward.append((name.decode("latin-1"), _text(value)))
        # What the client's Connection names is for its hop only. Dropped from the client's
        # own headers here, before the gateway adds its own (X-User-Id, X-Forwarded-*,
        # X-Request-ID), which a client could otherwise name to have them removed.
        if self.connection is not None:
            named = connection_tokens(self.connection) - _CONNECTION_OPTIONS
            if named:
                forward = [(k, v) for k, v in forward if k.encode("latin-1") not in named]
        self.forward = forward
