"""The Kubernetes manifests as ``kubectl kustomize`` renders the local overlay.

Schema validity is ``make deploy-check``'s job (kubernetes-validate); these tests check what a
schema cannot: that probes, ports and variables agree with the images and the settings, that
every pod is locked down, and that each Secret reference is one the local secrets provide.
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import FILE_SUFFIX, PLATFORM_VARIABLES
from tests.deploy.dockerfile import chain, env_of, stages
from tests.deploy.kubernetes import of_kind, render, secret_files
from tests.deploy.support import PROCESS_VARIABLES, REPO, settings_fields
from todo_service.settings import TodoSettings
from todo_service.webhooks.targets import forbidden_reason

SERVICES = {
    "auth": ("auth_service", "AUTH_"),
    "todo": ("todo_service", "TODO_"),
    "chat": ("chat_service", "CHAT_"),
    "gateway": ("gateway", "GATEWAY_"),
    "web": ("web_service", "WEB_"),
}
AUTOSCALED = {"gateway", "todo", "chat", "web"}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def image_env(target: str) -> dict[str, str]:
    all_stages = stages(REPO / "Dockerfile")
    return env_of(chain(all_stages, target))


def test_every_pod_runs_locked_down(manifests: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(manifests):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] > 0, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, name
            assert set(resources["limits"]) == {"cpu", "memory"}, name


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_probes_and_ports_match_the_image(
    manifests: list[dict[str, Any]], service: str
) -> None:
    deployment = of_kind(manifests, "Deployment")[service]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = image_env(service)
    prefix = SERVICES[service][1]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": int(env["PORT"]), "metrics": int(env[f"{prefix}METRICS_PORT"])}
    assert env[f"{prefix}METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    assert template["metadata"]["annotations"]["prometheus.io/port"] == env[f"{prefix}METRICS_PORT"]
    assert container["image"] == f"todo-platform/{service}:local"
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "http"},
        "livenessProbe": {"path": "/healthz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }
    service_ports = {
        port["name"]: (port["port"], port["targetPort"])
        for port in of_kind(manifests, "Service")[service]["spec"]["ports"]
    }
    assert service_ports == {
        "http": (ports["http"], "http"),
        "metrics": (ports["metrics"], "metrics"),
    }


def test_services_select_their_own_pods(manifests: list[dict[str, Any]]) -> None:
    workloads = {**of_kind(manifests, "Deployment"), **of_kind(manifests, "StatefulSet")}
    for name, service in of_kind(manifests, "Service").items():
        labels = workloads[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name


def test_autoscaled_deployments_leave_the_replica_count_to_their_hpa(
    manifests: list[dict[str, Any]],
) -> None:
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    assert set(autoscalers) == AUTOSCALED
    deployments = of_kind(manifests, "Deployment")
    for name, autoscaler in autoscalers.items():
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert autoscaler["spec"]["minReplicas"] >= 2
        assert "replicas" not in deployments[name]["spec"], name
    assert deployments["auth"]["spec"]["replicas"] >= 2


def test_every_service_has_a_disruption_budget_for_its_pods(
    manifests: list[dict[str, Any]],
) -> None:
    budgets = of_kind(manifests, "PodDisruptionBudget")
    deployments = of_kind(manifests, "Deployment")
    assert set(budgets) == set(SERVICES)
    for name, budget in budgets.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["minAvailable"] == 1


def test_the_ingress_reaches_the_gateway_only(manifests: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(manifests, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"gateway"}
    for name, service in of_kind(manifests, "Service").items():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", name


@pytest.mark.parametrize("service", ["auth", "todo", "chat"])
def test_migration_job_runs_as_the_migration_role_only(
    manifests: list[dict[str, Any]], service: str
) -> None:
    job = of_kind(manifests, "Job")[f"migrate-{service}"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    package, prefix = SERVICES[service]
    assert container["image"] == f"todo-platform/{service}:local"
    assert container["command"] == ["python", "-m", "shared.migrate", package]
    assert secret_files(spec, container) == {
        f"{prefix}MIGRATION_DATABASE_URL": (f"{service}-database", "migration-url")
    }
    mounted = [v["secret"] for v in spec["volumes"] if "secret" in v]
    assert [item["key"] for secret in mounted for item in secret["items"]] == ["migration-url"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_secrets_are_referenced_and_the_local_ones_provide_every_reference(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    assert not of_kind(manifests, "Secret"), "a Secret is embedded in the manifests"
    script = str(REPO / "deploy" / "local_secrets.py")
    subprocess.run([sys.executable, script, "compose", "--root", str(tmp_path)], check=True)
    printed = subprocess.run(
        [sys.executable, script, "k8s", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    provided = {
        document["metadata"]["name"]: set(document["stringData"])
        for document in yaml.safe_load_all(printed)
        if document
    }
    referenced: set[tuple[str, str]] = set()
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            for item in container.get("env", []):
                value = item.get("value", "")
                assert "://" not in value or "@" not in value, (name, item["name"])
            referenced |= set(secret_files(spec, container).values())
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret and not secret.get("optional"):
                referenced.add((secret["secretName"], "*"))
                referenced |= {(secret["secretName"], i["key"]) for i in secret.get("items", [])}
    for secret, key in referenced:
        assert secret in provided, secret
        assert key == "*" or key in provided[secret], (secret, key)
    assert ("auth-signing-key", "*") in referenced
    assert provided["auth-signing-key"] == {"signing-keys.pem"}


def test_no_secret_is_an_environment_variable_of_any_pod(
    manifests: list[dict[str, Any]],
) -> None:
    """Secrets reach pods as files of Secret volumes (``<VARIABLE>_FILE``), never as env."""
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            assert "envFrom" not in container or all(
                "secretRef" not in source for source in container["envFrom"]
            ), name
            for item in container.get("env", []):
                assert "secretKeyRef" not in item.get("valueFrom", {}), (name, item["name"])
                secret_like = ("PASSWORD", "DATABASE_URL", "API_KEY", "STORAGE_URI", "SIGNING_KEYS")
                if any(word in item["name"] for word in secret_like):
                    assert item["name"].endswith(FILE_SUFFIX), (name, item["name"])
            secret_files(spec, container)  # every *_FILE points into a mounted Secret


def test_the_bootstrap_reads_the_owner_url_and_every_password_from_its_secret(
    manifests: list[dict[str, Any]],
) -> None:
    spec = of_kind(manifests, "Job")["db-bootstrap"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    files = secret_files(spec, container)
    assert files.pop("BOOTSTRAP_DATABASE_URL") == ("db-bootstrap", "admin-url")
    assert files == {
        f"{role.upper()}_DB_PASSWORD": ("db-bootstrap", f"{role.replace('_', '-')}-password")
        for role in (
            f"{s}_{k}" for s in ("auth", "todo", "chat", "web") for k in ("migrator", "app")
        )
    }


def test_the_base_trusts_no_proxy_and_the_overlay_names_its_ingress_controllers_addresses(
    manifests: list[dict[str, Any]],
) -> None:
    """No default that trusts every private range: forwarded addresses come from the overlay."""
    (base_config,) = of_kind(render(REPO / "deploy" / "k8s" / "base"), "ConfigMap").values()
    assert "GATEWAY_TRUSTED_PROXIES" not in base_config["data"]
    assert "GATEWAY_TRUSTED_FORWARDERS" not in base_config["data"]
    (config,) = of_kind(manifests, "ConfigMap").values()
    for variable in ("GATEWAY_TRUSTED_PROXIES", "GATEWAY_TRUSTED_FORWARDERS"):
        networks = [
            ipaddress.ip_network(entry.strip()) for entry in config["data"][variable].split(",")
        ]
        assert networks == [ipaddress.ip_network("10.244.0.0/16")]
        private = ipaddress.ip_network("10.0.0.0/8")
        assert all(network.num_addresses < private.num_addresses for network in networks)


def test_the_signing_key_file_is_where_the_secret_is_mounted(
    manifests: list[dict[str, Any]],
) -> None:
    spec = of_kind(manifests, "Deployment")["auth"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "signing-key"]
    assert mount["readOnly"] is True
    assert env["AUTH_SIGNING_KEY_FILE"] == f"{mount['mountPath']}/signing-keys.pem"
    (volume,) = [v for v in spec["volumes"] if v["name"] == "signing-key"]
    assert volume["secret"]["defaultMode"] == 0o440
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_variable_given_to_a_service_is_one_it_reads(
    manifests: list[dict[str, Any]], service: str
) -> None:
    package, prefix = SERVICES[service]
    fields = settings_fields(package)
    spec = of_kind(manifests, "Deployment")[service]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    known = set(PLATFORM_VARIABLES.values()) | PROCESS_VARIABLES
    for name in (item["name"] for item in container["env"]):
        assert name in known or name.removeprefix(prefix).lower() in fields, name
        assert name in known or name.startswith(prefix), name


def test_every_configured_variable_is_read_by_some_service(manifests: list[dict[str, Any]]) -> None:
    (config,) = of_kind(manifests, "ConfigMap").values()
    known = set(PLATFORM_VARIABLES.values()) | PROCESS_VARIABLES
    for package, prefix in SERVICES.values():
        if importlib.util.find_spec(f"{package}.settings") is None:
            continue  # a service still being written: its variables are not checked yet
        fields = type(importlib.import_module(f"{package}.settings").get_settings()).model_fields
        known |= {f"{prefix}{field.upper()}" for field in fields}
    assert set(config["data"]) <= known, set(config["data"]) - known


def test_the_local_namespace_enforces_the_restricted_pod_security_standard(
    manifests: list[dict[str, Any]],
) -> None:
    (namespace,) = of_kind(manifests, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [m for m in manifests if m["kind"] != "Namespace"]
    assert {m["metadata"].get("namespace") for m in namespaced} == {namespace["metadata"]["name"]}


def test_the_printed_local_secrets_are_valid_json_documents(tmp_path: Path) -> None:
    script = str(REPO / "deploy" / "local_secrets.py")
    subprocess.run([sys.executable, script, "compose", "--root", str(tmp_path)], check=True)
    printed = subprocess.run(
        [sys.executable, script, "k8s", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documents = [json.loads(part) for part in printed.split("---\n") if part.strip()]
    assert all(document["kind"] == "Secret" for document in documents)
    assert {d["metadata"]["name"] for d in documents} >= {"auth-database", "db-bootstrap"}


@pytest.mark.parametrize("service", list(SERVICES))
def test_one_service_is_selected_by_its_name_label_alone(
    manifests: list[dict[str, Any]], service: str
) -> None:
    """`kubectl apply -k ... -l app.kubernetes.io/name=<service>` rolls that service only."""
    selected = {
        m["kind"]
        for m in manifests
        if m["metadata"].get("labels", {}).get("app.kubernetes.io/name") == service
    }
    expected = {"Deployment", "Service", "PodDisruptionBudget"}
    if service in AUTOSCALED:
        expected.add("HorizontalPodAutoscaler")
    assert selected == expected


def _admits(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether one of the policy's ingress rules admits a pod of this namespace with these
    labels (the subset of the selector language the manifests use)."""
    for rule in policy["spec"].get("ingress", []):
        for peer in rule.get("from", []):
            selector = peer.get("podSelector")
            if selector is None or "namespaceSelector" in peer:
                continue
            matched = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
            for expression in selector.get("matchExpressions", []):
                value = labels.get(expression["key"])
                inside = value in expression["values"]
                matched &= inside if expression["operator"] == "In" else not inside
            if matched:
                return True
    return False


def _pod_labels(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        name: manifest["spec"]["template"]["metadata"]["labels"]
        for manifest in manifests
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}
        for name in [manifest["metadata"]["name"]]
    }


def test_only_the_gateway_reaches_the_web_service_and_the_web_service_only_the_gateway(
    manifests: list[dict[str, Any]],
) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    pods = _pod_labels(manifests)
    protected = {
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: policy
        for policy in policies.values()
        if "app.kubernetes.io/name" in policy["spec"]["podSelector"].get("matchLabels", {})
    }
    # Into the web service: the gateway's pods, nothing else of the namespace.
    reaching_web = {name for name, labels in pods.items() if _admits(protected["web"], labels)}
    assert reaching_web == {"gateway"}
    # Out of the web service: the gateway yes; auth, todo and chat no (the API's limits and
    # checks are the gateway's).
    web = pods["web"]
    assert _admits(protected["gateway"], web)
    for service in ("auth", "todo", "chat"):
        assert not _admits(protected[service], web), service
    # The other services still reach auth for its keys.
    assert _admits(protected["auth"], pods["todo"])
    assert _admits(protected["auth"], pods["gateway"])


def _egress_admits(policy: dict[str, Any], address: str, port: int) -> bool:
    """Whether ``policy`` lets its pods open a connection to ``address``:``port`` (any peer
    of a rule naming the port, or all ports; a rule without ``to`` admits every address)."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress", []):
        ports = [item["port"] for item in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block is None or ip.version != ipaddress.ip_network(block["cidr"]).version:
                continue
            inside = ip in ipaddress.ip_network(block["cidr"])
            excepted = any(
                ip in ipaddress.ip_network(cidr)
                for cidr in block.get("except", [])
                if ipaddress.ip_network(cidr).version == ip.version
            )
            if inside and not excepted:
                return True
    return False


# Addresses a webhook must never reach, the application's refusals (targets.forbidden_reason)
# repeated by the network: private, loopback, link-local and the cloud metadata service,
# shared (CGNAT), unspecified, ULA, an IPv4-mapped private one.
NEVER_A_WEBHOOK = (
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not one to bind)
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:10.0.0.1",
)


def test_the_todo_worker_reaches_only_public_addresses_on_the_webhook_port(
    manifests: list[dict[str, Any]],
) -> None:
    policy = of_kind(manifests, "NetworkPolicy")["todo-worker-egress"]
    worker = _pod_labels(manifests)["todo-worker"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(worker.get(key) == value for key, value in selector.items())
    assert policy["spec"]["policyTypes"] == ["Egress"]
    webhook_ports = TodoSettings.model_fields["webhook_ports"].default
    for port in webhook_ports:
        for address in NEVER_A_WEBHOOK:
            assert forbidden_reason(ipaddress.ip_address(address)) is not None, address
            assert not _egress_admits(policy, address, port), (address, port)
        for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
            assert _egress_admits(policy, address, port), (address, port)
    # What else it needs: PostgreSQL and Redis wherever they run, and no other port.
    for port in (5432, 6379):
        assert _egress_admits(policy, "10.0.0.1", port), port
    assert not _egress_admits(policy, "93.184.216.34", 80)
    assert not _egress_admits(policy, "10.0.0.1", 8002)
