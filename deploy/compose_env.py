"""``make compose-env``: the local secrets ``docker compose up`` needs, made once, kept after.

Writes what is missing and never replaces what exists:
- ``.env`` (mode 0600): ``POSTGRES_PASSWORD`` and one ``<ROLE>_DB_PASSWORD`` per database role,
  random and URL-safe (they go into database URLs);
- ``.data/compose/auth-signing-key.pem``: an Ed25519 signing key, mounted into the auth service
  as a compose secret. Compose bind-mounts the file as it is, so it is readable by the
  container's user (0644) inside a directory only its owner can enter (0700).
Both paths are ignored by git and by the Docker build context.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROLES = [
    f"{service}_{kind}" for service in ("auth", "todo", "chat") for kind in ("migrator", "app")
]
VARIABLES = ["POSTGRES_PASSWORD", *(f"{role.upper()}_DB_PASSWORD" for role in ROLES)]
KEY_PATH = Path(".data") / "compose" / "auth-signing-key.pem"


def existing_names(env_file: Path) -> set[str]:
    if not env_file.exists():
        return set()
    names = set()
    for line in env_file.read_text().splitlines():
        name, separator, _ = line.strip().partition("=")
        if separator and not name.startswith("#"):
            names.add(name.removeprefix("export ").strip())
    return names


def write_passwords(env_file: Path) -> list[str]:
    missing = [name for name in VARIABLES if name not in existing_names(env_file)]
    if not missing:
        return []
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if env_file.stat().st_size:
            handle.write("\n")
        handle.write("# docker compose: local database passwords (make compose-env)\n")
        for name in missing:
            handle.write(f"{name}={secrets.token_urlsafe(24)}\n")
    return missing


def write_signing_key(root: Path) -> bool:
    path = root / KEY_PATH
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    root = parser.parse_args().root
    added = write_passwords(root / ".env")
    created = write_signing_key(root)
    sys.stdout.write(
        f".env: {'added ' + ', '.join(added) if added else 'every password already set'}\n"
        f"{KEY_PATH}: {'created' if created else 'kept'}\n"
    )


if __name__ == "__main__":
    main()
