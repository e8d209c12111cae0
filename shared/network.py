"""Client addresses as the platform counts them."""

from __future__ import annotations

import ipaddress


def client_network(host: str) -> str:
    """The unit a client is limited by: its IPv4 address, or its IPv6 /64 (one subscriber
    usually holds a whole /64, so single IPv6 addresses cost an attacker nothing). An IPv4
    address mapped into IPv6 counts as itself; anything that is not an address as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
