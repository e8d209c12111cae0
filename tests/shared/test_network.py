"""The one spelling of a client's address (``shared.network``): what every per-address limit
counts (the gateway's per-IP limit, the auth service's throttling, the web client's)."""

from __future__ import annotations

import pytest

from shared.network import client_address, client_network, parse_address


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:50001", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:443", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%eth0]:8080", "fe80::1"),
    ],
)
def test_every_spelling_of_an_address_is_that_address(written: str, address: str) -> None:
    assert str(parse_address(written)) == address
    assert client_address(written) == address


@pytest.mark.parametrize(
    "written",
    [
        "unknown",
        "",
        "203.0.113.7:",
        "203.0.113.7:http",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
        "example.com",
        "203.0.113.256",
        "_hidden",
    ],
)
def test_what_is_no_address_stays_as_written(written: str) -> None:
    assert parse_address(written) is None
    assert client_address(written) == written
    assert client_network(written) == written


@pytest.mark.parametrize(
    ("written", "counted"),
    [
        ("64:ff9b::c000:204", "192.0.2.4"),  # NAT64 of 192.0.2.4
        ("64:ff9b::c000:205", "192.0.2.5"),  # another client behind the same NAT64
        ("2002:c000:204:1::1", "192.0.2.4"),  # 6to4: every /64 under 2002:c000:204::/48
        ("2002:c000:204:ffff::1", "192.0.2.4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: the client's
    ],
)
def test_an_ipv6_address_carrying_its_ipv4_client_counts_as_that_client(
    written: str, counted: str
) -> None:
    assert client_network(written) == counted


def test_a_client_is_counted_by_its_ipv4_address_or_its_ipv6_64() -> None:
    assert client_network("203.0.113.7:50001") == "203.0.113.7"
    assert client_network("[2001:db8::1]:443") == "2001:db8::/64"
    assert client_network("2001:db8::ffff:1") == client_network("[2001:db8::2]:9")
    assert client_network("2001:db8:0:1::1") == "2001:db8:0:1::/64"
