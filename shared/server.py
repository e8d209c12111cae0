"""The HTTP/1.1 protocol every process serves with: uvicorn's httptools protocol with limits.

uvicorn bounds neither the request line, nor a header, nor the header section, nor how long a
client may take to send them or the body: one header of any size is accepted (httptools joins
its pieces by copying, so a header streamed in small reads costs quadratic CPU), and a client
that sends a byte now and then holds its connection forever. This protocol bounds each, before
anything reaches the application, and answers in the platform's error envelope:

- a request target longer than ``max_url_bytes``: 414 ``url_too_long``;
- one header field (name and value) longer than ``max_header_bytes``: 431
  ``header_field_too_large``;
- more than ``max_header_count`` header fields: 431 ``too_many_headers``;
- a request line and header section together longer than ``max_header_section_bytes``, counted
  per read as the bytes arrive, so an endless header is refused after about that many bytes:
  431 ``header_section_too_large``;
- a request line and headers not complete ``header_timeout`` seconds after the first byte
  (or after the connection opened, for its first request): 408 ``request_timeout``; a
  connection that sends nothing at all is closed without an answer;
- a body from which nothing arrives for ``body_timeout`` seconds: 408 ``request_timeout`` when
  no response has started, otherwise the connection is closed;
- a body that, ``body_rate_grace`` seconds after it began, has not averaged ``min_body_rate``
  bytes a second since (a byte now and then is never silent for long, yet would hold the
  connection for as long as the body lasts): 408 ``request_body_too_slow``, or the connection
  is closed, as for silence. Time the server is not reading (the application has not taken
  what arrived, or has not asked for a body it must first allow with ``100 Continue``) does
  not count;
- an HTTP/1.1 request without a ``Host`` header, which RFC 9112 (section 3.2) requires a
  server to refuse: 400 ``missing_host``;
- anything httptools cannot parse: 400 ``invalid_http`` (uvicorn answers it in plain text).

Each refusal closes the connection. The answer is sent, the sending side shut, and whatever
the client still sends is read and dropped for up to ``LINGER_SECONDS`` and ``LINGER_BYTES``,
so a client in the middle of a write receives the answer instead of a reset. A refusal that
follows requests still being answered (pipelining) is sent after their responses.

Costs on the normal path: a length check per URL piece and per header, a counter per read
while the head is incomplete, and no timer unless a request's head or body spans reads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared.errors import AppError, error_answer
from shared.metrics import REFUSED
from shared.request_context import accept_request_id
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

# How long, and how much, a refused connection still reads (and drops) of what the client
# sends before it closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what a client may send before the application sees a request; the values
    (and their defaults) are the service's settings (``HttpLimits.of``)."""

    max_url_bytes: int
    max_header_bytes: int
    max_header_section_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float
    min_body_rate: float
    body_rate_grace: float

    @classmethod
    def of(cls, settings: ServiceSettings) -> HttpLimits:
        return cls(
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_header_section_bytes=settings.max_header_section_bytes,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            min_body_rate=settings.min_body_rate_bytes_per_second,
            body_rate_grace=settings.body_rate_grace_seconds,
        )


# What a protocol built without a service's settings (uvicorn given the class) enforces.
DEFAULT_LIMITS = HttpLimits.of(ServiceSettings.model_construct())


class RefusedRequest(AppError):
    """A request the HTTP server answers itself, before any app sees it, and then closes."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        super().__init__(message, code=code)


# The refusals, as (status, code, message).
URL_TOO_LONG = (414, "url_too_long", "The request URL is too long")
HEADER_FIELD_TOO_LARGE = (431, "header_field_too_large", "A request header is too large")
TOO_MANY_HEADERS = (431, "too_many_headers", "The request has too many headers")
HEADER_SECTION_TOO_LARGE = (431, "header_section_too_large", "The request's headers are too large")
REQUEST_TIMEOUT = (408, "request_timeout", "The request was not received in time")
BODY_TOO_SLOW = (408, "request_body_too_slow", "The request body is arriving too slowly")
INVALID_HTTP = (400, "invalid_http", "The request is not valid HTTP/1.1")
MISSING_HOST = (400, "missing_host", "An HTTP/1.1 request must have a Host header")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`HttpLimits`."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        """``limits``: the service's (``http_protocol``); None, the settings' defaults."""
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        # True from the end of one message (or the connection's start) to the end of the next
        # request's headers; the body is read while it is False.
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._body_heard_at = 0.0
        # The body's bytes so far, and from when (and how many) its rate is measured.
        self._body_bytes = 0
        self._rate_since = 0.0
        self._rate_bytes = 0
        self._refusal: RefusedRequest | None = None
        self._dropped_bytes = 0

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # The first request's head is due within the timeout of the connection opening.
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            # Answered (or about to be) and closing: the rest is dropped, up to a bound.
            self._dropped_bytes += len(data)
            if self._dropped_bytes > LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head:
            self._head_bytes += len(data)
        elif self._body_timer is not None:
            self._body_heard_at = self.loop.time()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            # A limit raised its error in a parser callback, which httptools wraps.
            cause = exc.__context__
            self._refuse(
                cause if isinstance(cause, RefusedRequest) else RefusedRequest(*INVALID_HTTP)
            )
            return
        if self._in_head:
            # Bytes of a head that is still incomplete (zero when this read ended a message).
            if self._head_bytes:
                if self._head_bytes > self.limits.max_header_section_bytes:
                    self._refuse(RefusedRequest(*HEADER_SECTION_TOO_LARGE))
                elif self._head_timer is None:
                    self._head_timer = self.loop.call_later(
                        self.limits.header_timeout, self._head_timed_out
                    )
            return
        if self._body_timer is None:
            self._body_heard_at = self.loop.time()
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)
        if self._body_too_slow():
            self._refuse(RefusedRequest(*BODY_TOO_SLOW))

    # --- parser callbacks ---------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_url_bytes:
            raise RefusedRequest(*URL_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.limits.max_header_bytes:
            raise RefusedRequest(*HEADER_FIELD_TOO_LARGE)
        if len(self.headers) >= self.limits.max_header_count:
            raise RefusedRequest(*TOO_MANY_HEADERS)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.parser.get_http_version() == "1.1" and not any(
            name == b"host" for name, _ in self.headers
        ):
            raise RefusedRequest(*MISSING_HOST)
        super().on_headers_complete()
        # Only now: a request uvicorn could not take (a URL it cannot parse) is refused as a
        # head, not as the body of a request that never started.
        self._in_head = False
        self._body_bytes = self._rate_bytes = 0
        self._rate_since = self.loop.time()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._refusal is not None and not self.pipeline:
            # The last response before a refused request has gone: now the refusal.
            self.server_state.total_requests += 1
            self._answer_and_close()
            return
        super().on_response_complete()

    # --- limits -------------------------------------------------------------------------

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.flow.read_paused:
            # Reading waits for pipelined requests to be answered: the delay is not the client's.
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )
        elif self._head_bytes:
            self._refuse(RefusedRequest(*REQUEST_TIMEOUT))
        else:
            self.transport.close()  # nothing sent at all: nothing to answer

    def _body_timed_out(self) -> None:
        self._body_timer = None
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The application has not read the body yet: the client is waiting for us. Its
            # rate is measured afresh from here.
            self._body_heard_at = self._rate_since = now
            self._rate_bytes = self._body_bytes
        if now < self._body_heard_at + self.limits.body_timeout:
            self._body_timer = self.loop.call_at(
                self._body_heard_at + self.limits.body_timeout, self._body_timed_out
            )
            return
        self._refuse(RefusedRequest(*REQUEST_TIMEOUT))

    def _body_too_slow(self) -> bool:
        """Whether the body has fallen below its minimum average rate, after the grace."""
        rate = self.limits.min_body_rate
        if rate <= 0:
            return False
        counted = self.loop.time() - self._rate_since - self.limits.body_rate_grace
        return counted > 0 and self._body_bytes - self._rate_bytes < rate * counted

    def _refuse(self, refusal: RefusedRequest) -> None:
        """Answer ``refusal`` and close: at once, or after the responses still being sent."""
        self._refusal = refusal
        self._cancel_timers()
        logger.warning(
            "request refused: %d %s from %s", refusal.status_code, refusal.code, self._peer()
        )
        REFUSED.labels(refusal.code).inc()
        cycle = self.cycle
        if not self._in_head:
            # The request whose body is being read is the one refused.
            if cycle.response_started or self.pipeline:
                self.transport.close()  # too late for an answer of ours
                return
            # Its application gets a disconnect, and anything it still sends goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
            self._answer_and_close()
        elif cycle is None or cycle.response_complete:
            self._answer_and_close()
        else:
            self.flow.pause_reading()

    def _answer_and_close(self) -> None:
        refusal = self._refusal
        transport = self.transport
        if refusal is None or transport.is_closing():
            return
        request_id = accept_request_id(None)
        body, answer_headers = error_answer(refusal, request_id, page=self._refusal_is_page())
        head = [STATUS_LINE[refusal.status_code]]
        headers = [
            *self.server_state.default_headers,
            *answer_headers,
            (b"x-request-id", request_id.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"connection", b"close"),
        ]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"\r\n", body]
        transport.write(b"".join(head))
        if transport.can_write_eof():
            # Shut our side, keep dropping what arrives a little longer, then close.
            transport.write_eof()
            self.flow.resume_reading()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _refusal_is_page(self) -> bool:
        """Whether the refusal is answered as an HTML page rather than the envelope (the
        gateway's answer on the web client's paths)."""
        return False

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown peer"


def http_protocol(
    limits: HttpLimits, protocol: type[BoundedHttpToolsProtocol] = BoundedHttpToolsProtocol
) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` option for ``protocol`` with ``limits``.

    A partial rather than a subclass made on the fly: uvicorn pickles it into each worker
    process when ``WEB_CONCURRENCY`` is above 1, and only module-level classes pickle.
    """
    return cast(type[asyncio.Protocol], functools.partial(protocol, limits=limits))
