"""Bearer tokens an attacker can make, against the platform's real signing key.

Each one is refused by the gateway and by every service's own port; the only difference
from the real token is named by the key of the mapping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from auth_service.keys import generate_pem, parse_pem_keys
from tests.support.tokens import AUDIENCE, ISSUER


def _segment(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_segment(header)}.{_segment(claims)}."


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Signed by hand: PyJWT refuses to use a public key as an HMAC secret, an attacker
    does not."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def forged_tokens(signing_pem: str, sub: str) -> dict[str, str | None]:
    """Every way of not having a valid token for ``sub``, by name."""
    key = parse_pem_keys(signing_pem)[0]
    stranger = parse_pem_keys(generate_pem())[0]
    now = int(time.time())
    claims = {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }

    def real_key(**changes: Any) -> str:
        """Signed with the platform's key; a change to None drops the claim."""
        changed = {
            name: value for name, value in {**claims, **changes}.items() if value is not None
        }
        return jwt.encode(changed, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})

    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_raw = key.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    hs256 = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    return {
        "no token": None,
        "not a JWT": "not-a-token",
        "expired": real_key(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not yet valid": real_key(iat=now + 3600, nbf=now + 3600, exp=now + 7200),
        "unknown key": jwt.encode(
            claims, stranger.private_key, algorithm="EdDSA", headers={"kid": stranger.kid}
        ),
        "the real kid, another key": jwt.encode(
            claims, stranger.private_key, algorithm="EdDSA", headers={"kid": key.kid}
        ),
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": key.kid}, claims),
        "HS256 keyed with the public key (PEM)": _hs256(hs256, claims, public_pem),
        "HS256 keyed with the public key (raw)": _hs256(hs256, claims, public_raw),
        "another audience": real_key(aud="another-platform"),
        "another issuer": real_key(iss="another-issuer"),
        "no subject": real_key(sub=None),
    }
