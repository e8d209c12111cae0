"""The shared verifier core: trusted issuers, a real JWKS endpoint, its cooldown and caches.

The JWKS endpoint is a real HTTP server (uvicorn on a free 127.0.0.1 port) that counts the
requests it answers, so "at most one fetch" is measured, not assumed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shared.settings import ServiceSettings, TrustedIssuer
from shared.tokens import (
    SUBJECT_MAX,
    InvalidToken,
    IssuerKeys,
    JWKSKeySource,
    StaticKeySource,
    TokenVerifier,
)
from tests.support.serving import live_server
from tests.support.tokens import TestIssuer

EXTERNAL = "https://app.example.com"
SECRET = "a-better-auth-secret-of-at-least-32-characters"


class JWKSServer:
    """A JWKS endpoint whose document and answer can be changed, counting its requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.broken: Response | None = None
        self.requests = 0
        self.url = ""
        self._running = AsyncExitStack()

    async def _jwks(self, request: Request) -> Response:
        self.requests += 1
        return self.broken or JSONResponse(self.document)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/api/auth/jwks", self._jwks)])
        base = await self._running.enter_async_context(live_server(app, lifespan="off"))
        self.url = f"{base}/api/auth/jwks"

    async def stop(self) -> None:
        await self._running.aclose()


class ManualClock:
    """Seconds that move only when told to (the verifier's and the key source's clock)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def jwks_server() -> AsyncIterator[JWKSServer]:
    server = JWKSServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def external(jwks_server: JWKSServer) -> TestIssuer:
    """Another issuer (Better Auth, say) whose keys the local server publishes."""
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    jwks_server.document = issuer.jwks()
    return issuer


def settings_with(*extra: dict[str, Any], own_jwks: str) -> ServiceSettings:
    return ServiceSettings(
        _env_file=None,
        auth_jwks_url=own_jwks,
        extra_trusted_issuers=[TrustedIssuer.model_validate(entry) for entry in extra],
    )


def static_verifier(issuer: TestIssuer, **options: Any) -> TokenVerifier:
    """A verifier of ``issuer``'s EdDSA tokens, its keys given (no JWKS fetch)."""
    keys = StaticKeySource(issuer.keys.public_keys())
    return TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", keys)], **options)


def hs256_token(secret: str, issuer: str = EXTERNAL, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user-7", "iss": issuer, "aud": EXTERNAL, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_a_configured_jwks_issuer_is_accepted(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    settings = settings_with(
        {"issuer": EXTERNAL, "audience": EXTERNAL, "jwks_url": jwks_server.url},
        own_jwks=jwks_server.url + "/own",
    )
    verifier = TokenVerifier.from_settings(settings.trusted_issuers(), http=http)

    principal = await verifier.verify(external.mint("better-auth-user-1"))

    assert principal.sub == "better-auth-user-1"
    assert principal.issuer == EXTERNAL
    assert jwks_server.requests == 1


async def test_an_issuer_from_the_environment_variable_is_accepted(
    jwks_server: JWKSServer,
    external: TestIssuer,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "EXTRA_TRUSTED_ISSUERS",
        f'[{{"issuer": "{EXTERNAL}", "audience": "{EXTERNAL}", "jwks_url": "{jwks_server.url}"}}]',
    )
    settings = ServiceSettings(_env_file=None)
    verifier = TokenVerifier.from_settings(settings.trusted_issuers(), http=http)

    principal = await verifier.verify(external.mint("from-env"))

    assert principal.sub == "from-env"


async def test_an_issuer_that_is_not_configured_is_rejected_without_a_fetch(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    settings = settings_with(own_jwks=jwks_server.url)
    verifier = TokenVerifier.from_settings(settings.trusted_issuers(), http=http)

    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("better-auth-user-1"))
    assert jwks_server.requests == 0


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "todo-platform"}, {"exp": int(time.time()) - 3600}],
    ids=["audience of another issuer", "expired"],
)
async def test_a_configured_issuers_token_still_gets_every_check(
    jwks_server: JWKSServer,
    external: TestIssuer,
    http: httpx.AsyncClient,
    overrides: dict[str, Any],
) -> None:
    source = JWKSKeySource(jwks_server.url, http=http)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])

    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("u1", **overrides))


async def test_a_key_the_issuer_does_not_publish_is_rejected(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    impostor = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    source = JWKSKeySource(jwks_server.url, http=http)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])

    with pytest.raises(InvalidToken):
        await verifier.verify(impostor.mint("u1"))
    with pytest.raises(InvalidToken):
        await verifier.verify(impostor.mint("u1", headers={"kid": external.key.kid}))


async def test_a_configured_hs256_issuer_is_accepted() -> None:
    settings = settings_with(
        {"issuer": EXTERNAL, "audience": EXTERNAL, "hs256_secret": SECRET},
        own_jwks="http://127.0.0.1:9/unused",
    )
    verifier = TokenVerifier.from_settings(settings.trusted_issuers())

    principal = await verifier.verify(hs256_token(SECRET))

    assert principal.sub == "user-7"
    assert principal.issuer == EXTERNAL


async def test_hs256_tokens_are_rejected_when_not_configured_or_signed_otherwise() -> None:
    unconfigured = TokenVerifier.from_settings(
        settings_with(own_jwks="http://127.0.0.1:9/unused").trusted_issuers()
    )
    configured = TokenVerifier.from_settings(
        settings_with(
            {"issuer": EXTERNAL, "audience": EXTERNAL, "hs256_secret": SECRET},
            own_jwks="http://127.0.0.1:9/unused",
        ).trusted_issuers()
    )

    with pytest.raises(InvalidToken):
        await unconfigured.verify(hs256_token(SECRET))
    with pytest.raises(InvalidToken):
        await configured.verify(hs256_token("another-secret-that-is-32-characters-long"))
    # Our own issuer is pinned to EdDSA: the shared secret cannot mint tokens in its name.
    with pytest.raises(InvalidToken):
        await configured.verify(hs256_token(SECRET, issuer="todo-platform-auth"))


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
async def test_a_token_in_another_algorithm_is_refused_before_any_key_is_fetched(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient, algorithm: str
) -> None:
    # The issuer's algorithm is checked before its keys are looked up: forged tokens naming
    # a new kid in another algorithm must not make the verifier fetch the issuer's JWKS.
    source = JWKSKeySource(jwks_server.url, http=http)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    now = int(time.time())
    claims = {"sub": "u1", "iss": EXTERNAL, "aud": EXTERNAL, "iat": now, "exp": now + 600}
    key = SECRET if algorithm == "HS256" else None
    forged = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "forged"})

    with pytest.raises(InvalidToken):
        await verifier.verify(forged)
    assert jwks_server.requests == 0


async def test_an_eddsa_token_cannot_claim_an_hs256_issuer(external: TestIssuer) -> None:
    verifier = TokenVerifier.from_settings(
        [TrustedIssuer(issuer=EXTERNAL, audience=EXTERNAL, hs256_secret=SECRET)]
    )

    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("u1"))


@pytest.mark.parametrize(
    "entry",
    [
        {"issuer": EXTERNAL, "audience": EXTERNAL},
        {"issuer": EXTERNAL, "audience": EXTERNAL, "jwks_url": "http://x", "hs256_secret": SECRET},
        {"issuer": EXTERNAL, "audience": EXTERNAL, "hs256_secret": "too-short"},
        {"issuer": EXTERNAL, "audience": EXTERNAL, "jwks_url": "http://x", "algorithm": "none"},
        {"issuer": EXTERNAL, "audience": EXTERNAL, "jwks_url": "http://x", "algorithm": "HS256"},
    ],
    ids=["no key source", "two key sources", "short secret", "alg none", "hs256 over jwks"],
)
def test_a_misconfigured_trusted_issuer_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"trusted issuer|secret|algorithm"):
        TrustedIssuer.model_validate(entry)


async def test_an_unknown_kid_flood_fetches_at_most_once_per_cooldown(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    clock = ManualClock(1000.0)
    source = JWKSKeySource(jwks_server.url, http=http, cooldown=30.0, clock=clock)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    await verifier.verify(external.mint("u1"))
    assert jwks_server.requests == 1

    def flood() -> list[Any]:
        return [
            verifier.verify(external.mint("u1", headers={"kid": uuid.uuid4().hex}))
            for _ in range(50)
        ]

    within_cooldown = await asyncio.gather(*flood(), return_exceptions=True)
    clock.now += 31
    after_cooldown = await asyncio.gather(*flood(), return_exceptions=True)
    clock.now += 5
    again_within = await asyncio.gather(*flood(), return_exceptions=True)

    for outcome in (*within_cooldown, *after_cooldown, *again_within):
        assert isinstance(outcome, InvalidToken)
    assert jwks_server.requests == 2
    assert (await verifier.verify(external.mint("u2"))).sub == "u2"


async def test_a_key_published_later_is_found_after_the_cooldown(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    clock = ManualClock(1000.0)
    source = JWKSKeySource(jwks_server.url, http=http, cooldown=30.0, clock=clock)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    await verifier.verify(external.mint("u1"))
    rotated = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    jwks_server.document = {"keys": [*external.jwks()["keys"], *rotated.jwks()["keys"]]}

    clock.now += 31
    principal = await verifier.verify(rotated.mint("u3"))

    assert principal.sub == "u3"
    assert jwks_server.requests == 2


async def test_cached_keys_keep_working_while_the_jwks_server_is_down(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    clock = ManualClock(1000.0)
    source = JWKSKeySource(jwks_server.url, http=http, cooldown=30.0, max_age=600.0, clock=clock)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    await verifier.verify(external.mint("u1"))

    await jwks_server.stop()
    fresh = await verifier.verify(external.mint("u2"))
    clock.now += 601  # the cached keys are stale now: a refetch is tried and fails
    stale = await verifier.verify(external.mint("u3"))

    assert (fresh.sub, stale.sub) == ("u2", "u3")
    assert await source.ready()


async def test_stale_keys_are_used_at_once_and_renewed_in_the_background(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    clock = ManualClock(1000.0)
    source = JWKSKeySource(jwks_server.url, http=http, cooldown=30.0, max_age=600.0, clock=clock)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    await verifier.verify(external.mint("u1"))

    clock.now += 601
    principal = await verifier.verify(external.mint("u2"))

    assert principal.sub == "u2"
    for _ in range(200):  # the renewal runs as its own task; bounded wait for it
        if jwks_server.requests == 2:
            break
        await asyncio.sleep(0.01)
    assert jwks_server.requests == 2


async def test_a_verified_token_is_refused_once_its_key_is_withdrawn_from_the_jwks(
    jwks_server: JWKSServer, http: httpx.AsyncClient
) -> None:
    """A leaked signing key is taken out of the JWKS: once the verifier has the new key set,
    a token the leaked key signed is refused, even one it had verified (and cached) before,
    with whatever ``exp`` its forger chose."""
    leaked = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    successor = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    jwks_server.document = {"keys": [*leaked.jwks()["keys"], *successor.jwks()["keys"]]}
    clock = ManualClock(1000.0)
    source = JWKSKeySource(jwks_server.url, http=http, cooldown=30.0, max_age=600.0, clock=clock)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])
    forged = leaked.mint("victim", exp=int(time.time()) + 30 * 86400)
    assert (await verifier.verify(forged)).sub == "victim"

    jwks_server.document = successor.jwks()  # the leaked key withdrawn
    clock.now += 601  # the key set is stale: the next use renews it
    await verifier.verify(successor.mint("u2"))
    for _ in range(200):  # the renewal runs as its own task; bounded wait for it
        if jwks_server.requests == 2:
            break
        await asyncio.sleep(0.01)
    # The request reached the server; its answer is read under the source's lock, so this
    # waits for the new key set (and, inside the cooldown, fetches nothing itself).
    await source.refresh()
    assert jwks_server.requests == 2

    with pytest.raises(InvalidToken):
        await verifier.verify(leaked.mint("victim"))  # a new one
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)  # the one verified before the withdrawal
    assert (await verifier.verify(successor.mint("u3"))).sub == "u3"


@pytest.mark.parametrize(
    "answer",
    [
        PlainTextResponse("upstream down", status_code=503),
        PlainTextResponse("<html>not json</html>"),
        JSONResponse({"keys": "not a list"}),
        JSONResponse({"keys": [{"kid": "k1", "kty": "OKP", "crv": "Ed25519", "x": "!!"}]}),
    ],
    ids=["503", "not json", "not a jwks", "unusable key"],
)
async def test_a_bad_jwks_answer_rejects_tokens_without_crashing(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient, answer: Response
) -> None:
    jwks_server.broken = answer
    source = JWKSKeySource(jwks_server.url, http=http)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", source)])

    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("u1"))
    assert not await source.ready()
    assert jwks_server.requests == 1  # ready() was within the cooldown: no second fetch


async def test_one_unusable_key_does_not_hide_the_others(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    broken = {"kid": "broken", "kty": "OKP", "crv": "Ed25519", "x": "AAAA"}
    jwks_server.document = {"keys": [broken, *external.jwks()["keys"]]}
    verifier = TokenVerifier(
        [IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", JWKSKeySource(jwks_server.url, http=http))]
    )

    assert (await verifier.verify(external.mint("u1"))).sub == "u1"
    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("u1", headers={"kid": "broken"}))


async def test_a_token_naming_a_published_key_of_another_type_is_rejected(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_jwk = {**RSAAlgorithm.to_jwk(rsa_public, as_dict=True), "kid": "rsa-1", "alg": "RS256"}
    jwks_server.document = {"keys": [*external.jwks()["keys"], rsa_jwk]}
    verifier = TokenVerifier(
        [IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", JWKSKeySource(jwks_server.url, http=http))]
    )

    with pytest.raises(InvalidToken):
        await verifier.verify(external.mint("u1", headers={"kid": "rsa-1"}))


async def test_readiness_follows_the_jwks_endpoint(
    jwks_server: JWKSServer, external: TestIssuer, http: httpx.AsyncClient
) -> None:
    up = JWKSKeySource(jwks_server.url, http=http)
    assert await up.ready()

    await jwks_server.stop()
    down = JWKSKeySource(jwks_server.url, http=http)

    assert not await down.ready()


class CountingKeys(StaticKeySource):
    """Our static key source, counting lookups: a lookup means the token was verified anew."""

    def __init__(self, issuer: TestIssuer) -> None:
        super().__init__(issuer.keys.public_keys())
        self.lookups = 0

    async def key_for(self, kid: str | None) -> Any:
        self.lookups += 1
        return await super().key_for(kid)


async def test_the_verified_token_cache_serves_repeats_and_respects_exp() -> None:
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    keys = CountingKeys(issuer)
    clock = ManualClock(time.time())
    verifier = TokenVerifier(
        [IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", keys)], leeway=30, clock=clock
    )
    token = issuer.mint("u1", exp=int(clock.now) + 60)

    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert second is first
    assert keys.lookups == 1

    clock.now = first.expires_at + 29
    assert (await verifier.verify(token)).sub == "u1"
    clock.now = first.expires_at + 30
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_the_verified_token_cache_is_bounded() -> None:
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    keys = CountingKeys(issuer)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", keys)], cache_size=2)
    tokens = [issuer.mint(f"u{i}") for i in range(3)]

    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[2])
    assert keys.lookups == 3
    await verifier.verify(tokens[0])  # evicted by the third: verified anew

    assert keys.lookups == 4


async def test_a_rejected_token_is_not_cached() -> None:
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    keys = CountingKeys(issuer)
    verifier = TokenVerifier([IssuerKeys(EXTERNAL, EXTERNAL, "EdDSA", keys)])
    token = issuer.mint("u1", nbf=int(time.time()) + 3600)

    for _ in range(2):
        with pytest.raises(InvalidToken):
            await verifier.verify(token)

    assert keys.lookups == 2


async def test_the_default_leeway_past_exp_is_thirty_seconds() -> None:
    """The leeway of the auth service's verifier (it passes none): 29 s past ``exp`` a token
    still works, at 30 s it is refused, cached or not."""
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    now = int(time.time())
    clock = ManualClock(now + 29)
    verifier = static_verifier(issuer, clock=clock)
    token = issuer.mint("u1", iat=now - 60, nbf=now - 60, exp=now)

    assert (await verifier.verify(token)).sub == "u1"
    clock.now = now + 30
    with pytest.raises(InvalidToken):
        await verifier.verify(token)  # the cached verification
    with pytest.raises(InvalidToken):
        await static_verifier(issuer, clock=clock).verify(token)


@pytest.mark.parametrize("subject", ["", "u" * (SUBJECT_MAX + 1), 7], ids=["empty", "long", "int"])
async def test_a_token_whose_subject_cannot_key_a_users_rows_is_rejected(subject: object) -> None:
    """Every service stores the subject as the owner of the user's rows: a subject the
    platform would not issue (empty, not a string, longer than any issuer's ids) is refused."""
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    verifier = static_verifier(issuer)
    token = jwt.encode(
        {**issuer.claims("u1"), "sub": subject},
        issuer.key.private_key,
        algorithm="EdDSA",
        headers={"kid": issuer.key.kid},
    )
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_a_subject_of_the_longest_length_is_accepted() -> None:
    issuer = TestIssuer(issuer=EXTERNAL, audience=EXTERNAL)
    subject = "u" * SUBJECT_MAX

    principal = await static_verifier(issuer).verify(issuer.mint(subject))

    assert principal.sub == subject


async def test_a_verifier_from_settings_refuses_a_token_30_seconds_past_exp() -> None:
    """The leeway of the other services' and the gateway's verifiers (built from settings)."""
    settings = settings_with(
        {"issuer": EXTERNAL, "audience": EXTERNAL, "hs256_secret": SECRET},
        own_jwks="http://127.0.0.1:9/unused",
    )
    now = int(time.time())
    clock = ManualClock(now + 29)
    verifier = TokenVerifier.from_settings(settings.trusted_issuers(), clock=clock)
    token = hs256_token(SECRET, iat=now - 60, exp=now)

    assert (await verifier.verify(token)).sub == "user-7"
    clock.now = now + 30
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
