"""What the gateway forwards, what it drops, and what it adds, seen by a real upstream."""

from __future__ import annotations

import json

from fastapi import FastAPI, Response
from fastapi.responses import RedirectResponse

from tests.support.serving import live_server


async def test_method_path_query_and_body_reach_the_service_unchanged(echo, start_gateway, issuer):
    upstream, url = echo
    body = json.dumps({"title": "Buy milk", "note": "ä"}).encode()
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.patch(
            "/api/tasks/7/complete?tag=a%20b&tag=c",
            content=body,
            headers={**issuer.auth("ann"), "Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    seen = upstream.requests[-1]
    assert seen["method"] == "PATCH"
    assert seen["raw_path"] == "/api/tasks/7/complete"
    assert seen["query"] == "tag=a%20b&tag=c"
    assert seen["body_length"] == len(body)
    headers = upstream.headers_of()
    assert headers["content-type"] == ["application/json"]
    assert headers["content-length"] == [str(len(body))]


async def test_percent_encoded_path_is_forwarded_with_its_escapes(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks/a%3Bb%20c%C3%A9", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert upstream.requests[-1]["raw_path"] == "/api/tasks/a%3Bb%20c%C3%A9"


async def test_authorization_passes_through_and_subject_goes_in_x_user_id(
    echo, start_gateway, issuer
):
    upstream, url = echo
    token = issuer.mint("ann")
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get(
            "/api/tasks", headers={"Authorization": f"Bearer {token}", "X-User-Id": "mallory"}
        )
    assert response.status_code == 200
    headers = upstream.headers_of()
    assert headers["authorization"] == [f"Bearer {token}"]
    assert headers["x-user-id"] == ["ann"]


async def test_spoofed_internal_and_forwarding_headers_are_replaced(echo, start_gateway, issuer):
    upstream, url = echo
    spoofed = {
        "X-User-Id": "mallory",
        "X-Internal-Role": "admin",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Prefix": "/admin",
        "Forwarded": "for=6.6.6.6",
        "X-Real-IP": "6.6.6.6",
    }
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers={**issuer.auth("ann"), **spoofed})
    assert response.status_code == 200
    headers = upstream.headers_of()
    assert headers["x-user-id"] == ["ann"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == [client.base_url.netloc.decode()]
    for name in ("x-internal-role", "x-forwarded-prefix", "forwarded", "x-real-ip"):
        assert name not in headers


async def test_forwarding_headers_from_a_trusted_proxy_are_believed_and_reduced_to_the_client(
    echo, start_gateway, issuer
):
    upstream, url = echo
    async with start_gateway(todo_url=url, trusted_proxies="127.0.0.1/32") as (_, client):
        response = await client.get(
            "/api/tasks",
            headers={
                **issuer.auth("ann"),
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example.com",
            },
        )
    assert response.status_code == 200
    headers = upstream.headers_of()
    # One address: the client as the gateway determined it, not the chain it was sent.
    assert headers["x-forwarded-for"] == ["203.0.113.9"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["x-forwarded-host"] == ["api.example.com"]


async def test_a_chain_behind_a_trusted_proxy_is_forwarded_as_its_one_client_address(
    echo, start_gateway, issuer
):
    """A client behind the trusted proxy writes an address of its choice on the left; the
    services would take the leftmost entry as the client, so only the real one is sent."""
    upstream, url = echo
    async with start_gateway(todo_url=url, trusted_proxies="127.0.0.1/32") as (_, client):
        response = await client.get(
            "/api/tasks",
            headers={**issuer.auth("ann"), "X-Forwarded-For": "198.51.100.66, 203.0.113.9"},
        )
    assert response.status_code == 200
    assert upstream.headers_of()["x-forwarded-for"] == ["203.0.113.9"]


async def test_a_chain_split_over_several_forwarded_for_lines_is_read_whole(
    echo, start_gateway, issuer
):
    """A proxy may add its entry on a line of its own: the last line alone named only
    trusted proxies, and every client behind them counted as the proxy's address."""
    upstream, url = echo
    async with start_gateway(todo_url=url, trusted_proxies="127.0.0.1/32") as (_, client):
        response = await client.get(
            "/api/tasks",
            headers=[
                *issuer.auth("ann").items(),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-For", "127.0.0.1"),
            ],
        )
    assert response.status_code == 200
    assert upstream.headers_of()["x-forwarded-for"] == ["203.0.113.9"]


async def test_hop_by_hop_request_headers_are_removed(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get(
            "/api/tasks",
            headers={
                **issuer.auth("ann"),
                "Connection": "keep-alive, X-Session-Hint",
                "X-Session-Hint": "for this hop only",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Trailer": "X-Checksum",
                "Upgrade": "websocket",
                "Proxy-Authorization": "Basic c2VjcmV0",
                "Proxy-Connection": "keep-alive",
                "X-Kept": "yes",
            },
        )
    assert response.status_code == 200
    headers = upstream.headers_of()
    for name in (
        "connection",
        "x-session-hint",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ):
        assert name not in headers, name
    assert headers["x-kept"] == ["yes"]
    # The Host is the service's own; the client's is in X-Forwarded-Host.
    assert headers["host"] == [url.removeprefix("http://")]


async def test_a_client_cannot_name_the_gateways_own_headers_as_hop_by_hop(
    echo, start_gateway, issuer
):
    """Naming them in Connection once removed what the gateway had just written: the
    service then took the gateway's own address as the client's (one shared bucket for
    every client doing so), and saw no user id."""
    upstream, url = echo
    async with start_gateway(todo_url=url, trusted_proxies="127.0.0.1/32") as (_, client):
        response = await client.get(
            "/api/tasks",
            headers={
                **issuer.auth("ann"),
                "X-Forwarded-For": "203.0.113.9",
                "Connection": "keep-alive, X-Forwarded-For, X-Forwarded-Proto, "
                "X-Forwarded-Host, X-User-Id, X-Request-ID",
            },
        )
    assert response.status_code == 200
    headers = upstream.headers_of()
    assert headers["x-forwarded-for"] == ["203.0.113.9"]
    assert headers["x-user-id"] == ["ann"]
    for name in ("x-forwarded-proto", "x-forwarded-host", "x-request-id"):
        assert len(headers[name]) == 1, name


async def test_no_headers_are_invented_for_the_client(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.post(
            "/api/tasks", content=b"raw", headers={**issuer.auth("ann"), "User-Agent": ""}
        )
    assert response.status_code == 200
    headers = upstream.headers_of()
    # No content type, encoding or user agent the client did not send.
    assert "content-type" not in headers
    assert headers.get("user-agent", [""]) == [""]


async def test_hop_by_hop_response_headers_are_removed(echo, start_gateway, issuer):
    _, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert response.status_code == 200
    assert "x-upstream-secret" not in response.headers  # named in the service's Connection
    assert "keep-alive" not in response.headers
    assert response.headers["x-total-count"] == "3"


async def test_cookies_pass_through_and_are_never_kept_by_the_gateway(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        first = await client.get("/api/tasks", headers=issuer.auth("ann"))
        client.cookies.clear()
        await client.get("/api/tasks", headers=issuer.auth("bob"))
    assert first.headers["set-cookie"] == "a=1; Path=/"
    assert "cookie" not in upstream.headers_of()


async def test_request_id_from_the_client_is_sent_upstream_and_returned(
    echo, start_gateway, issuer
):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get(
            "/api/tasks", headers={**issuer.auth("ann"), "X-Request-ID": "trace-42.a:b"}
        )
    assert response.headers["x-request-id"] == "trace-42.a:b"
    assert upstream.headers_of()["x-request-id"] == ["trace-42.a:b"]


async def test_unsafe_request_id_is_replaced_by_a_fresh_one(echo, start_gateway, issuer):
    upstream, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        response = await client.get(
            "/api/tasks", headers={**issuer.auth("ann"), "X-Request-ID": "bad id\twith <tags>"}
        )
        generated = await client.get("/api/tasks", headers=issuer.auth("ann"))
    returned = response.headers["x-request-id"]
    assert returned != "bad id\twith <tags>"
    assert len(returned) == 32
    assert upstream.headers_of(0)["x-request-id"] == [returned]
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] != returned


async def test_security_headers_on_proxied_refused_and_own_responses(echo, start_gateway, issuer):
    _, url = echo
    async with start_gateway(todo_url=url) as (_, client):
        responses = [
            await client.get("/api/tasks", headers=issuer.auth("ann")),
            await client.get("/api/tasks"),
            await client.get("/api/nothing-here"),
            await client.get("/healthz"),
        ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in response.headers


async def test_strict_transport_security_can_be_turned_off(start_gateway):
    async with start_gateway(strict_transport_security="") as (_, client):
        response = await client.get("/healthz")
    assert "strict-transport-security" not in response.headers


async def test_upstream_cannot_weaken_the_security_headers(start_gateway, issuer):
    async def app(scope, receive, send):
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", b"2"),
                    (b"x-frame-options", b"ALLOWALL"),
                    (b"access-control-allow-origin", b"*"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    async with live_server(app, lifespan="off") as url, start_gateway(todo_url=url) as (_, client):
        response = await client.get("/api/tasks", headers=issuer.auth("ann"))
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert "access-control-allow-origin" not in response.headers


async def test_a_services_redirect_does_not_reveal_its_internal_address(start_gateway, issuer):
    # A service redirects a trailing slash to the route (FastAPI's redirect_slashes), with an
    # absolute URL built from the Host it was sent: the service's own internal address.
    service = FastAPI()

    @service.get("/api/tasks/stats")
    async def stats() -> dict[str, int]:
        return {"open": 1}

    @service.get("/api/tasks/elsewhere")
    async def elsewhere() -> RedirectResponse:
        return RedirectResponse("https://example.com/api/tasks/stats", status_code=302)

    async with (
        live_server(service) as url,
        start_gateway(todo_url=url) as (_, client),
    ):
        slash = await client.get("/api/tasks/stats/?a=1", headers=issuer.auth("ann"))
        other = await client.get("/api/tasks/elsewhere", headers=issuer.auth("ann"))
        followed = await client.get(slash.headers["location"], headers=issuer.auth("ann"))
    assert slash.status_code == 307
    internal = url.removeprefix("http://")
    assert internal not in slash.headers["location"]
    assert slash.headers["location"] == "/api/tasks/stats?a=1"
    assert followed.status_code == 200
    assert followed.json() == {"open": 1}
    # Any other site's address is the service's business, left as it is.
    assert other.status_code == 302
    assert other.headers["location"] == "https://example.com/api/tasks/stats"


async def test_api_answers_are_not_stored_unless_the_service_says_how(start_gateway, issuer):
    # A task list, a profile or a token in a browser's disk cache outlives the session that
    # fetched it: what a service leaves unsaid about caching is `no-store`; what it says is kept.
    service = FastAPI()

    @service.get("/api/tasks")
    async def tasks() -> list[dict[str, str]]:
        return [{"title": "private"}]

    @service.get("/api/tasks/public")
    async def public(response: Response) -> dict[str, str]:
        response.headers["Cache-Control"] = "public, max-age=300"
        return {}

    @service.get("/api/tasks/hop")
    async def hop(response: Response) -> dict[str, str]:
        # Named by Connection: for the hop to the gateway only, so not said to the client.
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Connection"] = "cache-control"
        return {}

    async with (
        live_server(service) as url,
        start_gateway(todo_url=url, auth_url=url) as (_, client),
    ):
        private = await client.get("/api/tasks", headers=issuer.auth("ann"))
        kept = await client.get("/api/tasks/public", headers=issuer.auth("ann"))
        hop = await client.get("/api/tasks/hop", headers=issuer.auth("ann"))
        refused = await client.get("/api/tasks")
        own = await client.get("/api/openapi.json")
        docs = await client.get("/api/docs")
    assert private.status_code == 200
    assert private.headers.get_list("cache-control") == ["no-store"]
    assert kept.headers.get_list("cache-control") == ["public, max-age=300"]
    assert hop.headers.get_list("cache-control") == ["no-store"]
    assert refused.status_code == 401
    assert refused.headers["cache-control"] == "no-store"
    assert own.headers["cache-control"] == "no-store"
    assert docs.headers["cache-control"] == "no-store"
