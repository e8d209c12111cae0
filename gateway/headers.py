"""Header sets and the small helpers the hot path needs: what is dropped, what is added."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.settings import IPNetwork
from shared import docs
from shared.network import client_address, parse_address

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request headers never forwarded as the client sent them: hop-by-hop ones, the Host (the
# service sees its own authority; the original is in X-Forwarded-Host), the framing (set
# again for the buffered body), and every header the gateway sets itself, so a client
# cannot supply them.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"forwarded",
    b"x-real-ip",
    b"x-user-id",
    b"x-request-id",
}
# Families of internal headers: X-Forwarded-* (set by the gateway) and X-Internal-*.
REQUEST_DROP_PREFIXES = (b"x-forwarded-", b"x-internal-")

SECURITY_HEADER_NAMES = frozenset(
    {
        b"x-content-type-options",
        b"x-frame-options",
        b"referrer-policy",
        b"content-security-policy",
        b"strict-transport-security",
    }
)
# Response headers replaced by the gateway's own: one Date and no Server (uvicorn's), one
# request id, one set of security headers, and CORS decided at the edge only.
RESPONSE_DROP = (
    HOP_BY_HOP
    | SECURITY_HEADER_NAMES
    | {
        b"date",
        b"server",
        b"x-request-id",
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
        b"access-control-allow-methods",
        b"access-control-allow-headers",
        b"access-control-max-age",
    }
)

# The web client's answers keep the security headers it chose for its pages (the edge keeps
# Strict-Transport-Security, which depends on how the site is served).
WEB_RESPONSE_DROP = RESPONSE_DROP - (SECURITY_HEADER_NAMES - {b"strict-transport-security"})

# An API answer whose service says nothing about caching: its user's tasks, profile,
# conversations or tokens are kept by no cache, a browser's disk cache included, where
# they would outlive the session that fetched them (RFC 6749 5.1 asks it of token answers).
# A service that means otherwise says so (the JWKS is public for 5 minutes).
NO_STORE = (b"cache-control", b"no-store")


def not_stored_unless_said(headers: list[tuple[bytes, bytes]]) -> None:
    """Append ``NO_STORE`` to an API answer's ``headers`` when none says how to cache it."""
    if all(name.lower() != b"cache-control" for name, _ in headers):
        headers.append(NO_STORE)


# A JSON API is never rendered as a page: nothing may load, nothing may frame it.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI's page: everything from this origin, no inline script (see shared.docs).
DOCS_CSP = docs.CSP.encode("latin-1")


def security_headers(*, csp: bytes, hsts: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", csp),
    ]
    if hsts:
        headers.append((b"strict-transport-security", hsts.encode("latin-1")))
    return headers


def connection_tokens(value: bytes) -> set[bytes]:
    """Header names listed in a Connection header (they are hop-by-hop too)."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


CORS_ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
# Every request header the services read that is not CORS-safelisted, or a browser on an
# allowed origin could not send it: a retry's Idempotency-Key, the conditional requests'
# If-Match / If-None-Match, an event stream's Last-Event-ID, MCP's session headers.
CORS_ALLOW_HEADERS = (
    b"authorization, content-type, accept, if-match, if-none-match, idempotency-key, "
    b"x-request-id, last-event-id, mcp-session-id, mcp-protocol-version"
)
CORS_EXPOSE_HEADERS = (
    b"x-request-id, x-total-count, link, location, retry-after, etag, www-authenticate, "
    b"mcp-session-id"
)


class TrustedProxies:
    """Which peers may tell the gateway who the client is (X-Forwarded-*)."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self._networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        known = self._cache.get(address)
        if known is not None:
            return known
        ip = parse_address(address)
        trusted = ip is not None and any(ip in network for network in self._networks)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[address] = trusted
        return trusted

    def client_ip(self, peer: str, forwarded_for: bytes | None) -> str:
        """The client's address: the peer, unless the peer is a trusted proxy.

        Behind trusted proxies the chain is read right to left (each proxy appends the
        address it saw) and the first address that is not a trusted proxy is the client;
        whatever a client wrote further left is ignored. Each entry counts as its address in
        one spelling (``shared.network.parse_address``: a port, brackets or an IPv6 zone
        dropped), so a proxy that writes the client's port does not make every connection a
        new client.
        """
        if forwarded_for is None or not self._networks or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if hop and not self.trusts(hop):
                return client_address(hop)
        return peer
