"""docker-compose.yml as compose resolves it, and the environment file and secrets
``make compose-env`` writes: read by the compose and worker tests.

``docker-compose config`` (Debian's package; it needs no engine) validates the files and prints
the merged result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import FILE_SUFFIX
from tests.deploy.support import REPO


def compose_env(root: Path) -> str:
    """``make compose-env`` for a checkout at ``root``: its output."""
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local_secrets.py"), "compose", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


def compose_config(env_file: Path, *files: str, extra_env: dict[str, str] | None = None) -> Any:
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    arguments = [executable, "--project-directory", str(REPO), "--env-file", str(env_file)]
    for name in files:
        arguments += ["-f", str(REPO / name)]
    result = subprocess.run(
        [*arguments, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), **(extra_env or {})},
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def secret_files(config: Any, env_file: Path) -> dict[str, str]:
    """Each compose secret's contents, read from the files ``make compose-env`` wrote."""
    secrets_dir = env_file.parent / read_env(env_file)["SECRETS_DIR"]
    return {
        name: (secrets_dir / Path(spec["file"]).name).read_text()
        for name, spec in config["secrets"].items()
    }


def mounted_secrets(service: Any) -> dict[str, str]:
    """``<VARIABLE>_FILE`` -> the secret mounted where it points (checked to be mounted)."""
    sources = {secret["source"] for secret in service.get("secrets", [])}
    found = {}
    for name, value in (service.get("environment") or {}).items():
        if name.endswith(FILE_SUFFIX) and str(value).startswith("/run/secrets/"):
            secret = str(value).removeprefix("/run/secrets/")
            assert secret in sources, (name, secret)
            found[name.removesuffix(FILE_SUFFIX)] = secret
    return found
