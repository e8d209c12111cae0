"""One normalised path is routed, rate-limited and forwarded; an ambiguous one is refused.

A client that spells a route another way (``/api/auth/%6Cogin``) reaches the same route under
the same rules and the same counters; a path that a server could read two ways (dot segments,
``//``, an encoded ``/`` or ``\\``) is a 400 before anything is forwarded.

Requests are sent with httpcore's ``target`` extension: httpx would otherwise resolve dot
segments itself, and the point is what the gateway does with the bytes a client can send.
"""

from __future__ import annotations

import pytest

from gateway import routes
from gateway.settings import GatewaySettings
from tests.gateway.conftest import Echo
from tests.gateway.support import send_target
from tests.support.errors import assert_error
from tests.support.serving import live_server

DEFAULT_AUTH_IP_LIMIT = GatewaySettings.model_fields["rate_limit_auth_ip"].default
PUBLIC = sorted((method, path.decode()) for method, path in routes.PUBLIC)
IP_LIMITED = sorted((method, path.decode()) for method, path in routes.IP_LIMITED)


def escape(char: str, *, upper: bool) -> str:
    code = f"%{ord(char):02x}"
    return code.upper() if upper else code


def spellings(path: str) -> list[str]:
    """Other spellings of ``path`` that mean the same path: escapes of unreserved
    characters, in lower and upper case, in the last segment and in the first."""
    head, _, last = path.rpartition("/")
    return [
        f"{head}/{escape(last[0], upper=False)}{last[1:]}",
        f"{head}/{escape(last[0], upper=True)}{last[1:]}",
        f"{head}/{''.join(escape(c, upper=n % 2 == 0) for n, c in enumerate(last))}",
        f"/{escape('a', upper=False)}pi{path[4:]}",
    ]


def ambiguous(path: str) -> list[str]:
    """Paths a server could read as ``path`` or as another one."""
    head, _, last = path.rpartition("/")
    return [
        f"{head}/./{last}",
        f"{head}/%2e/{last}",
        f"/api/x/../{path[5:]}",
        f"/api/x/%2e%2e/{path[5:]}",
        f"/api/x/%2E%2E/{path[5:]}",
        f"/api/x/.%2e/{path[5:]}",
        f"{path}/.",
        f"{path}/..",
        f"/api/{path[5:].replace('/', '//', 1)}",
        f"/{path}",
        f"{head}%2F{last}",
        f"{head}%2f{last}",
        f"{head}%5C{last}",
        f"{head}\\{last}",
        f"{head}/{last[:-1]}%{last[-1]}",  # a broken escape
    ]


def test_normalise_decodes_unreserved_escapes_and_refuses_ambiguous_paths() -> None:
    assert routes.normalise(b"/api/tasks/7") == b"/api/tasks/7"
    assert routes.normalise(b"/api/auth/%6Cogin") == b"/api/auth/login"
    assert routes.normalise(b"/api/auth/%6cogin") == b"/api/auth/login"
    assert routes.normalise(b"/api/x%2D%2e%5F%7E%41%7a%30") == b"/api/x-._~Az0"
    # Reserved and other characters stay escaped, in upper case.
    assert routes.normalise(b"/api/a%40b/tasks%20x%c3%a9") == b"/api/a%40b/tasks%20x%C3%A9"
    # A trailing slash and a dot inside a segment are not ambiguous.
    assert routes.normalise(b"/api/tasks/") == b"/api/tasks/"
    assert routes.normalise(b"/api/.well-known/a.b") == b"/api/.well-known/a.b"
    for path in ambiguous("/api/auth/login"):
        assert routes.normalise(path.encode()) is None, path
    for path in (b"/api/%", b"/api/%4", b"/api/%g0", b"/api/%2", b"/api/%%41"):
        assert routes.normalise(path) is None, path


@pytest.mark.parametrize(("method", "path"), PUBLIC)
async def test_every_spelling_of_a_public_route_is_that_route(echo, start_gateway, method, path):
    upstream, url = echo
    async with start_gateway(auth_url=url) as (_, client):
        answers = [await send_target(client, method, spelling) for spelling in spellings(path)]
    assert [a.status_code for a in answers] == [200] * len(answers)
    # Forwarded as the one normalised path, without a token.
    assert {seen["raw_path"] for seen in upstream.requests} == {path}
    assert all("x-user-id" not in upstream.headers_of(i) for i in range(len(answers)))


@pytest.mark.parametrize(("method", "path"), IP_LIMITED)
async def test_every_spelling_of_a_limited_route_counts_under_its_one_limit(
    echo, start_gateway, method, path
):
    """25 requests from one address under the default limit (20 a minute): the last five
    are refused whatever the spelling."""
    upstream, url = echo
    variants = [path, *spellings(path)]
    async with start_gateway(auth_url=url, rate_limit_auth_ip=DEFAULT_AUTH_IP_LIMIT) as (_, c):
        answers = [await send_target(c, method, variants[n % len(variants)]) for n in range(25)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    for refused in answers[20:]:
        assert_error(refused, 429, "rate_limited")
    assert len(upstream.requests) == 20


@pytest.mark.parametrize(("method", "path"), sorted(set(PUBLIC) | set(IP_LIMITED)))
async def test_ambiguous_spellings_of_public_routes_are_400_and_never_forwarded(
    echo, start_gateway, method, path
):
    upstream, url = echo
    async with start_gateway(auth_url=url) as (_, client):
        answers = {target: await send_target(client, method, target) for target in ambiguous(path)}
    for target, answer in answers.items():
        assert answer.status_code == 400, target
        if method != "HEAD":
            assert_error(answer, 400, "invalid_path")
    assert upstream.requests == []


@pytest.mark.parametrize(
    "target",
    [
        *ambiguous("/api/tasks/7"),
        "/api/tasks/a%2Fb",
        "/api/ann/tasks/../../tasks",
        "/api/ann/%2e%2e/tasks",
        "/api/ann/./tasks",
        "/api/an%2Fn/tasks",
        "/api/x/../health",
    ],
)
async def test_ambiguous_paths_with_a_token_are_400_too(echo, start_gateway, issuer, target):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        answer = await send_target(client, "GET", target, headers=issuer.auth("ann"))
    assert_error(answer, 400, "invalid_path")
    assert upstream.requests == []


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
async def test_a_target_that_is_not_a_path_is_400_and_never_forwarded(echo, start_gateway, method):
    """The asterisk form (``OPTIONS *``, a question to the server itself) names no resource:
    read as a path it was neither the API's nor the gateway's, so it went to the web client
    as ``*``, past the rule that every forwarded path is one the gateway normalised."""
    upstream, url = echo
    async with start_gateway(web_url=url, auth_url=url, todo_url=url) as (_, client):
        answer = await send_target(client, method, "*")
    assert_error(answer, 400, "invalid_path")
    assert upstream.requests == []


async def test_other_escapes_are_forwarded_in_upper_case(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        answer = await send_target(
            client, "GET", "/api/tasks/%41b%20c%c3%a9?q=%2f", issuer.auth("ann")
        )
    assert answer.status_code == 200
    assert upstream.requests[-1]["raw_path"] == "/api/tasks/Ab%20c%C3%A9"
    assert upstream.requests[-1]["query"] == "q=%2f"  # the query is not the path: as sent


async def test_a_spelled_out_protected_route_still_needs_a_token(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(auth_url=url, todo_url=url) as (_, client):
        without = [await send_target(client, "GET", t) for t in ("/api/auth/%6De", "/api/%74asks")]
        with_token = await send_target(client, "GET", "/api/%74asks", issuer.auth("ann"))
    for answer in without:
        assert_error(answer, 401, "invalid_token")
    assert with_token.status_code == 200
    assert [seen["raw_path"] for seen in upstream.requests] == ["/api/tasks"]


async def test_compatibility_routes_are_matched_on_the_normalised_path(start_gateway, issuer):
    todo, chat = Echo(), Echo()
    async with (
        live_server(todo, lifespan="off") as todo_url,
        live_server(chat, lifespan="off") as chat_url,
        start_gateway(todo_url=todo_url, chat_url=chat_url) as (_, client),
    ):
        tasks = await send_target(client, "GET", "/api/%61nn/%74asks/%37", issuer.auth("ann"))
        turn = await send_target(client, "POST", "/api/ann/%63hat", issuer.auth("ann"))
        other = await send_target(client, "GET", "/api/%62ob/tasks", issuer.auth("ann"))
    assert tasks.status_code == 200
    assert turn.status_code == 200
    assert_error(other, 403, "forbidden")
    assert [seen["raw_path"] for seen in todo.requests] == ["/api/tasks/7"]
    assert [seen["raw_path"] for seen in chat.requests] == ["/api/chat"]


async def test_own_routes_are_matched_on_the_normalised_path(start_gateway):
    async with start_gateway() as (_, client):
        liveness = await send_target(client, "GET", "/%68ealthz")
        health = await send_target(client, "GET", "/api/%68ealth")
    assert liveness.status_code == 200
    assert liveness.json() == {"status": "ok"}
    # The aggregated health (every service is down here), not a 404.
    assert_error(health, 503, "service_unavailable")
    assert set(health.json()["detail"]["services"]) == {"auth", "todo", "chat", "web"}
