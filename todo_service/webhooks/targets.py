"""Where a webhook may point: the server-side request forgery (SSRF) defence.

A URL is checked when it is registered (a refusal is a 422 naming the reason) and again
before every delivery, because what a name resolves to changes:

1. **Parsed as the client parses it** (``httpx.URL``): ``https`` only; no user info, no
   fragment; the host a literal IP address or a DNS name of at least two labels whose last
   one is not numeric, so the legacy IPv4 spellings that resolvers accept (``2130706433``,
   ``0x7f.1``, ``0177.0.0.1``, ``127.1``) are refused before any lookup. International names
   are compared and resolved in their IDNA (``xn--``) form; one trailing dot is dropped.
2. **Resolved**, and refused if **any** address is not a public unicast one: private,
   loopback, link-local (with the cloud metadata addresses), shared (CGNAT), unspecified,
   multicast, reserved, documentation, or an IPv6 address embedding such an IPv4 one
   (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo). A name's refusal does not say which
   (nor whether it resolved at all): only a literal address's names its reason.
3. **Pinned**: the delivery connects to the address that was checked (the URL's host
   replaced by it, with ``Host`` and the TLS server name kept as the name), so a second,
   different DNS answer at connect time cannot redirect it.

In development (``TODO_WEBHOOKS_ALLOW_LOOPBACK``), a URL whose every address is loopback
(127.0.0.0/8, ::1) may use ``http`` and any port; every other refusal stays.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import httpx

from shared.network import NAT64
from todo_service.models import WEBHOOK_URL_MAX

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

RESOLVE_TIMEOUT_SECONDS = 5.0
# Addresses at most checked for one name (a resolver answering thousands is refused).
MAX_ADDRESSES = 32

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")

# Beyond what ``is_global`` already excludes, named so that no Python version can let them
# through: shared address space (RFC 6598), the metadata services of the clouds.
_FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fe80::/10",
        # Site-local: deprecated (RFC 3879) yet still routed inside some networks, and
        # "global" to Python's ipaddress.
        "fec0::/10",
        "fc00::/7",
        "fd00:ec2::254/128",
        "192.0.0.0/24",
        "198.18.0.0/15",
    )
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class TargetRefused(ValueError):
    """A webhook URL that may not be called; ``code`` says why (docs/webhooks.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    """A parsed webhook URL: ``host`` is the ASCII name (or address) it names."""

    url: httpx.URL
    host: str
    port: int
    address: IPAddress | None  # the URL's host when it is a literal address


@dataclass(frozen=True)
class CheckedTarget:
    """A target with the address it was checked at: a request to it connects there."""

    target: Target
    address: IPAddress

    def request_url(self) -> httpx.URL:
        return self.target.url.copy_with(host=str(self.address))

    def host_header(self) -> str:
        default = 443 if self.target.url.scheme == "https" else 80
        host = self.target.url.raw_host.decode("ascii")
        if ":" in host:
            host = f"[{host}]"
        return host if self.target.port == default else f"{host}:{self.target.port}"


def parse_target(raw: str, *, allow_loopback: bool) -> Target:
    """``raw`` as the client would call it, or ``TargetRefused``."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F or char == "\\" for char in raw):
        raise TargetRefused("invalid_url", "the URL contains spaces, controls or backslashes")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise TargetRefused("invalid_url", "the URL cannot be parsed") from None
    if url.scheme not in ("https", "http") or not url.is_absolute_url:
        raise TargetRefused("https_required", "the URL must be an https:// URL")
    if url.scheme == "http" and not allow_loopback:
        raise TargetRefused("https_required", "the URL must be an https:// URL")
    if url.userinfo:
        raise TargetRefused("invalid_url", "the URL may not carry a user name or password")
    if url.fragment:
        raise TargetRefused("invalid_url", "the URL may not carry a fragment")
    try:
        host = url.raw_host.decode("ascii").lower()
    except UnicodeDecodeError:
        raise TargetRefused("invalid_url", "the host name is not valid") from None
    host = host.removesuffix(".")
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    address = _literal_address(host)
    if address is None and not _is_dns_name(host):
        raise TargetRefused(
            "invalid_host", "the host must be a public DNS name or a literal IP address"
        )
    url = url.copy_with(host=host)
    # The URL is stored and called as the client encodes it (``é`` is ``%C3%A9``, a name its
    # IDNA form), which can be longer than the text the bound was checked on.
    if len(str(url)) > WEBHOOK_URL_MAX:
        raise TargetRefused(
            "invalid_url", f"the URL is longer than {WEBHOOK_URL_MAX} characters once encoded"
        )
    return Target(url=url, host=host, port=port, address=address)


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_dns_name(host: str) -> bool:
    if not 0 < len(host) <= 253:
        return False
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not _NUMERIC_LABEL.fullmatch(labels[-1])


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 one carries (and a router may deliver to)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook may not connect to ``address``; None for a public unicast address.
    An IPv4 address embedded in an IPv6 one is judged first: it is where packets may go."""
    for candidate in (*embedded_ipv4(address), address):
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_multicast:
            return "multicast"
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_private:
            return "private"
        if candidate.is_reserved:
            return "reserved"
        if any(candidate in network for network in _FORBIDDEN_NETWORKS):
            return "private"
        if not candidate.is_global:
            return "not public"
    return None


def _name_refused() -> TargetRefused:
    """The one refusal of a name that does not resolve, resolves to too many addresses or to
    any address a webhook may not reach. Told apart, they would let any account map the
    names only the todo service's resolver knows (a cluster's services, an internal zone)
    and the kind of address each has (a literal address keeps its reason: it tells the
    client nothing it did not write)."""
    return TargetRefused("unresolvable", "the host name does not resolve to public addresses only")


def _is_plain_loopback(address: IPAddress) -> bool:
    return address.is_loopback and (
        isinstance(address, ipaddress.IPv4Address) or address.ipv4_mapped is None
    )


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the system's resolver (in a thread: never blocks the loop)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return []
    addresses: list[IPAddress] = []
    for _, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check_target(
    target: Target,
    *,
    resolver: Resolver,
    ports: Collection[int],
    allow_loopback: bool,
) -> CheckedTarget:
    """The target with the address to connect to, or ``TargetRefused``."""
    if target.address is not None:
        addresses = [target.address]
    else:
        addresses = (await resolver(target.host, target.port))[: MAX_ADDRESSES + 1]
        if not addresses or len(addresses) > MAX_ADDRESSES:
            raise _name_refused()
    if allow_loopback and all(_is_plain_loopback(address) for address in addresses):
        return CheckedTarget(target, addresses[0])
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None and target.address is None:
            raise _name_refused()
        if reason is not None:
            raise TargetRefused(
                "address_forbidden", f"the host resolves to a forbidden address ({reason})"
            )
    if target.url.scheme != "https":
        raise TargetRefused("https_required", "the URL must be an https:// URL")
    if target.port not in ports:
        allowed = ", ".join(str(port) for port in sorted(ports))
        raise TargetRefused("port_not_allowed", f"the port must be one of: {allowed}")
    return CheckedTarget(target, addresses[0])
