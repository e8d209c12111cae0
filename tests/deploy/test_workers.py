"""The workers (``python -m <service>.worker``) in compose and Kubernetes: each runs its
service's image with its own command, is health-checked on its loops, reads only variables
its settings know, and reaches Redis's events database with the password, as a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from shared.settings import PLATFORM_VARIABLES
from tests.deploy import compose, kubernetes
from tests.deploy.support import PROCESS_VARIABLES, settings_fields

WORKERS = {
    "auth": ("auth_service", "AUTH_", 8011),
    "todo": ("todo_service", "TODO_", 8012),
    "chat": ("chat_service", "CHAT_", 8013),
}


@pytest.mark.parametrize("service", list(WORKERS))
def test_each_compose_worker_runs_its_module_health_checked_on_its_loops(
    local: Any, env_file: Path, service: str
) -> None:
    package, prefix, port = WORKERS[service]
    worker = local["services"][f"{service}-worker"]
    assert worker["command"] == ["python", "-m", f"{package}.worker"]
    assert worker["build"]["target"] == service
    assert worker["read_only"] is True
    assert worker["cap_drop"] == ["ALL"]
    assert worker["restart"] == "unless-stopped"
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])
    assert str(worker["environment"]["PORT"]) == str(port)
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"][f"migrate-{service}"]["condition"] == (
        "service_completed_successfully"
    )
    secrets = compose.mounted_secrets(worker)
    files = compose.secret_files(local, env_file)
    events = make_url(files[secrets[f"{prefix}EVENTS_REDIS_URL"]])
    assert (events.host, events.port, events.database) == ("redis", 6379, "1")
    assert events.username == f"{service}-events"
    assert events.password == compose.read_env(env_file)[f"{prefix}EVENTS_REDIS_PASSWORD"]
    assert make_url(files[secrets[f"{prefix}DATABASE_URL"]]).username == f"{service}_app"
    fields = settings_fields(package)
    for name in worker["environment"]:
        if name in set(PLATFORM_VARIABLES.values()) | PROCESS_VARIABLES:
            continue
        assert name.startswith(prefix), name
        assert name.removeprefix(prefix).lower() in fields, name


def test_compose_redis_keeps_the_streams_across_a_restart(local: Any, env_file: Path) -> None:
    redis = local["services"]["redis"]
    # Compose 1.x prints the short form, 2.x the long one.
    targets = {
        volume.split(":")[1] if isinstance(volume, str) else volume["target"]
        for volume in redis["volumes"]
    }
    assert "/data" in targets
    conf = compose.secret_files(local, env_file)["redis_conf"]
    assert "appendonly yes\n" in conf
    assert "appendfsync everysec\n" in conf


@pytest.mark.parametrize("service", list(WORKERS))
def test_each_kubernetes_worker_can_run_several_replicas_and_reads_its_secrets_as_files(
    manifests: list[dict[str, Any]], service: str
) -> None:
    package, prefix, port = WORKERS[service]
    deployment = kubernetes.of_kind(manifests, "Deployment")[f"{service}-worker"]
    assert deployment["spec"]["replicas"] >= 2
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == f"todo-platform/{service}:local"
    assert container["command"] == ["python", "-m", f"{package}.worker"]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The todo worker also signs webhook deliveries with the webhook keys.
    extra = (
        {"TODO_WEBHOOK_KEYS": ("todo-webhook-keys", "webhook-keys")} if service == "todo" else {}
    )
    assert kubernetes.secret_files(spec, container) == {
        f"{prefix}DATABASE_URL": (f"{service}-database", "url"),
        f"{prefix}EVENTS_REDIS_URL": (f"{service}-events-redis", "url"),
        **extra,
    }
    fields = settings_fields(package)
    known = set(PLATFORM_VARIABLES.values()) | PROCESS_VARIABLES
    for name in (item["name"] for item in container["env"]):
        assert name in known or name.removeprefix(prefix).lower() in fields, name
