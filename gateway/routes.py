"""The gateway's route table: which service answers a path, and what a request needs first.

Matching works on the raw path exactly as the client sent it (percent-encoding included),
which is also what is forwarded, so the decision and the upstream's view never differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from gateway.settings import GatewaySettings
from shared.docs import asset_paths


@dataclass(frozen=True, slots=True)
class Upstream:
    """One service behind the gateway."""

    name: str
    url: str
    connect_timeout: float
    read_timeout: float
    openapi_path: str
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
            ("/api/tasks", "/api/mcp"),
        ),
        "chat": Upstream(
            "chat",
            settings.chat_url.rstrip("/"),
            settings.chat_connect_timeout,
            settings.chat_read_timeout,
            settings.chat_openapi_path,
            ("/api/chat", "/api/conversations"),
        ),
    }


class Kind(Enum):
    PROXY = "proxy"  # forwarded to a service
    OWN = "own"  # answered by the gateway itself
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Match:
    kind: Kind
    # Metrics label: the route prefix ("/api/tasks"), never the full path.
    label: str
    upstream: str | None = None
    # Path sent upstream (raw bytes); differs from the client's only on compatibility routes.
    upstream_path: bytes = b""
    public: bool = False
    # Login, register and refresh: rate-limited per client IP.
    ip_limited: bool = False
    # Compatibility routes: the user id in the path, which must be the token's subject.
    path_user: str | None = None


# First path segment after /api/ -> (service, metrics label).
PREFIXES: dict[bytes, tuple[str, str]] = {
    b"auth": ("auth", "/api/auth"),
    b"tasks": ("todo", "/api/tasks"),
    b"mcp": ("todo", "/api/mcp"),
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
    }
)

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
_OWN_MATCHES = {path: Match(Kind.OWN, label) for path, label in OWN.items()}


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


def _resolve(method: str, raw_path: bytes) -> Match:
    own = _OWN_MATCHES.get(raw_path)
    if own is not None:
        return own
    if not raw_path.startswith(b"/api/"):
        return NOT_FOUND
    parts = raw_path.split(b"/", 4)  # ["", "api", first, second?, rest?]
    target = PREFIXES.get(parts[2])
    if target is not None:
        upstream, label = target
        key = (method, raw_path)
        return Match(
            Kind.PROXY,
            label,
            upstream,
            raw_path,
            public=key in PUBLIC,
            ip_limited=key in IP_LIMITED,
        )
    return _compatibility(parts)


def _compatibility(parts: list[bytes]) -> Match:
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
    return Match(
        Kind.PROXY,
        label,
        upstream,
        b"/api/" + second + rest,
        path_user=path_user,
    )
