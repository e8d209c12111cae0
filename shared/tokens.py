"""Access-token verification: one framework-agnostic core for every service and the gateway.

``await verifier.verify(token) -> Principal``. Algorithms are pinned per issuer, ``iss`` and
``aud`` must match exactly, and only the time claims get a small leeway. Keys come from a
JWKS document (fetched asynchronously, cached, refetched on an unknown ``kid`` no more often
than a cooldown allows), from keys handed over directly (the auth service's own key set), or
from an HS256 shared secret (interop with Better Auth clients).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

import httpx
import jwt
from jwt.exceptions import InvalidKeyError, InvalidTokenError, PyJWKError, PyJWTError

from shared.errors import Unauthorized
from shared.http import system_trust
from shared.settings import TrustedIssuer

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# The longest subject accepted: each service keys the user's rows by it (ours are 36-character
# UUIDs, an interop issuer's ids are of that order), so a token cannot make every row it
# writes carry kilobytes of key.
SUBJECT_MAX = 255


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for. ``sub`` is opaque: our UUIDs or another issuer's ids."""

    sub: str
    issuer: str
    claims: Mapping[str, Any] = field(repr=False)
    # The key id the token was verified with (None for a shared secret).
    kid: str | None = field(default=None, repr=False)

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])


class InvalidToken(
    Unauthorized, code="invalid_token", message="The access token is missing, invalid or expired"
):
    """An access token that is absent, forged, expired or meant for another audience."""


class KeySource(Protocol):
    async def key_for(self, kid: str | None) -> Any: ...

    def still_has(self, kid: str | None) -> bool:
        """Whether a token verified with ``kid`` may still be served from the cache: the key
        has not been withdrawn since."""
        ...

    async def ready(self) -> bool: ...


class StaticKeySource:
    """Keys known in-process: the auth service verifies its own tokens without HTTP."""

    def __init__(self, keys: Mapping[str, Any]) -> None:
        self._keys = dict(keys)

    async def key_for(self, kid: str | None) -> Any:
        if kid is None or kid not in self._keys:
            raise InvalidToken()
        return self._keys[kid]

    def still_has(self, kid: str | None) -> bool:
        return kid is not None and kid in self._keys

    async def ready(self) -> bool:
        return bool(self._keys)


class SecretKeySource:
    """An HS256 shared secret: no ``kid`` needed."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def key_for(self, kid: str | None) -> Any:
        return self._secret

    def still_has(self, kid: str | None) -> bool:
        return True

    async def ready(self) -> bool:
        return True


@dataclass(eq=False)
class JWKSKeySource:
    """Public keys from a JWKS URL, cached.

    An unknown ``kid`` triggers one refetch, at most once per ``cooldown`` seconds, shared by
    all waiting requests, so a flood of forged tokens cannot hammer the issuer. Keys are kept
    when a refetch fails, so already-issued tokens keep working while the issuer is down.
    """

    url: str
    _: KW_ONLY
    http: httpx.AsyncClient | None = field(default=None, repr=False)
    cooldown: float = 30.0
    max_age: float = 600.0
    timeout: float = 3.0
    clock: Clock = field(default=time.monotonic, repr=False)
    # The keys of the last fetch that worked, and when it and the last attempt were made.
    _keys: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _fetched_at: float | None = field(default=None, init=False, repr=False)
    _attempted_at: float | None = field(default=None, init=False, repr=False)
    # One fetch at a time; a stale key set's renewal runs in the background.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _background: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def key_for(self, kid: str | None) -> Any:
        if kid is None:
            raise InvalidToken()
        key = self._keys.get(kid)
        if key is not None:
            # A known key is used at once; an old key set is renewed in the background, so a
            # slow or hanging issuer never holds up requests whose key is already known.
            if self._stale():
                self._refresh_in_background()
            return key
        await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken()
        return key

    def still_has(self, kid: str | None) -> bool:
        """Whether ``kid`` is in the key set as last fetched; a stale set is renewed in the
        background, as ``key_for`` renews it, so tokens served from a verifier's cache cannot
        keep an old key set (and a withdrawn key) alive."""
        if kid is None or kid not in self._keys:
            return False
        if self._stale():
            self._refresh_in_background()
        return True

    def _refresh_in_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self.refresh())

    async def ready(self) -> bool:
        if not self._keys:
            await self.refresh()
        return bool(self._keys)

    def _stale(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at > self.max_age

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            now = self.clock()
            if (
                not force
                and self._attempted_at is not None
                and now - self._attempted_at < self.cooldown
            ):
                return
            self._attempted_at = now
            try:
                document = await self._fetch()
                self._keys = _parse_jwks(document)
                self._fetched_at = now
            except (httpx.HTTPError, ValueError, PyJWKError) as exc:
                logger.warning("could not fetch JWKS from %s: %s", self.url, exc)

    async def _fetch(self) -> Any:
        if self.http is not None:
            response = await self.http.get(self.url, timeout=self.timeout)
        else:
            async with httpx.AsyncClient(verify=system_trust()) as client:
                response = await client.get(self.url, timeout=self.timeout)
        response.raise_for_status()
        return response.json()


def _parse_jwks(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Any] = {}
    for entry in document["keys"]:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry).key
        except (PyJWTError, ValueError) as exc:  # a malformed key must not hide the others
            logger.warning("skipping unusable JWK %s: %s", kid, exc)
    return keys


@dataclass(slots=True)
class IssuerKeys:
    name: str
    audience: str
    algorithm: str
    keys: KeySource


class TokenVerifier:
    """Verifies bearer tokens from a list of trusted issuers, with a bounded cache."""

    def __init__(
        self,
        issuers: Iterable[IssuerKeys],
        *,
        leeway: float = 30.0,
        cache_size: int = 10_000,
        clock: Clock = time.time,
    ) -> None:
        self._issuers = {issuer.name: issuer for issuer in issuers}
        self._leeway = leeway
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        issuers: Iterable[TrustedIssuer],
        *,
        http: httpx.AsyncClient | None = None,
        leeway: float = 30.0,
        clock: Clock = time.time,
    ) -> TokenVerifier:
        """Build from settings: JWKS issuers share ``http`` for their fetches."""
        built = []
        for issuer in issuers:
            source: KeySource
            if issuer.hs256_secret is not None:
                source = SecretKeySource(issuer.hs256_secret.get_secret_value())
            else:
                assert issuer.jwks_url is not None
                source = JWKSKeySource(issuer.jwks_url, http=http)
            built.append(IssuerKeys(issuer.issuer, issuer.audience, issuer.algorithm, source))
        return cls(built, leeway=leeway, clock=clock)

    def jwks_sources(self) -> list[JWKSKeySource]:
        """The issuers' key sets that are fetched over HTTP (the gateway loads them at start)."""
        return [i.keys for i in self._issuers.values() if isinstance(i.keys, JWKSKeySource)]

    async def ready(self) -> bool:
        """True when every issuer's keys are loaded (a gateway's readiness)."""
        results = await asyncio.gather(*(i.keys.ready() for i in self._issuers.values()))
        return all(results)

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            # Served only while unexpired and while its key is still the issuer's: a key
            # withdrawn from the JWKS (a leaked one) takes its verified tokens with it.
            if cached.expires_at + self._leeway > self._clock() and self._issuers[
                cached.issuer
            ].keys.still_has(cached.kid):
                return cached
            self._cache.pop(token, None)

        principal = await self._verify_uncached(token)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify_uncached(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (InvalidTokenError, json.JSONDecodeError, ValueError) as exc:
            raise InvalidToken() from exc

        claimed_issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        issuer = self._issuers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if issuer is None or header.get("alg") != issuer.algorithm:
            raise InvalidToken()
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        key = await issuer.keys.key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[issuer.algorithm],
                audience=issuer.audience,
                issuer=issuer.name,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": False},
            )
        # InvalidKeyError: the token names a published key of another type than the issuer's
        # pinned algorithm uses; that is a bad token, not a server error.
        except (InvalidTokenError, InvalidKeyError) as exc:
            raise InvalidToken() from exc
        # PyJWT checks exp against the wall clock; the injectable clock is checked too.
        if float(claims["exp"]) + self._leeway <= self._clock():
            raise InvalidToken()
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= SUBJECT_MAX:
            raise InvalidToken()
        return Principal(sub=sub, issuer=issuer.name, claims=claims, kid=kid)
