"""Signing keys: RFC 7638 key ids, rotation (oldest first, the last signs), development keys."""

from __future__ import annotations

import base64
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from auth_service.app import create_app
from auth_service.keys import SigningKey, generate_pem, load_key_set, parse_pem_keys
from auth_service.settings import AuthSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.auth.factories import assert_unauthorized, bearer, signed_up
from tests.support.serving import serve

# RFC 8037, appendix A.1 (the key) and A.3 (its RFC 7638 thumbprint).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_key_id_is_the_rfc_7638_thumbprint() -> None:
    private = Ed25519PrivateKey.from_private_bytes(b64decode(RFC8037_D))

    key = SigningKey.from_private_key(private)

    assert key.kid == RFC8037_THUMBPRINT
    assert key.public_jwk()["x"] == RFC8037_X


OLD_PEM = generate_pem()
NEW_PEM = generate_pem()
OLD = parse_pem_keys(OLD_PEM)[0]
NEW = parse_pem_keys(NEW_PEM)[0]


@pytest.fixture
def rotated_settings(auth_settings: AuthSettings) -> AuthSettings:
    return auth_settings.model_copy(update={"signing_keys": SecretStr(OLD_PEM + NEW_PEM)})


@pytest.fixture
async def rotated_client(
    rotated_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(rotated_settings, db=database, clock=clock)) as client:
        yield client


async def test_the_last_configured_key_signs(rotated_client: httpx.AsyncClient) -> None:
    pair = await signed_up(rotated_client)

    assert jwt.get_unverified_header(pair["access_token"])["kid"] == NEW.kid


async def test_every_configured_key_is_published_oldest_first(
    rotated_client: httpx.AsyncClient,
) -> None:
    response = await rotated_client.get("/api/auth/jwks")

    assert [jwk["kid"] for jwk in response.json()["keys"]] == [OLD.kid, NEW.kid]


async def test_tokens_signed_by_an_older_key_still_verify_until_it_is_retired(
    rotated_settings: AuthSettings,
    database: Database,
    clock: FrozenClock,
) -> None:
    # Signed while OLD was the only key; NEW has since been added after it.
    async with serve(
        create_app(
            rotated_settings.model_copy(update={"signing_keys": SecretStr(OLD_PEM)}),
            db=database,
            clock=clock,
        )
    ) as client:
        pair = await signed_up(client)
    async with serve(create_app(rotated_settings, db=database, clock=clock)) as client:
        during_rotation = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))
    retired = rotated_settings.model_copy(update={"signing_keys": SecretStr(NEW_PEM)})
    async with serve(create_app(retired, db=database, clock=clock)) as client:
        after_retirement = await client.get("/api/auth/me", headers=bearer(pair["access_token"]))

    assert during_rotation.status_code == 200
    assert_unauthorized(after_retirement, "invalid_token")


def test_a_development_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "signing.pem"
    settings = AuthSettings(_env_file=None, environment="development", dev_key_file=key_file)

    first = load_key_set(settings)
    second = load_key_set(settings)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.current.kid == second.current.kid


def test_production_refuses_to_start_without_configured_keys(tmp_path: Path) -> None:
    settings = AuthSettings(
        _env_file=None, environment="production", dev_key_file=tmp_path / "signing.pem"
    )

    with pytest.raises(RuntimeError, match="AUTH_SIGNING_KEYS"):
        load_key_set(settings)
    assert not (tmp_path / "signing.pem").exists()


def test_keys_can_come_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.pem"
    key_file.write_text(OLD_PEM + NEW_PEM)
    settings = AuthSettings(_env_file=None, environment="production", signing_key_file=key_file)

    keys = load_key_set(settings)

    assert [key.kid for key in keys.keys] == [OLD.kid, NEW.kid]
    assert keys.current.kid == NEW.kid


@pytest.mark.parametrize(
    "value",
    ["", "not a pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"],
    ids=["empty", "text", "public key"],
)
def test_a_signing_key_value_without_a_private_key_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="no PKCS#8 private key"):
        parse_pem_keys(value)
