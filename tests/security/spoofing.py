"""The spoofing tests' material (``test_spoofed_headers.py``, ``test_trusted_proxy.py``):
the small login limit they run the gateway under, and headers a client can write to look
like someone else."""

from __future__ import annotations

import uuid

LIMIT = 3  # failed logins a minute per client address
SPOOFS: list[dict[str, str]] = [
    {},
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
    {"X-Real-IP": "203.0.113.8"},
    {"Forwarded": "for=203.0.113.10;proto=https"},
    {"X-Forwarded-For": "127.0.0.2", "X-Real-IP": "127.0.0.3"},
    {"X-Client-IP": "203.0.113.11", "True-Client-IP": "203.0.113.12"},
]


def login_body() -> dict[str, str]:
    """A failed login of an account that does not exist (counted by the per-IP limit)."""
    return {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong guess"}
