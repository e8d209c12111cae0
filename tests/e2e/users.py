"""Accounts made through the gateway, as a client makes them: used by the end-to-end and
security tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class User:
    """A registered, logged-in user: ``headers`` carries its bearer token."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register_and_login(client: httpx.AsyncClient, **profile: Any) -> User:
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple"
    registered = await client.post(
        "/api/auth/register", json={"email": email, "password": password, **profile}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    tokens = login.json()
    return User(
        id=tokens["user"]["id"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )
