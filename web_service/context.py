"""What every page handler gets: the service's collaborators and the browser's session."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from shared.clock import Clock
from shared.streams import StreamSlots
from web_service.crypto import TokenBox
from web_service.form_states import FORM_PARAM, FormStates
from web_service.gateway_client import ApiError, ApiResponse, GatewayClient
from web_service.security import (
    PENDING_COOKIES,
    UNSAFE_METHODS,
    AuthPostLimiter,
    CookieNames,
    anon_csrf_token,
    anon_csrf_valid,
    client_ip,
    cookie_kwargs,
    new_anon_value,
    same_origin,
    session_csrf_valid,
)
from web_service.sessions import SessionEnded, SessionStore, WebSession
from web_service.settings import WebSettings

logger = logging.getLogger(__name__)

# Form fields per request: a page form has a dozen.
MAX_FORM_FIELDS = 64
# The state-changing forms of a visitor without a session; every other one needs a session.
ANONYMOUS_FORMS = frozenset({"/signin", "/signup"})
# ``GET /api/notifications`` for the bell: its total is the unread count, its item the newest.
UNREAD_QUERY = [("unread", "true"), ("limit", "1")]


class _Unset(Enum):
    """Not read yet: a value read once a request, None included, has not been."""

    NOT_YET = "not yet"


@dataclass
class WebState:
    settings: WebSettings
    gateway: GatewayClient
    store: SessionStore
    forms: FormStates
    box: TokenBox
    limiter: AuthPostLimiter
    clock: Clock
    cookies: CookieNames
    streams: StreamSlots
    chat_turns: StreamSlots


@dataclass(frozen=True)
class Unread:
    """The header's bell: how many notifications are unread, and the newest one's id (the
    live stream starts after it)."""

    count: int
    newest_id: int | None


class SignInRequired(Exception):
    """No live session: the page redirects to sign-in (a fetch gets a 401)."""


class CsrfRefused(Exception):
    """A state-changing request without our token or from another site."""


@dataclass
class Ctx:
    """One request of a browser: its session (if any), its CSRF token, and the API."""

    request: Request
    web: WebState
    session: WebSession | None
    anon: str | None
    new_anon: bool = False
    _form: FormData | None = field(default=None, repr=False)
    _token_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _unread: asyncio.Future[Unread | None] | None = field(default=None, repr=False)
    _recalled: dict[str, Any] | Literal[_Unset.NOT_YET] | None = field(
        default=_Unset.NOT_YET, repr=False
    )

    @property
    def settings(self) -> WebSettings:
        return self.web.settings

    @property
    def client_ip(self) -> str | None:
        return client_ip(self.request)

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("accept", "")

    @property
    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf_token
        if self.anon is None:
            self.anon, self.new_anon = new_anon_value(), True
        return anon_csrf_token(self.web.box, self.anon)

    def require_session(self) -> WebSession:
        if self.session is None:
            raise SignInRequired
        return self.session

    async def form(self) -> FormData:
        if self._form is None:
            self._form = await self.request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        return self._form

    async def recalled_form(self) -> dict[str, Any] | None:
        """The refused form this page's address names (``responses.form_again``), or None;
        read once a request (the page's handler fills its form from it, ``render`` shows its
        problem and answers with its status)."""
        if self._recalled is _Unset.NOT_YET:
            self._recalled = await self._recall()
        return self._recalled

    async def _recall(self) -> dict[str, Any] | None:
        form_id = self.request.query_params.get(FORM_PARAM)
        if not form_id:
            return None
        page, forms = self.request.url.path, self.web.forms
        if self.session is not None:
            return await forms.recall(self.session.id_hash, page, form_id)
        cookie = self.web.cookies.form(page)
        sealed = self.request.cookies.get(cookie) if cookie else None
        return forms.unseal(sealed, self.anon, page, form_id)

    async def check_csrf(self) -> None:
        """Refuses a state-changing request from another site or without our token."""
        if self.request.method not in UNSAFE_METHODS:
            return
        if not same_origin(self.request, self.settings):
            raise CsrfRefused
        if self.session is None and self.request.url.path not in ANONYMOUS_FORMS:
            # A form of a session that has ended (or never was): no route runs, the person
            # signs in again.
            raise SignInRequired
        token = self.request.headers.get("x-csrf-token")
        if token is None:
            form = await self.form()
            value = form.get("csrf_token")
            token = value if isinstance(value, str) else None
        if self.session is not None:
            valid = session_csrf_valid(self.session.csrf_token, token)
        else:
            valid = anon_csrf_valid(self.web.box, self.anon, token)
        if not valid:
            raise CsrfRefused

    async def token(self) -> str:
        """The session's access token, refreshed when due; the cookie follows the session's
        new end (a refresh moves it, up to the family's absolute lifetime)."""
        session = self.require_session()
        # One at a time within a request (the bell's count is fetched beside the page's own
        # call): the second finds the token the first refreshed.
        async with self._token_lock:
            ends = session.expires_at
            try:
                token = await self.web.store.access_token(session, client_ip=self.client_ip)
            except SessionEnded:
                self.session = None
                raise SignInRequired from None
            if session.expires_at != ends:
                cookie = self.request.cookies.get(self.web.cookies.session, "")
                self._pending_cookie(self.web.cookies.session, cookie, session.expires_at)
            return token

    def prefetch_unread(self) -> None:
        """Starts fetching the bell's count now, beside the page's own API calls."""
        if self._unread is None and self.session is not None:
            self._unread = asyncio.ensure_future(self._fetch_unread())

    async def unread(self) -> Unread | None:
        """The bell's count for this page; None when there is no session or the API cannot
        say just now (the bell is shown without a number, the page is not refused)."""
        if self.session is None:
            return None
        self.prefetch_unread()
        assert self._unread is not None
        return await self._unread

    async def _fetch_unread(self) -> Unread | None:
        try:
            return await self.count_unread(await self.token())
        except (SignInRequired, ApiError):
            return None
        except Exception:
            # The bell is not worth a page: whatever failed here, the page's own calls meet.
            logger.warning("counting unread notifications failed", exc_info=True)
            return None

    async def count_unread(self, token: str) -> Unread | None:
        """The bell's count as the API says it now, asked with ``token`` (a live stream holds
        one for its whole life); an unreachable gateway raises ``ApiError``."""
        answer = await self.web.gateway.call(
            "GET", "/api/notifications", token=token, client_ip=self.client_ip, params=UNREAD_QUERY
        )
        return unread_of(answer)

    def set_session_cookie(self, response: Response, cookie: str, session: WebSession) -> None:
        """The browser holds ``cookie``, the id of ``session`` that replaces the one it had
        (a cookie this request queued for the old id is then not set: ``PENDING_COOKIES``)."""
        response.set_cookie(
            self.web.cookies.session,
            cookie,
            max_age=int((session.expires_at - self.web.clock()).total_seconds()),
            **cookie_kwargs(self.settings),  # type: ignore[arg-type]
        )

    def _pending_cookie(self, name: str, value: str, expires: Any) -> None:
        carrier = Response()
        max_age = int((expires - self.web.clock()).total_seconds())
        carrier.set_cookie(name, value, max_age=max_age, **cookie_kwargs(self.settings))  # type: ignore[arg-type]
        pending = self.request.scope.setdefault("state", {}).setdefault(PENDING_COOKIES, [])
        pending.append(carrier.headers["set-cookie"])

    async def api(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        """A call with the session's token; a refused token ends the session."""
        session = self.require_session()
        token = await self.token()
        response = await self.web.gateway.call(
            method, path, token=token, client_ip=self.client_ip, **kwargs
        )
        if response.status == 401:
            await self.web.store.end(session)
            self.session = None
            raise SignInRequired
        return response

    async def expect(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> ApiResponse:
        return (await self.api(method, path, **kwargs)).expected(ok)

    def finish(self, response: Response) -> Response:
        """Sets the anonymous cookie when this request made one."""
        if self.new_anon and self.anon is not None:
            response.set_cookie(
                self.web.cookies.anon,
                self.anon,
                max_age=24 * 60 * 60,
                **cookie_kwargs(self.settings),  # type: ignore[arg-type]
            )
        return response


def unread_of(answer: ApiResponse) -> Unread | None:
    """The count and newest id of an answer to ``GET /api/notifications?unread=true``."""
    if answer.status != 200:
        logger.debug("unread notifications not counted: %s", answer.status)
        return None
    try:
        total = int(answer.headers.get("X-Total-Count", ""))
        items = answer.json()
        newest = items[0]["id"] if items else None
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if total < 0 or not (newest is None or (type(newest) is int and newest > 0)):
        return None
    return Unread(total, newest)


def _wants_page(request: Request) -> bool:
    """A browser navigating to a page (not a fragment, a fetch or a stream)."""
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and "fragment" not in request.query_params
        and not request.url.path.endswith("/stream")
    )


async def request_ctx(request: Request) -> Ctx:
    """The ``Ctx`` of ``request``, made once: every page handler's dependency."""
    web: WebState = request.app.state.web
    cookie = request.cookies.get(web.cookies.session)
    session = await web.store.load(cookie) if cookie else None
    ctx = Ctx(request=request, web=web, session=session, anon=request.cookies.get(web.cookies.anon))
    request.state.ctx = ctx
    await ctx.check_csrf()
    if _wants_page(request):
        ctx.prefetch_unread()
    return ctx


CtxDep = Annotated[Ctx, Depends(request_ctx)]
