"""The browser-facing defences: headers, cookies, CSRF, origin checks, redirects, limits."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import Database
from shared.network import client_network
from web_service.crypto import InvalidToken, TokenBox
from web_service.settings import WebSettings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An anonymous form's token is good this long (the sign-in page left open over lunch).
ANON_TOKEN_SECONDS = 4 * 60 * 60


# Set-Cookie header values a request's handling queued along the way (a session whose
# refresh moved its end), added to whatever response goes out unless that response sets a
# cookie of the same name itself (a new session's id, or the cookie's deletion at sign-out):
# the response's is the later decision, and a queued one set after it would win.
PENDING_COOKIES = "pending_cookies"


class SecurityHeadersMiddleware:
    """Every response carries the CSP and friends; pages (not static files) are not cached;
    cookies a request left in its state (``PENDING_COOKIES``) are set, unless the response
    sets that cookie itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not static and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
                pending = scope.get("state", {}).get(PENDING_COOKIES, ())
                if pending:
                    own = {value.split("=", 1)[0] for value in headers.getlist("set-cookie")}
                    for cookie in pending:
                        if cookie.split("=", 1)[0] not in own:
                            headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class CookieNames:
    session: str
    anon: str
    # A refused sign-in or sign-up form, sealed (``web_service.form_states``): one cookie per
    # page, so the one refused last on each page is there to go Back to.
    form_signin: str
    form_signup: str

    def form(self, page: str) -> str | None:
        """The cookie of ``page``'s refused form; None for a page with no form before sign-in."""
        return {"/signin": self.form_signin, "/signup": self.form_signup}.get(page)

    @property
    def forms(self) -> tuple[str, str]:
        return self.form_signin, self.form_signup

    @classmethod
    def of(cls, settings: WebSettings) -> CookieNames:
        # __Host-: the browser takes it only with Secure, Path=/ and no Domain, so neither a
        # sibling subdomain nor plain HTTP can plant or overwrite it.
        if settings.cookies_secure:
            return cls("__Host-session", "__Host-anon", "__Host-form-signin", "__Host-form-signup")
        return cls("session", "anon", "form-signin", "form-signup")


def cookie_kwargs(settings: WebSettings) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": settings.cookies_secure,
        "path": "/",
    }


def new_anon_value() -> str:
    return secrets.token_urlsafe(32)


def anon_csrf_token(box: TokenBox, anon: str) -> str:
    """The token of an anonymous form (sign-in, sign-up), bound to the browser's anon cookie."""
    return box.seal("anon:" + anon).decode()


def anon_csrf_valid(box: TokenBox, anon: str | None, token: str | None) -> bool:
    if not anon or not token or len(token) > 512:
        return False
    try:
        value = box.open(token.encode(), ttl=ANON_TOKEN_SECONDS)
    except (InvalidToken, UnicodeEncodeError):
        return False
    return secrets.compare_digest(value, "anon:" + anon)


def session_csrf_valid(expected: str, token: str | None) -> bool:
    return bool(token) and secrets.compare_digest(expected.encode(), (token or "").encode())


def request_origin(request: Request, settings: WebSettings) -> str:
    """This site's origin as the browser sees it (behind the gateway: X-Forwarded-Host)."""
    if settings.public_origin:
        return settings.public_origin.rstrip("/")
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def same_origin(request: Request, settings: WebSettings) -> bool:
    """The request comes from one of our pages: ``Sec-Fetch-Site`` when the browser sends it,
    else ``Origin``; a client that sends neither (no browser does on a POST form or fetch
    today) still needs the CSRF token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == request_origin(request, settings)


def page_before(request: Request, settings: WebSettings) -> str | None:
    """The path (and query) of this site's page the request was sent from, read from
    ``Referer`` (our ``Referrer-Policy`` sends it on same-origin requests only); None when
    there is none, it is another site's, or it is not a path ``safe_next`` takes."""
    referer = request.headers.get("referer") or ""
    origin = request_origin(request, settings)
    if len(referer) > 2000 or not referer.startswith(origin + "/"):
        return None
    path = referer[len(origin) :].split("#", 1)[0]
    return path if safe_next(path, "") else None


# One leading slash, then anything but a second slash or a backslash (which browsers read as
# a slash): "/tasks?x=1" yes; "//evil.example", "/\\evil.example", "https://..." no.
_SAFE_NEXT = re.compile(r"/(?![/\\])[^\x00-\x1f\x7f\\]*")


def safe_next(value: str | None, default: str = "/tasks") -> str:
    if value and len(value) <= 2000 and _SAFE_NEXT.fullmatch(value):
        return value
    return default


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


class AuthPostLimiter:
    """Sign-in and sign-up POSTs per client network in a fixed window, shared by every
    replica through the database (one statement per POST)."""

    def __init__(self, db: Database, settings: WebSettings) -> None:
        self.db = db
        self.limit = settings.auth_post_limit
        self.window = timedelta(seconds=settings.auth_post_window_seconds)

    async def hit(self, action: str, ip: str | None, now: datetime) -> int | None:
        """Counts one POST; None when allowed, else the seconds to wait."""
        bucket = f"{action}:{client_network(ip or 'unknown')}"
        row = await self.db.fetch_row(
            "INSERT INTO web.auth_attempts AS a (bucket, window_start, count) VALUES ($1, $2, 1) "
            "ON CONFLICT (bucket) DO UPDATE SET "
            "count = CASE WHEN a.window_start <= $3 THEN 1 ELSE a.count + 1 END, "
            "window_start = CASE WHEN a.window_start <= $3 THEN $2 ELSE a.window_start END "
            "RETURNING count, window_start",
            bucket,
            now,
            now - self.window,
            write=True,
        )
        assert row is not None
        count, started = int(row[0]), row[1]
        if count <= self.limit:
            return None
        return max(1, int((started + self.window - now).total_seconds()) + 1)

    async def purge(self, now: datetime) -> None:
        await self.db.fetch_row(
            "DELETE FROM web.auth_attempts WHERE window_start <= $1", now - self.window, write=True
        )
