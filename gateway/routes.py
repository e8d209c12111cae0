"""The gateway's route table: which service answers a path, and what a request needs first.

Every path is normalised once (``normalise``): escapes of unreserved characters decoded, the
remaining escapes in upper case. Routing, the public and per-IP limited routes, and the path
sent upstream all use that one path, so ``/api/auth/%6Cogin`` is the login route (and counts
against its limit), and the service sees what the gateway decided on. A path a server could
read two ways (dot segments, empty segments, an encoded ``/`` or ``\\``, a backslash, a broken
escape) is refused instead.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, unquote_to_bytes

from gateway.settings import GatewaySettings
from shared.docs import asset_paths


@dataclass(frozen=True, slots=True)
class Upstream:
    """One service behind the gateway."""

    name: str
    url: str
    connect_timeout: float
    read_timeout: float
    # The service's own OpenAPI document, merged into the gateway's (None: it has none).
    openapi_path: str | None
    prefixes: tuple[str, ...]


def upstreams_from(settings: GatewaySettings) -> dict[str, Upstream]:
    return {
        "auth": Upstream(
            "auth",
            settings.auth_url.rstrip("/"),
            settings.auth_connect_timeout,
            settings.auth_read_timeout,
            settings.auth_openapi_path,
            ("/api/auth",),
        ),
        "todo": Upstream(
            "todo",
            settings.todo_url.rstrip("/"),
            settings.todo_connect_timeout,
            settings.todo_read_timeout,
            settings.todo_openapi_path,
            ("/api/tasks", "/api/mcp", "/api/notifications", "/api/webhooks"),
        ),
        "chat": Upstream(
            "chat",
            settings.chat_url.rstrip("/"),
            settings.chat_connect_timeout,
            settings.chat_read_timeout,
            settings.chat_openapi_path,
            ("/api/chat", "/api/conversations"),
        ),
        # The browser client: every path outside /api/ that is not the gateway's own.
        "web": Upstream(
            "web",
            settings.web_url.rstrip("/"),
            settings.web_connect_timeout,
            settings.web_read_timeout,
            None,
            ("/",),
        ),
    }


class Kind(Enum):
    PROXY = "proxy"  # forwarded to a service
    OWN = "own"  # answered by the gateway itself
    NOT_FOUND = "not_found"
    INVALID = "invalid"  # an ambiguous path (see ``normalise``): 400


@dataclass(frozen=True, slots=True)
class Match:
    kind: Kind
    # Metrics label: the route prefix ("/api/tasks"), never the full path.
    label: str
    upstream: str | None = None
    # The normalised path (raw bytes, escapes kept): sent upstream (the canonical route on a
    # compatibility route), or the own route the gateway's app answers.
    upstream_path: bytes = b""
    public: bool = False
    # Login, register, refresh and logout: rate-limited per client IP.
    ip_limited: bool = False
    # A chat turn (each may call the language model several times): its own per-user limit.
    turn_limited: bool = False
    # Compatibility routes: the user id in the path, which must be the token's subject.
    path_user: str | None = None
    # A page of the web client: its own security headers kept, the gateway's refusals in HTML.
    web: bool = False


# First path segment after /api/ -> (service, metrics label).
PREFIXES: dict[bytes, tuple[str, str]] = {
    b"auth": ("auth", "/api/auth"),
    b"tasks": ("todo", "/api/tasks"),
    b"mcp": ("todo", "/api/mcp"),
    b"notifications": ("todo", "/api/notifications"),
    b"webhooks": ("todo", "/api/webhooks"),
    b"chat": ("chat", "/api/chat"),
    b"conversations": ("chat", "/api/conversations"),
}

PUBLIC: frozenset[tuple[str, bytes]] = frozenset(
    {
        ("POST", b"/api/auth/register"),
        ("POST", b"/api/auth/login"),
        ("POST", b"/api/auth/refresh"),
        ("POST", b"/api/auth/logout"),
        ("GET", b"/api/auth/jwks"),
        ("HEAD", b"/api/auth/jwks"),
    }
)
IP_LIMITED: frozenset[tuple[str, bytes]] = frozenset(
    {
        ("POST", b"/api/auth/register"),
        ("POST", b"/api/auth/login"),
        ("POST", b"/api/auth/refresh"),
        ("POST", b"/api/auth/logout"),
    }
)
# A chat turn, by its canonical path (a compatibility route's turn counts the same).
TURN_LIMITED: frozenset[tuple[str, bytes]] = frozenset({("POST", b"/api/chat")})

# Swagger UI's page on the merged document (its assets are under it, see shared.docs).
DOCS_URL = "/api/docs"
# The gateway's own routes (served by its FastAPI app), by path.
OWN: dict[bytes, str] = {
    b"/healthz": "/healthz",
    b"/readyz": "/readyz",
    b"/api/health": "/api/health",
    DOCS_URL.encode(): DOCS_URL,
    **{path.encode(): DOCS_URL for path in asset_paths(DOCS_URL)},
    b"/api/openapi.json": "/api/openapi.json",
}

NOT_FOUND = Match(Kind.NOT_FOUND, "unmatched")
INVALID = Match(Kind.INVALID, "invalid")
# An ambiguous path outside /api/: refused like any other, in a page rather than JSON.
INVALID_WEB = Match(Kind.INVALID, "invalid", web=True)
WEB_LABEL = "web"
_OWN_MATCHES = {path: Match(Kind.OWN, label, upstream_path=path) for path, label in OWN.items()}

# RFC 3986 unreserved characters: an escape of one of them means the character itself.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Escapes that would change the path's segments once a server decodes them.
_SEPARATORS = frozenset(b"/\\")
_SLASHES = re.compile(rb"/+")


# Resolved routes by (method, raw path): most traffic repeats a few paths. Bounded: emptied
# when full, so a scan of random paths costs memory for a moment, never for good.
_CACHE: dict[tuple[str, bytes], Match] = {}
CACHE_SIZE = 4096


def match(method: str, raw_path: bytes) -> Match:
    """Resolve one request: a cache hit, or a split and a few dictionary look-ups."""
    key = (method, raw_path)
    found = _CACHE.get(key)
    if found is None:
        found = _resolve(method, raw_path)
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = found
    return found


def normalise(raw_path: bytes) -> bytes | None:
    """The one path the gateway routes and forwards, or None when the path is ambiguous.

    Escapes of unreserved characters (RFC 3986: letters, digits, ``-._~``) are decoded, so
    ``%6Cogin``, ``%6cogin`` and ``login`` are one path; other escapes are kept, in upper case.
    Refused: ``.`` and ``..`` segments (also as ``%2e``), empty segments (``//``), an escaped
    ``/`` or ``\\``, a raw ``\\``, a ``%`` not followed by two hex digits, and a target that
    is not a path at all (the asterisk form, ``OPTIONS *``). A single trailing ``/`` is not an
    empty segment: ``/api/tasks/`` stays a path of its own.
    """
    path = raw_path
    if not path.startswith(b"/"):
        return None
    if b"%" in path:
        pieces = path.split(b"%")
        decoded = [pieces[0]]
        for piece in pieces[1:]:
            if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
                return None
            byte = int(piece[:2], 16)
            if byte in _SEPARATORS:
                return None
            decoded.append(bytes((byte,)) if byte in _UNRESERVED else b"%" + piece[:2].upper())
            decoded.append(piece[2:])
        path = b"".join(decoded)
    elif b"/." not in path and b"//" not in path and b"\\" not in path:
        return path  # nothing to decode, no dot or empty segment: the common case
    if b"\\" in path:
        return None
    segments = path.split(b"/")
    for segment in segments[1:-1]:
        if segment in (b"", b".", b".."):
            return None
    if segments[-1] in (b".", b".."):
        return None
    return path


def is_api_path(path: bytes) -> bool:
    """``/api`` and everything under ``/api/``: the JSON API, never the web client."""
    return path == b"/api" or path.startswith(b"/api/")


def is_web_target(target: bytes) -> bool:
    """Whether a request target (path and query, as received, possibly cut short) is the
    web client's, so that a refusal of it is answered as a page. Only for refusals taken
    before a route is known (the HTTP limits); the route decides otherwise."""
    raw = target.split(b"?", 1)[0]
    if not raw.startswith(b"/"):
        return False
    # Read as loosely as any server might: a target that could mean an API path is the API's.
    path = posixpath.normpath(_SLASHES.sub(b"/", unquote_to_bytes(raw).replace(b"\\", b"/")))
    return not is_api_path(path) and path not in _OWN_MATCHES


def _resolve(method: str, raw_path: bytes) -> Match:
    path = normalise(raw_path)
    if path is None:
        return INVALID_WEB if is_web_target(raw_path) else INVALID
    own = _OWN_MATCHES.get(path)
    if own is not None:
        return own
    if not is_api_path(path):
        # No token here: the web client keeps its own sessions (the API never takes them).
        return Match(Kind.PROXY, WEB_LABEL, "web", path, public=True, web=True)
    if not path.startswith(b"/api/"):
        return NOT_FOUND
    parts = path.split(b"/", 4)  # ["", "api", first, second?, rest?]
    target = PREFIXES.get(parts[2])
    if target is not None:
        upstream, label = target
        key = (method, path)
        return Match(
            Kind.PROXY,
            label,
            upstream,
            path,
            public=key in PUBLIC,
            ip_limited=key in IP_LIMITED,
            turn_limited=key in TURN_LIMITED,
        )
    return _compatibility(method, parts)


def _compatibility(method: str, parts: list[bytes]) -> Match:
    """``/api/{user_id}/tasks...`` and ``/api/{user_id}/chat`` (Phase II/III clients)."""
    if len(parts) < 4 or not parts[2]:
        return NOT_FOUND
    second = parts[3]
    rest = b"/" + parts[4] if len(parts) == 5 else b""
    if second == b"tasks":
        label, upstream = "/api/{user_id}/tasks", "todo"
    elif second == b"chat" and rest in (b"", b"/"):
        label, upstream = "/api/{user_id}/chat", "chat"
    else:
        return NOT_FOUND
    path_user = unquote(parts[2].decode("latin-1"), errors="replace")
    canonical = b"/api/" + second + rest
    return Match(
        Kind.PROXY,
        label,
        upstream,
        canonical,
        path_user=path_user,
        turn_limited=(method, canonical) in TURN_LIMITED,
    )
