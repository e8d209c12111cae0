"""The SSRF defence of webhook URLs: a matrix of hostile URLs refused at registration with
a 422 naming the reason (and nothing stored), names resolving to forbidden addresses through
an injected resolver, the any-address rule, the loopback exception of development, and the
address a delivery connects to."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from shared.clock import FrozenClock
from shared.db import Database
from shared.sealing import SecretBox
from tests.support.errors import assert_error
from tests.support.tokens import TestIssuer
from tests.todo.conftest import User
from tests.todo.webhooks.conftest import PUBLIC_HOST, TableDns, register, serve_todo
from todo_service.settings import TodoSettings
from todo_service.webhooks.targets import (
    TargetRefused,
    check_target,
    forbidden_reason,
    parse_target,
)

# Names the test DNS answers with a forbidden address (or a mix).
HOSTILE_NAMES = {
    "internal.example.com": ["10.0.0.5"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "aws6.example.com": ["fd00:ec2::254"],
    "cgnat.example.com": ["100.64.1.1"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "v6local.example.com": ["::1"],
    "ula.example.com": ["fc00::1"],
    "linklocal6.example.com": ["fe80::1"],
    "localhost.example.com": ["127.0.0.1"],
    "xn--bcher-kva.example.com": ["192.168.1.1"],
}

HOSTILE = [
    # (url, the reason's code)
    ("http://hooks.example.com/", "https_required"),
    ("ftp://hooks.example.com/", "https_required"),
    ("file:///etc/passwd", "https_required"),
    ("javascript:alert(1)", "https_required"),
    ("//hooks.example.com/", "https_required"),
    ("https://127.0.0.1/", "address_forbidden"),
    ("https://127.0.0.1:443/", "address_forbidden"),
    ("https://2130706433/", "invalid_host"),
    ("https://0x7f000001/", "invalid_host"),
    ("https://0x7f.0.0.1/", "invalid_host"),
    ("https://0177.0.0.1/", "invalid_url"),
    ("https://0177.0.0.01/", "invalid_url"),
    ("https://1.1.1.1.1/", "invalid_host"),
    ("https://017700000001/", "invalid_host"),
    ("https://127.1/", "invalid_host"),
    ("https://10.1/", "invalid_host"),
    ("https://[::1]/", "address_forbidden"),
    ("https://[::ffff:127.0.0.1]/", "address_forbidden"),
    ("https://[::ffff:7f00:1]/", "address_forbidden"),
    ("https://[::ffff:169.254.169.254]/", "address_forbidden"),
    ("https://[::127.0.0.1]/", "address_forbidden"),
    ("https://[64:ff9b::a9fe:a9fe]/", "address_forbidden"),
    ("https://[2002:a9fe:a9fe::]/", "address_forbidden"),
    ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "address_forbidden"),
    ("https://[fe80::1]/", "address_forbidden"),
    ("https://[fd00:ec2::254]/", "address_forbidden"),
    ("https://[::]/", "address_forbidden"),
    ("https://[ff02::1]/", "address_forbidden"),
    ("https://169.254.169.254/latest/meta-data/", "address_forbidden"),
    ("https://10.0.0.1/", "address_forbidden"),
    ("https://172.16.0.1/", "address_forbidden"),
    ("https://192.168.0.1/", "address_forbidden"),
    ("https://100.64.0.1/", "address_forbidden"),
    ("https://0.0.0.0/", "address_forbidden"),
    ("https://224.0.0.1/", "address_forbidden"),
    ("https://240.0.0.1/", "address_forbidden"),
    ("https://255.255.255.255/", "address_forbidden"),
    ("https://192.0.2.1/", "address_forbidden"),
    ("https://198.18.0.1/", "address_forbidden"),
    ("https://good@127.0.0.1/", "invalid_url"),
    ("https://hooks.example.com@127.0.0.1/", "invalid_url"),
    ("https://user:pass@hooks.example.com/", "invalid_url"),
    ("https://hooks.example.com/#frag", "invalid_url"),
    ("https://hooks.example.com /x", "invalid_url"),
    ("https://hooks.example.com\\@127.0.0.1/", "invalid_url"),
    ("https://hooks.example.com/\r\nX-Injected: 1", "invalid_url"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "invalid_url"),  # fullwidth digits
    ("https://localhost/", "invalid_host"),
    ("https://localhost./", "invalid_host"),
    ("https://intranet/", "invalid_host"),
    ("https://-bad-.example.com/", "invalid_host"),
    ("https://hooks.example.com:8443/", "port_not_allowed"),
    ("https://hooks.example.com:22/", "port_not_allowed"),
    ("https://hooks.example.com:0/", "port_not_allowed"),
    ("https://unknown.example.com/", "unresolvable"),
    ("https://internal.example.com/", "unresolvable"),
    ("https://internal.example.com./", "unresolvable"),
    ("https://INTERNAL.Example.COM/", "unresolvable"),
    ("https://rebind.example.com/", "unresolvable"),
    ("https://metadata.example.com/", "unresolvable"),
    ("https://aws6.example.com/", "unresolvable"),
    ("https://cgnat.example.com/", "unresolvable"),
    ("https://mapped.example.com/", "unresolvable"),
    ("https://v6local.example.com/", "unresolvable"),
    ("https://ula.example.com/", "unresolvable"),
    ("https://linklocal6.example.com/", "unresolvable"),
    ("https://localhost.example.com/", "unresolvable"),
    ("https://bücher.example.com/", "unresolvable"),
]


@pytest.fixture
def dns(dns: TableDns) -> TableDns:
    dns.answers.update(HOSTILE_NAMES)
    return dns


@pytest.mark.parametrize(("url", "code"), HOSTILE, ids=[url for url, _ in HOSTILE])
async def test_a_hostile_url_is_refused_at_registration(
    hooks: httpx.AsyncClient, alice: User, webhook_rows: Any, url: str, code: str
) -> None:
    response = await hooks.post("/api/webhooks", json={"url": url}, headers=alice.headers)
    body = assert_error(response, 422, f"webhook_url_{code}")
    assert "refused" in body["detail"]
    assert await webhook_rows() == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/receive",
        "https://hooks.example.com./receive",
        "https://HOOKS.example.com:443/receive?x=1",
        "https://93.184.216.34/",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/",
    ],
)
async def test_a_public_https_url_is_accepted(
    hooks: httpx.AsyncClient, alice: User, url: str
) -> None:
    created = await register(hooks, alice, url)
    assert created["url"].startswith("https://")
    assert "HOOKS" not in created["url"]


async def test_the_lookup_uses_the_idna_name(
    hooks: httpx.AsyncClient, alice: User, dns: TableDns
) -> None:
    response = await hooks.post(
        "/api/webhooks", json={"url": "https://bücher.example.com/"}, headers=alice.headers
    )
    assert_error(response, 422, "webhook_url_unresolvable")
    assert dns.asked == ["xn--bcher-kva.example.com"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:10.0.0.1", "private"),
        ("2002:0a00:0001::", "private"),  # 6to4 of 10.0.0.1
        ("2002:7f00:0001::", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("::a00:1", "private"),  # IPv4-compatible 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo
        ("100.127.255.255", "private"),
        ("169.254.0.1", "link-local"),
        ("fe80::abcd", "link-local"),
        ("fec0::1", "private"),  # site-local
    ],
)
def test_embedded_and_edge_addresses_are_forbidden(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::6810:85e5"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


async def test_a_delivery_connects_to_the_address_it_checked() -> None:
    target = parse_target("https://Hooks.Example.com./in?a=1", allow_loopback=False)
    answers = TableDns({PUBLIC_HOST: ["2606:2800:220:1:248:1893:25c8:1946"]})
    checked = await check_target(target, resolver=answers, ports={443}, allow_loopback=False)
    assert str(checked.request_url()) == "https://[2606:2800:220:1:248:1893:25c8:1946]/in?a=1"
    assert checked.host_header() == PUBLIC_HOST
    assert target.host == PUBLIC_HOST


async def test_too_many_addresses_are_refused() -> None:
    answers = TableDns({PUBLIC_HOST: [f"93.184.216.{n}" for n in range(1, 40)]})
    target = parse_target(f"https://{PUBLIC_HOST}/", allow_loopback=False)
    with pytest.raises(TargetRefused) as refused:
        await check_target(target, resolver=answers, ports={443}, allow_loopback=False)
    assert refused.value.code == "unresolvable"


# --- the development exception --------------------------------------------------------------


@pytest.fixture
async def loopback_hooks(
    todo_settings: TodoSettings,
    database: Database,
    issuer: TestIssuer,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
) -> Any:
    settings = todo_settings.model_copy(update={"webhooks_allow_loopback": True})
    async with serve_todo(settings, database, issuer, clock, dns, box) as client:
        yield client


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/hook",
        "https://127.0.0.1:9/",
        "http://[::1]:8080/",
        "http://localhost.example.com:81/",
    ],
)
async def test_development_allows_loopback_http_on_any_port(
    loopback_hooks: httpx.AsyncClient, alice: User, url: str
) -> None:
    await register(loopback_hooks, alice, url)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/", "https_required"),
        ("http://10.0.0.1/", "address_forbidden"),
        ("http://rebind.example.com/", "unresolvable"),
        ("http://[::ffff:127.0.0.1]/", "address_forbidden"),
        ("https://169.254.169.254/", "address_forbidden"),
        ("https://hooks.example.com:8443/", "port_not_allowed"),
        ("http://2130706433/", "invalid_host"),
    ],
)
async def test_development_still_refuses_everything_but_loopback(
    loopback_hooks: httpx.AsyncClient, alice: User, url: str, code: str
) -> None:
    response = await loopback_hooks.post("/api/webhooks", json={"url": url}, headers=alice.headers)
    assert_error(response, 422, f"webhook_url_{code}")


def test_the_loopback_exception_cannot_be_turned_on_in_production() -> None:
    with pytest.raises(ValidationError, match="development only"):
        TodoSettings(_env_file=None, environment="production", webhooks_allow_loopback=True)


async def test_a_names_refusal_does_not_tell_whether_or_where_it_resolves(
    hooks: httpx.AsyncClient, alice: User, dns: TableDns, webhook_rows: Any
) -> None:
    # Registration resolves the name with the todo service's own resolver: telling "does not
    # resolve" from "resolves to a private address" let any account map the names only that
    # resolver knows (a cluster's services, an internal zone) and the kind of address each
    # has, at the per-user rate, without a webhook ever being stored.
    dns.answers["many.example.com"] = [f"93.184.216.{n}" for n in range(1, 40)]
    answers = []
    for host in (
        "unknown.example.com",
        "internal.example.com",
        "localhost.example.com",
        "metadata.example.com",
        "rebind.example.com",
        "v6local.example.com",
        "many.example.com",
    ):
        response = await hooks.post(
            "/api/webhooks", json={"url": f"https://{host}/in"}, headers=alice.headers
        )
        body = assert_error(response, 422, "webhook_url_unresolvable")
        answers.append((body["detail"], sorted(set(response.headers) - {"x-request-id"})))
    assert len(set(map(str, answers))) == 1, answers
    assert await webhook_rows() == []
