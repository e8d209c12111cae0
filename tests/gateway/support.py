"""Helpers the gateway tests share."""

from __future__ import annotations

import httpx


async def send_target(
    client: httpx.AsyncClient, method: str, target: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A request whose ``target`` goes on the request line byte for byte (httpcore's
    ``target`` extension): httpx would otherwise resolve dot segments itself, and what is
    under test is what the gateway does with the bytes a client can send."""
    return await client.request(
        method,
        "/",
        json={} if method == "POST" else None,
        headers=headers,
        extensions={"target": target.encode()},
    )
