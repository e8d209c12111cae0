"""Encryption at rest of short secrets a service must read back (the web client's stored
tokens, the todo service's webhook signing secrets).

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a key list, newest first:
the first key encrypts, every key decrypts. Replicas run old and new settings side by side
during a rolling restart, so a key is rotated by adding it last everywhere (it opens, seals
nothing), then putting it first, resealing what is stored (``SecretBox.reseal``) and
removing the old one once nothing sealed under it remains: a key put first at once seals
what the replicas still without it cannot open (docs/deploy.md, docs/webhooks.md). Keys
come from a secret setting (a value or its ``_FILE``); in development a key is generated on
first run under ``.data/keys/``, never outside it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

logger = logging.getLogger(__name__)

__all__ = ["InvalidToken", "SecretBox", "load_secret_box", "parse_keys"]


class SecretBox:
    """Encrypts and decrypts short secrets with the configured keys."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, token: bytes, *, ttl: int | None = None) -> str:
        """The value; ``InvalidToken`` when forged, made with an unknown key or (``ttl``)
        older than that many seconds."""
        return self._fernet.decrypt(token, ttl=ttl).decode()

    def reseal(self, token: bytes) -> bytes:
        """The same value under the newest key (rotation)."""
        return self._fernet.rotate(token)


def parse_keys(text: str) -> list[bytes]:
    """Keys one per line (blank lines and ``#`` comments ignored), newest first."""
    keys = [
        line.strip().encode()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    for key in keys:
        Fernet(key)  # raises ValueError on anything but 32 url-safe base64 bytes
    if not keys:
        raise ValueError("no key found in the key value")
    return keys


def load_secret_box(
    keys: SecretStr | None, *, variable: str, is_development: bool, dev_key_file: Path
) -> SecretBox:
    """A box over ``keys`` (the setting ``variable`` or its ``_FILE``); without them, in
    development only, a key generated once into ``dev_key_file`` (mode 0600)."""
    if keys is not None:
        return SecretBox(parse_keys(keys.get_secret_value()))
    if not is_development:
        raise RuntimeError(f"{variable} or {variable}_FILE is required in production")
    return SecretBox(parse_keys(_dev_keys(dev_key_file)))


def _dev_keys(path: Path) -> str:
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key().decode()
    # Created with 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    logger.warning("generated a development key at %s", path)
    return key
