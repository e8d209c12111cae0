"""Client addresses as the platform counts them."""

from __future__ import annotations

import ipaddress

from shared.text import ascii_number

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """The address in ``text`` as proxies and servers write one: bare, with a port
    (``203.0.113.7:50001``), in brackets with or without a port (``[2001:db8::1]:443``), with an
    IPv6 zone (``fe80::1%eth0``). An IPv4 address mapped into IPv6 is that IPv4 address. None
    when ``text`` is none of these.

    A proxy that writes the client's port gives every connection its own spelling: read as it
    is, each would be a new client to every per-address limit.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else ""
        port_ok = rest[:1] == ":" and ascii_number(rest[1:], digits=5) is not None
        if end < 0 or (rest and not port_ok):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # an IPv4 address and its port (IPv6 has two colons or more)
        text, _, port = text.partition(":")
        if ascii_number(port, digits=5) is None:
            return None
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(text: str) -> str:
    """``text``'s address in its one spelling (see ``parse_address``), or ``text`` as it is
    when it holds none."""
    address = parse_address(text)
    return text if address is None else str(address)


# The well-known NAT64 prefix (RFC 6052): an IPv4 address translated into IPv6, in the low
# 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def client_network(host: str) -> str:
    """The unit a client is limited by: its IPv4 address, or its IPv6 /64 (one subscriber
    usually holds a whole /64, so single IPv6 addresses cost an attacker nothing). An IPv6
    address that carries its IPv4 client's address counts as that IPv4 address: NAT64's
    (all its clients would otherwise share one /64), 6to4's (one IPv4 address holds 65,536
    /64s under 2002::/16) and Teredo's. Any spelling of an address counts as that address
    (``parse_address``); anything that is not an address as it is."""
    address = parse_address(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64:
            return str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return str(address.sixtofour)
        if address.teredo is not None:
            return str(address.teredo[1])
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
