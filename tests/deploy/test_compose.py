"""docker-compose.yml (+ the local-database override) as compose resolves it.

``docker-compose config`` (Debian's package; it needs no engine) validates the files and prints
the merged result; these tests read that result (the ``local`` fixture). The environment file
is the one ``make compose-env`` writes, so that step is tested too.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from shared.settings import FILE_SUFFIX, PLATFORM_VARIABLES
from tests.deploy.compose import (
    compose_config,
    compose_env,
    mounted_secrets,
    read_env,
    secret_files,
)
from tests.deploy.support import PROCESS_VARIABLES, REPO, settings_fields

SERVICES = {
    "auth": ("auth_service", "AUTH_"),
    "todo": ("todo_service", "TODO_"),
    "chat": ("chat_service", "CHAT_"),
    "gateway": ("gateway", "GATEWAY_"),
    "web": ("web_service", "WEB_"),
}
JOBS = {"bootstrap", "migrate-auth", "migrate-todo", "migrate-chat", "migrate-web"}
# The services with a schema (and a migration job and two database roles each).
DATABASE_SERVICES = ("auth", "todo", "chat", "web")


def test_compose_env_makes_the_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ENVIRONMENT=development\nAUTH_APP_DB_PASSWORD=mine\n")
    first = compose_env(tmp_path)
    env = read_env(tmp_path / ".env")
    key = tmp_path / ".data" / "compose" / "auth-signing-key.pem"
    assert env["AUTH_APP_DB_PASSWORD"] == "mine"
    assert env["ENVIRONMENT"] == "development"
    assert len(env["POSTGRES_PASSWORD"]) >= 32
    assert len(env["REDIS_PASSWORD"]) >= 32
    assert len({env[name] for name in env if name.endswith("PASSWORD")}) == 14
    secrets_dir = tmp_path / env["SECRETS_DIR"]
    assert (secrets_dir / "todo-app-db-password").read_text() == env["TODO_APP_DB_PASSWORD"]
    assert stat.S_IMODE((secrets_dir / "redis.conf").stat().st_mode) == 0o644
    assert "created" in first
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    web_keys = secrets_dir / "web-session-keys"
    (web_key,) = web_keys.read_text().split()
    Fernet(web_key.encode())  # a valid key
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) in {0o600, 0o644}

    pem = key.read_text()
    second = compose_env(tmp_path)
    assert read_env(tmp_path / ".env") == env
    assert key.read_text() == pem
    assert web_keys.read_text().split() == [web_key]
    assert "every password already set" in second
    assert "kept" in second


def test_compose_refuses_to_start_without_the_passwords(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [executable, "--project-directory", str(REPO), "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode != 0
    assert "make compose-env" in result.stderr


def test_only_the_gateway_publishes_a_port_and_on_loopback_by_default(local: Any) -> None:
    published = {name for name, service in local["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    (port,) = local["services"]["gateway"]["ports"]
    # Compose 1.x prints the short form, 2.x the long one.
    if isinstance(port, str):
        assert port.removesuffix("/tcp") == "127.0.0.1:8000:8000"
    else:
        assert (port["host_ip"], str(port["published"]), port["target"]) == (
            "127.0.0.1",
            "8000",
            8000,
        )


def test_every_long_running_service_has_a_healthcheck_and_jobs_run_once(local: Any) -> None:
    for name, service in local["services"].items():
        if name in JOBS:
            assert service["restart"] == "no", name
            continue
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name


def test_services_and_jobs_start_in_order(local: Any) -> None:
    services = local["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits_for("bootstrap") == {"postgres": "service_healthy"}
    for service in DATABASE_SERVICES:
        assert waits_for(f"migrate-{service}") == {"bootstrap": "service_completed_successfully"}
        assert waits_for(service)[f"migrate-{service}"] == "service_completed_successfully"
    assert waits_for("gateway")["redis"] == "service_healthy"
    assert waits_for("gateway")["auth"] == "service_healthy"


def test_each_process_uses_its_least_privilege_role(local: Any, env_file: Path) -> None:
    services = local["services"]
    passwords = read_env(env_file)
    files = secret_files(local, env_file)
    for service in DATABASE_SERVICES:
        prefix = SERVICES[service][1]
        runtime_secret = mounted_secrets(services[service])[f"{prefix}DATABASE_URL"]
        runtime = make_url(files[runtime_secret])
        assert runtime.username == f"{service}_app"
        assert runtime.password == passwords[f"{prefix}APP_DB_PASSWORD"]
        migration_secrets = mounted_secrets(services[f"migrate-{service}"])
        assert set(migration_secrets) == {f"{prefix}MIGRATION_DATABASE_URL"}
        migration = make_url(files[migration_secrets[f"{prefix}MIGRATION_DATABASE_URL"]])
        assert migration.username == f"{service}_migrator"
        assert migration.password == passwords[f"{prefix}MIGRATOR_DB_PASSWORD"]
        assert services[f"migrate-{service}"]["command"] == [
            "python",
            "-m",
            "shared.migrate",
            SERVICES[service][0],
        ]
    bootstrap = mounted_secrets(services["bootstrap"])
    assert make_url(files[bootstrap.pop("BOOTSTRAP_DATABASE_URL")]).username == "postgres"
    assert len(bootstrap) == 8
    for name, secret in bootstrap.items():
        assert files[secret] == passwords[name]
    assert not any("DATABASE_URL" in name for name in services["gateway"]["environment"])


def test_no_secret_is_an_environment_variable_of_any_container(local: Any, env_file: Path) -> None:
    """Secrets reach containers as files only: `docker inspect` shows no secret value."""
    values = {value for value in secret_files(local, env_file).values() if value}
    values |= {value for name, value in read_env(env_file).items() if name.endswith("PASSWORD")}
    for name, service in local["services"].items():
        environment = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        for key, value in environment.items():
            assert not any(secret in value for secret in values), (name, key)
            assert "@" not in value, (name, key)
            secret_like = ("PASSWORD", "DATABASE_URL", "API_KEY", "STORAGE_URI", "SIGNING_KEYS")
            if any(word in key for word in secret_like):
                assert key.endswith(FILE_SUFFIX), (name, key)
        assert not any(secret in " ".join(service.get("command") or []) for secret in values)


def test_the_signing_key_is_a_mounted_secret_and_in_no_environment(local: Any) -> None:
    auth = local["services"]["auth"]
    assert mounted_secrets(auth)["AUTH_SIGNING_KEY"] == "auth_signing_key"
    assert local["secrets"]["auth_signing_key"]["file"].endswith(
        ".data/compose/auth-signing-key.pem"
    )
    for name, service in local["services"].items():
        environment = service.get("environment") or {}
        assert "AUTH_SIGNING_KEYS" not in environment, name
        assert not any("PRIVATE KEY" in str(value) for value in environment.values()), name
        if name != "auth":
            sources = {secret["source"] for secret in service.get("secrets", [])}
            assert "auth_signing_key" not in sources, name


def test_the_web_services_keys_are_a_mounted_secret_of_the_web_service_only(
    local: Any, env_file: Path
) -> None:
    web = local["services"]["web"]
    assert mounted_secrets(web)["WEB_SESSION_KEYS"] == "web_session_keys"
    Fernet(secret_files(local, env_file)["web_session_keys"].split()[0].encode())
    for name, service in local["services"].items():
        if name != "web":
            sources = {secret["source"] for secret in service.get("secrets", [])}
            assert "web_session_keys" not in sources, name


def test_the_webhook_keys_are_a_mounted_secret_of_the_todo_service_and_worker_only(
    local: Any, env_file: Path
) -> None:
    for name in ("todo", "todo-worker"):
        assert mounted_secrets(local["services"][name])["TODO_WEBHOOK_KEYS"] == "todo_webhook_keys"
    Fernet(secret_files(local, env_file)["todo_webhook_keys"].split()[0].encode())
    for name, service in local["services"].items():
        if name not in {"todo", "todo-worker"}:
            sources = {secret["source"] for secret in service.get("secrets", [])}
            assert "todo_webhook_keys" not in sources, name


def test_the_gateway_believes_forwarded_addresses_from_the_web_services_fixed_address(
    local: Any,
) -> None:
    services = local["services"]
    web_address = services["web"]["networks"]["default"]["ipv4_address"]
    gateway = services["gateway"]
    assert gateway["environment"]["GATEWAY_TRUSTED_FORWARDERS"] == web_address
    assert gateway["environment"]["GATEWAY_WEB_URL"] == "http://web:8004"
    assert "GATEWAY_TRUSTED_PROXIES" not in gateway["environment"]
    assert web_address != gateway["networks"]["default"]["ipv4_address"]
    # Outside the range compose hands out, so no other container can get it.
    (config,) = local["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(web_address) not in ipaddress.ip_network(config["ip_range"])
    # The web service believes the gateway's X-Forwarded-For (the browser's address) only.
    gateway_address = gateway["networks"]["default"]["ipv4_address"]
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == gateway_address
    assert services["web"]["environment"]["WEB_GATEWAY_URL"] == "http://gateway:8000"


def test_our_containers_are_read_only_without_capabilities(local: Any) -> None:
    for name in [*SERVICES, *JOBS]:
        service = local["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["build"]["target"] in SERVICES, name


# What the redis and postgres images' entrypoints need: hand the data to the image's user and
# switch to it.
ENTRYPOINT_CAPABILITIES = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}


@pytest.mark.parametrize("name", ["redis", "postgres"])
def test_the_images_we_do_not_build_keep_only_their_entrypoints_capabilities(
    local: Any, name: str
) -> None:
    service = local["services"][name]
    assert service["cap_drop"] == ["ALL"]
    assert set(service["cap_add"]) == ENTRYPOINT_CAPABILITIES
    assert "no-new-privileges:true" in service["security_opt"]


def test_the_gateway_shares_rate_limits_through_a_redis_that_wants_a_password(
    local: Any, env_file: Path
) -> None:
    files = secret_files(local, env_file)
    env = read_env(env_file)
    storage = mounted_secrets(local["services"]["gateway"])["GATEWAY_RATE_LIMIT_STORAGE_URI"]
    assert files[storage] == f"redis://gateway:{env['GATEWAY_REDIS_PASSWORD']}@redis:6379/0"
    redis = local["services"]["redis"]
    assert redis["command"] == ["redis-server", "/run/secrets/redis_conf"]
    assert {secret["source"] for secret in redis["secrets"]} == {"redis_conf", "redis_password"}
    # What each user may do is tested on a real Redis (test_redis_users.py).
    assert f"user default on >{env['REDIS_PASSWORD']} " in files["redis_conf"]
    assert f"user gateway on >{env['GATEWAY_REDIS_PASSWORD']} " in files["redis_conf"]
    assert "/run/secrets/redis_password" in " ".join(redis["healthcheck"]["test"])


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_variable_given_to_a_service_is_one_it_reads(local: Any, service: str) -> None:
    package, prefix = SERVICES[service]
    fields = settings_fields(package)
    known = set(PLATFORM_VARIABLES.values()) | PROCESS_VARIABLES
    for name in local["services"][service]["environment"]:
        if name in known:
            continue
        assert name.startswith(prefix), name
        assert name.removeprefix(prefix).lower() in fields, name


def test_without_the_override_there_is_no_local_database(tmp_path: Path) -> None:
    neon = "postgresql://todo_app:pw@ep-x-pooler.eu-central-1.aws.neon.tech/todo?sslmode=require"
    (tmp_path / ".env").write_text(f"TODO_DATABASE_URL={neon}\n")
    compose_env(tmp_path)
    config = compose_config(tmp_path / ".env", "docker-compose.yml")
    assert "postgres" not in config["services"]
    todo = mounted_secrets(config["services"]["todo"])
    assert secret_files(config, tmp_path / ".env")[todo["TODO_DATABASE_URL"]] == neon
    assert "depends_on" not in config["services"]["bootstrap"]


def test_image_names_are_variables_whose_defaults_are_the_public_images(
    local: Any, env_file: Path
) -> None:
    services = local["services"]
    assert services["postgres"]["image"] == "postgres:17-bookworm"
    assert services["redis"]["image"] == "redis:7.4-bookworm"
    for name in SERVICES:
        assert services[name]["build"]["args"] == {
            "PYTHON_IMAGE": "python:3.11-slim-bookworm",
            "UV_IMAGE": "ghcr.io/astral-sh/uv:0.13.9",
        }
    standins = {
        name: f"todo-platform/standin-{name.split('_')[0].lower()}:test"
        for name in ("POSTGRES_IMAGE", "REDIS_IMAGE", "PYTHON_IMAGE", "UV_IMAGE")
    }
    config = compose_config(
        env_file, "docker-compose.yml", "docker-compose.override.yml", extra_env=standins
    )
    assert config["services"]["postgres"]["image"] == standins["POSTGRES_IMAGE"]
    assert config["services"]["redis"]["image"] == standins["REDIS_IMAGE"]
    assert config["services"]["gateway"]["build"]["args"]["UV_IMAGE"] == standins["UV_IMAGE"]
