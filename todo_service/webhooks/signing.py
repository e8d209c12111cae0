"""Signing secrets and signatures of webhook deliveries, in the Standard Webhooks scheme.

A secret is ``whsec_`` and the base64 of 32 random bytes (``secrets``); the HMAC key is
those bytes. Each delivery carries ``webhook-id`` (the event's id: a receiver drops a
repeated one), ``webhook-timestamp`` (Unix seconds when it was sent) and
``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{body}"``. docs/webhooks.md shows the receiver's check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
