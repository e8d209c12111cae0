"""The auth service's Ed25519 signing keys: loading, rotation, JWKS and minting."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auth_service.settings import AuthSettings
from shared.settings import development_secret

logger = logging.getLogger(__name__)

_PEM_BLOCK = re.compile(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", re.DOTALL)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64url(raw),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # RFC 7638 thumbprint: stable across restarts and replicas, derived from the key alone.
        canonical = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":")
        )
        return cls(
            kid=_b64url(hashlib.sha256(canonical.encode()).digest()), private_key=private_key
        )


class KeySet:
    """Keys oldest first; the newest signs, all of them verify and are published."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self.keys = keys
        self.current = keys[-1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def public_keys(self) -> dict[str, Any]:
        return {key.kid: key.public_key for key in self.keys}

    def mint_access_token(
        self, *, subject: str, issuer: str, audience: str, now: datetime, ttl: timedelta
    ) -> str:
        issued = int(now.timestamp())
        claims = {
            "sub": subject,
            "iss": issuer,
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(ttl.total_seconds()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self.current.private_key, algorithm="EdDSA", headers={"kid": self.current.kid}
        )


def parse_pem_keys(pem: str) -> list[SigningKey]:
    keys = []
    for block in _PEM_BLOCK.findall(pem):
        key = serialization.load_pem_private_key(block.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("signing keys must be Ed25519")
        keys.append(SigningKey.from_private_key(key))
    if not keys:
        raise ValueError("no PKCS#8 private key found in the signing key value")
    return keys


def generate_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def load_key_set(settings: AuthSettings) -> KeySet:
    """Keys from settings; in development a key generated on first run under ``.data/``."""
    if settings.signing_keys is not None:
        return KeySet(parse_pem_keys(settings.signing_keys.get_secret_value()))
    if settings.signing_key_file is not None:
        return KeySet(parse_pem_keys(settings.signing_key_file.read_text()))
    if not settings.is_development:
        raise RuntimeError("AUTH_SIGNING_KEYS or AUTH_SIGNING_KEY_FILE is required in production")
    pem = development_secret(settings.dev_key_file, generate_pem, what="signing key")
    return KeySet(parse_pem_keys(pem))
