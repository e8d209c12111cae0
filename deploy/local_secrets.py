"""Local secrets for ``docker compose up`` and the local Kubernetes overlay; made once, kept after.

``python deploy/local_secrets.py compose`` (``make compose-env``) writes what is missing and
never replaces what exists:
- ``.env`` (mode 0600): ``POSTGRES_PASSWORD``, the Redis users' passwords (``REDIS_PASSWORD``,
  ``GATEWAY_REDIS_PASSWORD``, ``<SERVICE>_EVENTS_REDIS_PASSWORD`` for the auth, todo and chat
  workers) and one ``<ROLE>_DB_PASSWORD`` per database role, random and URL-safe (they go
  into URLs), and ``SECRETS_DIR``, the directory compose takes its secret files from;
- ``.data/compose/auth-signing-key.pem``: an Ed25519 signing key;
- ``.data/compose/web-session-keys``: the key list (one Fernet key) that encrypts the web
  client's stored tokens (rotation, in three steps: docs/deploy.md).
Then it (re)writes, from ``.env``, one file per secret in ``.data/compose/``: the database URLs
(each ``<NAME>`` set in ``.env``, such as a Neon ``AUTH_DATABASE_URL``, wins over the local
database's URL), the role passwords, Redis's configuration and URL, the OpenAI key (empty
unless ``CHAT_OPENAI_API_KEY`` is in ``.env``). Compose mounts each at ``/run/secrets/<name>``
and the containers read them through ``<VARIABLE>_FILE``: no secret is an environment variable
of a container. Compose bind-mounts the files as they are, so they are readable by the
containers' users (0644) inside a directory only its owner can enter (0700).
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

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SERVICES = ("auth", "todo", "chat", "web")
ROLES = [f"{service}_{kind}" for service in SERVICES for kind in ("migrator", "app")]
VARIABLES = [
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "GATEWAY_REDIS_PASSWORD",
    *(f"{worker.upper()}_EVENTS_REDIS_PASSWORD" for worker in ("auth", "todo", "chat")),
    *(f"{role.upper()}_DB_PASSWORD" for role in ROLES),
]
SECRETS_DIR = Path(".data") / "compose"
KEY_PATH = SECRETS_DIR / "auth-signing-key.pem"
WEB_KEYS_PATH = SECRETS_DIR / "web-session-keys"
WEBHOOK_KEYS_PATH = SECRETS_DIR / "todo-webhook-keys"
# Where the local PostgreSQL and Redis answer (compose network, local Kubernetes namespace).
LOCAL_DATABASE = "postgres:5432/todo"
LOCAL_REDIS = "redis:6379/0"
# The event streams in a database of their own on the same Redis.
LOCAL_EVENTS_REDIS = "redis:6379/1"


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
    existing = read_env(env_file)
    missing = [name for name in VARIABLES if name not in existing]
    lines = [f"{name}={secrets.token_urlsafe(24)}\n" for name in missing]
    if "SECRETS_DIR" not in existing:
        missing.append("SECRETS_DIR")
        lines.append(f"SECRETS_DIR=./{SECRETS_DIR.as_posix()}\n")
    if not missing:
        return []
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if env_file.stat().st_size:
            handle.write("\n")
        handle.write("# docker compose / local Kubernetes: local secrets (make compose-env)\n")
        handle.writelines(lines)
    return missing


def database_url(env: dict[str, str], role: str) -> str:
    return f"postgresql://{role}:{env[role.upper() + '_DB_PASSWORD']}@{LOCAL_DATABASE}"


# Redis's users (redis.conf). Each client reaches only its own keys with only the commands it
# needs. The internet-facing gateway holds the rate-limit counters and nothing else, so a
# gateway that is taken over cannot write a forged ``user.deleted`` (the todo and chat workers
# would purge that user) or a task event (the webhooks would sign and deliver it) onto the
# event streams, nor read or trim them. Each worker has a user of its own: only the auth
# worker may add to ``events.users`` and only the todo worker to ``events.tasks``; a consumer
# reads its streams through its group and adds only to their dead letters. The ``default``
# user (the health checks' ``redis-cli ping``) can only answer PING.
GATEWAY_REDIS_USER = "gateway"
# The keys the gateway's limits library writes (``limits``' RedisStorage.PREFIX) and the
# commands it sends: its Lua scripts (EVALSHA, SCRIPT LOAD when a script is not cached) and
# what they call (counters, the moving and sliding windows), GET and TTL for a refusal's
# window, DEL to clear one. A script runs with its caller's rights: these keys only.
GATEWAY_REDIS_RULES = (
    "resetchannels ~LIMITS:* -@all +ping +select +eval +evalsha +script|load +get +set +del "
    "+exists +incrby +expire +ttl +pttl +rename +lpush +lindex +ltrim"
)
# A consumer group's commands (shared/events.py), and the reads an operator needs to look at
# a stream and its dead letters (XLEN, XRANGE, XINFO).
_READS = "+xlen +xrange +xinfo"
_CONSUMER = f"+xreadgroup +xack +xautoclaim +xclaim +xpending +xgroup|create {_READS}"
# A publisher's: XADD, and what making room takes (shared/events.py: the groups' positions,
# XPENDING's summary, XTRIM of what every group has read and acknowledged).
_PUBLISHER = "+xadd +xtrim +xpending"
# Per worker: the root rules (keys, then commands), and a selector (in parentheses) that
# alone allows publishing, on the streams that worker writes. A command runs when the root or
# a selector allows both it and its keys, so a consumer's XADD onto the stream it reads is
# refused.
EVENTS_REDIS_RULES = {
    "auth": f"resetchannels ~events.users -@all +ping +select {_PUBLISHER} {_READS}",
    "todo": (
        "resetchannels ~events.users ~events.users.dead ~events.tasks ~events.tasks.dead "
        f"-@all +ping +select {_CONSUMER} "
        f"(~events.users.dead ~events.tasks ~events.tasks.dead {_PUBLISHER})"
    ),
    "chat": (
        "resetchannels ~events.users ~events.users.dead "
        f"-@all +ping +select {_CONSUMER} (~events.users.dead +xadd)"
    ),
}


def events_redis_user(worker: str) -> str:
    return f"{worker}-events"


def redis_url(env: dict[str, str]) -> str:
    return f"redis://{GATEWAY_REDIS_USER}:{env['GATEWAY_REDIS_PASSWORD']}@{LOCAL_REDIS}"


def events_redis_url(env: dict[str, str], worker: str) -> str:
    """The ``worker``'s URL of the event streams: ``<WORKER>_EVENTS_REDIS_URL`` in ``.env`` (a
    managed Redis, the worker's own user there), else a platform-wide ``EVENTS_REDIS_URL``
    (one user for every worker: the managed Redis's ACLs are then its operator's), else the
    worker's own user on the local Redis."""
    password = env[f"{worker.upper()}_EVENTS_REDIS_PASSWORD"]
    return (
        env.get(f"{worker.upper()}_EVENTS_REDIS_URL")
        or env.get("EVENTS_REDIS_URL")
        or f"redis://{events_redis_user(worker)}:{password}@{LOCAL_EVENTS_REDIS}"
    )


# Redis's memory (docs/deploy.md, "Redis's memory"): under the container's 576 MiB (compose's
# mem_limit, the local overlay's limit), leaving room for the append-only file's rewrite (a
# fork whose copied pages count against the container) and the clients' buffers; above what
# the streams and their dead letters hold at their lengths of their largest events. Full,
# Redis refuses a write with an error (``noeviction``) rather than evict a key: a stream entry
# not yet read by every group, or a rate-limit counter, is never dropped in silence.
REDIS_MAXMEMORY_MB = 384


def redis_config(env: dict[str, str]) -> str:
    """Redis for rate-limit counters and event streams: a user per client, each with a password
    and only its own keys and commands (no client connects without a password, and none is an
    administrator), an append-only file (fsynced every second) so the streams survive a
    restart, no snapshots, and a memory bound that refuses writes once reached."""
    users = [
        f"user default on >{env['REDIS_PASSWORD']} resetkeys resetchannels -@all +ping",
        f"user {GATEWAY_REDIS_USER} on >{env['GATEWAY_REDIS_PASSWORD']} {GATEWAY_REDIS_RULES}",
        *(
            f"user {events_redis_user(worker)} on "
            f">{env[f'{worker.upper()}_EVENTS_REDIS_PASSWORD']} {rules}"
            for worker, rules in EVENTS_REDIS_RULES.items()
        ),
    ]
    return "".join(line + "\n" for line in users) + (
        'save ""\nappendonly yes\nappendfsync everysec\ndir /data\n'
        f"maxmemory {REDIS_MAXMEMORY_MB}mb\nmaxmemory-policy noeviction\n"
    )


def compose_secrets(env: dict[str, str]) -> dict[str, str]:
    """The contents of each compose secret file, by file name."""
    files = {
        "postgres-password": env["POSTGRES_PASSWORD"],
        "bootstrap-database-url": env.get("BOOTSTRAP_DATABASE_URL")
        or f"postgresql://postgres:{env['POSTGRES_PASSWORD']}@{LOCAL_DATABASE}",
        "redis-password": env["REDIS_PASSWORD"],
        "redis.conf": redis_config(env),
        "gateway-redis-url": env.get("GATEWAY_RATE_LIMIT_STORAGE_URI") or redis_url(env),
        **{
            f"{worker}-events-redis-url": events_redis_url(env, worker)
            for worker in EVENTS_REDIS_RULES
        },
        "chat-openai-api-key": env.get("CHAT_OPENAI_API_KEY", ""),
    }
    for role in ROLES:
        files[f"{role.replace('_', '-')}-db-password"] = env[f"{role.upper()}_DB_PASSWORD"]
    for service in SERVICES:
        for kind, role in (("database-url", "app"), ("migration-database-url", "migrator")):
            variable = f"{service}_{kind.replace('-', '_')}".upper()
            files[f"{service}-{kind}"] = env.get(variable) or database_url(env, f"{service}_{role}")
    return files


def write_secret_files(root: Path) -> None:
    """(Re)write every compose secret file from ``.env``: they follow it."""
    directory = root / SECRETS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name, content in compose_secrets(read_env(root / ".env")).items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        path.chmod(0o644)


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


def write_web_session_keys(root: Path) -> bool:
    """One Fernet key for the web client's stored tokens, made once (like the signing key)."""
    return write_fernet_key(root / WEB_KEYS_PATH)


def write_webhook_keys(root: Path) -> bool:
    """One Fernet key sealing the todo service's webhook secrets, made once."""
    return write_fernet_key(root / WEBHOOK_KEYS_PATH)


def write_fernet_key(path: Path) -> bool:
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
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
    keys = (KEY_PATH, WEB_KEYS_PATH, WEBHOOK_KEYS_PATH)
    if missing or not all((root / path).exists() for path in keys):
        raise SystemExit("missing local secrets: run `make compose-env` first")

    manifests = [
        secret(
            f"{service}-database",
            {
                "url": database_url(env, f"{service}_app"),
                "migration-url": database_url(env, f"{service}_migrator"),
            },
        )
        for service in SERVICES
    ]
    manifests += [
        secret("auth-signing-key", {"signing-keys.pem": (root / KEY_PATH).read_text()}),
        secret("web-session-keys", {"session-keys": (root / WEB_KEYS_PATH).read_text()}),
        secret("todo-webhook-keys", {"webhook-keys": (root / WEBHOOK_KEYS_PATH).read_text()}),
        secret("gateway-redis", {"storage-uri": redis_url(env)}),
        *(
            secret(f"{worker}-events-redis", {"url": events_redis_url(env, worker)})
            for worker in EVENTS_REDIS_RULES
        ),
        secret("redis", {"redis.conf": redis_config(env)}),
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
    web_keys = write_web_session_keys(root)
    webhook_keys = write_webhook_keys(root)
    write_secret_files(root)
    sys.stdout.write(
        f".env: {'added ' + ', '.join(added) if added else 'every password already set'}\n"
        f"{KEY_PATH}: {'created' if created else 'kept'}\n"
        f"{WEB_KEYS_PATH}: {'created' if web_keys else 'kept'}\n"
        f"{WEBHOOK_KEYS_PATH}: {'created' if webhook_keys else 'kept'}\n"
        f"{SECRETS_DIR}: secret files written from .env\n"
    )


if __name__ == "__main__":
    main()
