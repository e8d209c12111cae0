"""A test token issuer: an Ed25519 key that mints platform-shaped access tokens.

Services under test get ``issuer.verifier()`` (keys handed over directly), so in-process tests
need no running auth service; end-to-end tests use the real auth service instead.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from auth_service.keys import KeySet, SigningKey, generate_pem, parse_pem_keys
from shared.tokens import IssuerKeys, StaticKeySource, TokenVerifier

ISSUER = "todo-platform-auth"
AUDIENCE = "todo-platform"


class TestIssuer:
    __test__ = False  # not a test class

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key: SigningKey = parse_pem_keys(generate_pem())[0]
        self.keys = KeySet([self.key])

    def claims(self, sub: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self, sub: str | None = None, *, headers: dict[str, Any] | None = None, **overrides: Any
    ) -> str:
        """A token for ``sub`` (fresh when omitted); overrides change or drop (None) claims."""
        return jwt.encode(
            self.claims(sub or str(uuid.uuid4()), **overrides),
            self.key.private_key,
            algorithm="EdDSA",
            headers={"kid": self.key.kid, **(headers or {})},
        )

    def auth(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(sub)}"}

    def verifier(self) -> TokenVerifier:
        source = StaticKeySource(self.keys.public_keys())
        return TokenVerifier([IssuerKeys(self.issuer, self.audience, "EdDSA", source)])

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()


def bad_tokens(issuer: TestIssuer) -> dict[str, dict[str, str]]:
    """Request headers that carry no valid token of ``issuer``, by kind; each is a 401."""
    now = int(time.time())
    stranger = TestIssuer()  # same issuer name and kid shape, another key
    forged = jwt.encode(
        stranger.claims("alice-subject"),
        stranger.key.private_key,
        algorithm="EdDSA",
        headers={"kid": issuer.key.kid},
    )
    unsigned = jwt.encode(issuer.claims("alice-subject"), None, algorithm="none")
    hs256 = jwt.encode(issuer.claims("alice-subject"), "x" * 32, algorithm="HS256")
    anonymous = {k: v for k, v in issuer.claims("alice-subject").items() if k != "sub"}
    no_subject = jwt.encode(
        anonymous, issuer.key.private_key, algorithm="EdDSA", headers={"kid": issuer.key.kid}
    )
    return {
        "missing": {},
        "empty-bearer": {"Authorization": "Bearer "},
        "not-bearer": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": {"Authorization": f"Bearer {issuer.mint('alice-subject', exp=now - 3600)}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "unknown-key": {"Authorization": f"Bearer {stranger.mint('alice-subject')}"},
        "wrong-audience": {"Authorization": f"Bearer {issuer.mint('alice-subject', aud='x')}"},
        "wrong-issuer": {"Authorization": f"Bearer {issuer.mint('alice-subject', iss='evil')}"},
        "no-subject": {"Authorization": f"Bearer {no_subject}"},
        "alg-none": {"Authorization": f"Bearer {unsigned}"},
        "hs256-confusion": {"Authorization": f"Bearer {hs256}"},
    }
