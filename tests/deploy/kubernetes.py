"""The Kubernetes manifests as ``kubectl kustomize`` renders them, and what they mount: read
by the Kubernetes and worker tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import FILE_SUFFIX
from tests.deploy.support import REPO

OVERLAY = REPO / "deploy" / "k8s" / "overlays" / "local"


def render(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def secret_files(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``<VARIABLE>_FILE`` -> (Secret, key) of the Secret volume file it points at."""
    volumes = {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
    mounts = {
        m["mountPath"]: volumes[m["name"]]
        for m in container.get("volumeMounts", [])
        if m["name"] in volumes
    }
    found = {}
    for item in container.get("env", []):
        if not item["name"].endswith(FILE_SUFFIX):
            continue
        directory, _, key = item["value"].rpartition("/")
        assert directory in mounts, (item["name"], "not in a mounted Secret")
        secret = mounts[directory]
        keys = [entry["key"] for entry in secret.get("items", [])]
        assert not keys or key in keys, (item["name"], key)
        found[item["name"].removesuffix(FILE_SUFFIX)] = (secret["secretName"], key)
    return found
