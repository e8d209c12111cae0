"""Forged, broken and stale access tokens against ``GET /api/auth/me``: every one is a 401.

Each forgery names a real account as its subject, so accepting one would answer 200 with that
account: the tests fail if any check is skipped. A hand-minted token built the same way but
honestly is accepted (the control), so each case fails for its own reason only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from auth_service.keys import SigningKey, generate_pem, parse_pem_keys
from shared.clock import FrozenClock
from tests.auth.factories import assert_unauthorized, bearer, signed_up
from tests.support.errors import assert_error

ISSUER = "todo-platform-auth"
AUDIENCE = "todo-platform"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims(subject: str, /, **overrides: Any) -> dict[str, Any]:
    """Valid claims for ``subject``; an override of None drops the claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], **header: Any) -> str:
    headers = {"kid": key.kid, **header}
    return jwt.encode(payload, key.private_key, algorithm="EdDSA", headers=headers)


def hs256(secret: bytes, kid: str, payload: dict[str, Any]) -> str:
    """HS256 by hand: PyJWT rightly refuses to use a public key as an HMAC secret."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def public_pem(key: SigningKey) -> bytes:
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_raw(key: SigningKey) -> bytes:
    return key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def tampered(key: SigningKey, sub: str) -> str:
    """A valid token whose payload is swapped for another subject's, signature kept."""
    header, _, signature = sign(key, claims(str(uuid.uuid4()))).split(".")
    return f"{header}.{segment(claims(sub))}.{signature}"


def stripped(key: SigningKey, sub: str) -> str:
    header, payload, _ = sign(key, claims(sub)).split(".")
    return f"{header}.{payload}."


STRANGER = parse_pem_keys(generate_pem())[0]


def now() -> int:
    return int(time.time())


# Bearer tokens built from our signing key and the victim's id; each must be refused.
FORGERIES: dict[str, Callable[[SigningKey, str], str]] = {
    "garbage": lambda key, sub: "not.a.jwt",
    "alg none": lambda key, sub: (
        f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{segment(claims(sub))}."
    ),
    "hs256 with the public key pem": lambda key, sub: hs256(public_pem(key), key.kid, claims(sub)),
    "hs256 with the raw public key": lambda key, sub: hs256(public_raw(key), key.kid, claims(sub)),
    "expired beyond the leeway": lambda key, sub: sign(
        key, claims(sub, iat=now() - 1000, exp=now() - 31)
    ),
    "not yet valid beyond the leeway": lambda key, sub: sign(key, claims(sub, nbf=now() + 120)),
    "issued in the future": lambda key, sub: sign(
        key, claims(sub, iat=now() + 120, nbf=now() + 120)
    ),
    "wrong issuer": lambda key, sub: sign(key, claims(sub, iss="https://evil.example.com")),
    "wrong audience": lambda key, sub: sign(key, claims(sub, aud="another-platform")),
    "tampered payload": tampered,
    "stripped signature": stripped,
    "two segments": lambda key, sub: stripped(key, sub).rsplit(".", 1)[0],
    "unknown kid": lambda key, sub: sign(STRANGER, claims(sub)),
    "stranger key with our kid": lambda key, sub: sign(STRANGER, claims(sub), kid=key.kid),
    "no kid": lambda key, sub: jwt.encode(claims(sub), key.private_key, algorithm="EdDSA"),
    "missing sub": lambda key, sub: sign(key, claims(sub, sub=None)),
    "empty sub": lambda key, sub: sign(key, claims(sub, sub="")),
    "missing exp": lambda key, sub: sign(key, claims(sub, exp=None)),
    "missing iat": lambda key, sub: sign(key, claims(sub, iat=None)),
    "missing aud": lambda key, sub: sign(key, claims(sub, aud=None)),
    "missing iss": lambda key, sub: sign(key, claims(sub, iss=None)),
}

# Authorization headers that carry no bearer token at all.
NO_CREDENTIALS: dict[str, dict[str, str]] = {
    "no header": {},
    "basic scheme": {"Authorization": f"Basic {b64(b'ann@example.com:pw')}"},
    "empty bearer": {"Authorization": "Bearer "},
}


@pytest.fixture
def our_key(signing_pem: str) -> SigningKey:
    return parse_pem_keys(signing_pem)[0]


@pytest.fixture
async def victim(client: httpx.AsyncClient) -> str:
    pair = await signed_up(client, "victim@example.com")
    user_id: str = pair["user"]["id"]
    return user_id


async def test_a_hand_minted_honest_token_is_accepted(
    client: httpx.AsyncClient, our_key: SigningKey, victim: str
) -> None:
    response = await client.get("/api/auth/me", headers=bearer(sign(our_key, claims(victim))))

    assert response.status_code == 200
    assert response.json()["id"] == victim


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_or_broken_token_is_401(
    client: httpx.AsyncClient, our_key: SigningKey, victim: str, forgery: str
) -> None:
    token = FORGERIES[forgery](our_key, victim)

    response = await client.get("/api/auth/me", headers=bearer(token))

    assert_unauthorized(response, "invalid_token")
    assert victim not in response.text


@pytest.mark.parametrize("case", list(NO_CREDENTIALS))
async def test_a_request_without_a_bearer_token_is_401(
    client: httpx.AsyncClient, victim: str, case: str
) -> None:
    response = await client.get("/api/auth/me", headers=NO_CREDENTIALS[case])

    assert_unauthorized(response, "not_authenticated")


async def test_access_token_expires_on_the_services_clock_even_once_cached(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    pair = await signed_up(client)
    headers = bearer(pair["access_token"])
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200

    clock.advance(seconds=900 + 29)
    within_leeway = await client.get("/api/auth/me", headers=headers)
    clock.advance(seconds=2)
    expired = await client.get("/api/auth/me", headers=headers)

    assert within_leeway.status_code == 200
    assert_unauthorized(expired, "invalid_token")


async def test_a_valid_token_for_an_account_that_no_longer_exists_is_401(
    client: httpx.AsyncClient, our_key: SigningKey
) -> None:
    response = await client.get(
        "/api/auth/me", headers=bearer(sign(our_key, claims(str(uuid.uuid4()))))
    )

    assert_unauthorized(response, "invalid_token")


@pytest.mark.parametrize("valid_first", [True, False])
async def test_two_authorization_headers_are_400(
    client: httpx.AsyncClient, our_key: SigningKey, victim: str, valid_first: bool
) -> None:
    valid = bearer(sign(our_key, claims(victim)))["Authorization"]
    pair = [("Authorization", valid), ("Authorization", "Bearer not.a.jwt")]

    response = await client.get("/api/auth/me", headers=pair if valid_first else pair[::-1])

    assert_error(response, 400, "duplicate_header")
    assert victim not in response.text
