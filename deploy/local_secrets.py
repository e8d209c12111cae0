"""Local secrets for ``docker compose up`` and the local Kubernetes overlay; made once, kept after.

``python deploy/local_secrets.py compose`` (``make compose-env``) writes what is missing and
never replaces what exists:
- ``.env`` (mode 0600): ``POSTGRES_PASSWORD`` and one ``<ROLE>_DB_PASSWORD`` per database role,
  random and URL-safe (they go into database URLs);
- ``.data/compose/auth-signing-key.pem``: an Ed25519 signing key, mounted into the auth service
  as a compose secret. Compose bind-mounts the file as it is, so it is readable by the
  container's user (0644) inside a directory only its owner can enter (0700).
Both paths are ignored by git and by the Docker build context.

``python deploy/local_secrets.py k8s`` prints, from those same values, the Secrets the
manifests under ``deploy/k8s`` reference, for ``| kubectl apply -n todo-platform -f -`` on a
local cluster. In production the Secrets come from the platform's secret store instead.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SERVICES = ("auth", "todo", "chat")
ROLES = [f"{service}_{kind}" for service in SERVICES for kind in ("migrator", "app")]
VARIABLES = ["POSTGRES_PASSWORD", *(f"{role.upper()}_DB_PASSWORD" for role in ROLES)]
KEY_PATH = Path(".data") / "compose" / "auth-signing-key.pem"
# Where the local overlay's PostgreSQL and Redis answer inside the namespace.
LOCAL_DATABASE = "postgres:5432/todo"
LOCAL_REDIS = "redis://redis:6379/0"


def read_env(env_file: Path) -> dict[str, str]:
    if not env_file.exists():
        return {}
    values = {}
    for line in env_file.read_text().splitlines():
        name, separator, value = line.strip().partition("=")
        if separator and not name.startswith("#"):
            values[name.removeprefix("export ").strip()] = value.strip()
    return values


def write_passwords(env_file: Path) -> list[str]:
    missing = [name for name in VARIABLES if name not in read_env(env_file)]
    if not missing:
        return []
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if env_file.stat().st_size:
            handle.write("\n")
        handle.write("# docker compose / local Kubernetes: database passwords (make compose-env)\n")
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


def secret(name: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "todo-platform"}},
        "type": "Opaque",
        "stringData": data,
    }


def kubernetes_secrets(root: Path) -> list[dict[str, object]]:
    """The Secrets deploy/k8s references, filled with the local values."""
    env = read_env(root / ".env")
    missing = [name for name in VARIABLES if not env.get(name)]
    if missing or not (root / KEY_PATH).exists():
        raise SystemExit("missing local secrets: run `make compose-env` first")

    def url(role: str) -> str:
        return f"postgresql://{role}:{env[role.upper() + '_DB_PASSWORD']}@{LOCAL_DATABASE}"

    manifests = [
        secret(
            f"{service}-database",
            {"url": url(f"{service}_app"), "migration-url": url(f"{service}_migrator")},
        )
        for service in SERVICES
    ]
    manifests += [
        secret("auth-signing-key", {"signing-keys.pem": (root / KEY_PATH).read_text()}),
        secret("gateway-redis", {"storage-uri": LOCAL_REDIS}),
        secret(
            "db-bootstrap",
            {
                "admin-url": f"postgresql://postgres:{env['POSTGRES_PASSWORD']}@{LOCAL_DATABASE}",
                **{
                    f"{role.replace('_', '-')}-password": env[f"{role.upper()}_DB_PASSWORD"]
                    for role in ROLES
                },
            },
        ),
        secret("postgres-admin", {"password": env["POSTGRES_PASSWORD"]}),
    ]
    return manifests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["compose", "k8s"])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    arguments = parser.parse_args()
    root: Path = arguments.root
    if arguments.command == "k8s":
        # JSON is YAML: one document per Secret, for kubectl apply -f -.
        for manifest in kubernetes_secrets(root):
            sys.stdout.write("---\n" + json.dumps(manifest, indent=2) + "\n")
        return
    added = write_passwords(root / ".env")
    created = write_signing_key(root)
    sys.stdout.write(
        f".env: {'added ' + ', '.join(added) if added else 'every password already set'}\n"
        f"{KEY_PATH}: {'created' if created else 'kept'}\n"
    )


if __name__ == "__main__":
    main()
