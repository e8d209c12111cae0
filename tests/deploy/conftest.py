"""Fixtures of the deploy tests: the compose configuration and the Kubernetes manifests,
rendered once per test module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import compose_config, compose_env
from tests.deploy.kubernetes import OVERLAY, render


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The environment file (and secrets) ``make compose-env`` writes."""
    root = tmp_path_factory.mktemp("compose")
    compose_env(root)
    return root / ".env"


@pytest.fixture(scope="module")
def local(env_file: Path) -> Any:
    """docker-compose.yml with the local-database override, as compose resolves it."""
    return compose_config(env_file, "docker-compose.yml", "docker-compose.override.yml")


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    """The local overlay's manifests."""
    return render(OVERLAY)
