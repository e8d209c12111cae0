"""What the compose smoke test relies on, checked without Docker (`make compose-smoke` runs it).

The smoke test itself needs an engine and runs in `.ci/run` after the other suites; these
checks keep its inputs honest where no engine exists: local images never carry a public name,
the Dockerfile takes every base image as an argument and pulls no frontend image.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import yaml

from tests.deploy.dockerfile import stages
from tests.deploy.support import REPO


def smoke_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_smoke", REPO / "deploy" / "smoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_local_stand_ins_never_carry_a_public_images_name() -> None:
    smoke = smoke_module()
    names = [smoke.DEBIAN_IMAGE, *(image for _, image in smoke.STANDINS.values())]
    assert all(name.startswith("todo-platform/standin-") for name in names), names
    assert set(smoke.STANDINS) == {"PYTHON_IMAGE", "UV_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE"}


def test_the_dockerfile_takes_every_base_image_as_an_argument_and_pulls_no_frontend() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, flags=re.MULTILINE | re.IGNORECASE)
    all_stages = stages(REPO / "Dockerfile")
    for stage in all_stages.values():
        assert stage.base.startswith("${") or stage.base in all_stages, stage.base
    assert all_stages["uv"].base == "${UV_IMAGE}"
    copies = [a for s in all_stages.values() for a in s.all("COPY") if a.startswith("--from=")]
    assert all(a.split()[0].removeprefix("--from=") in all_stages for a in copies), copies


def test_the_stand_in_dockerfile_names_no_public_base_image() -> None:
    all_stages = stages(REPO / "deploy" / "standins" / "Dockerfile")
    bases = {stage.base for stage in all_stages.values()}
    assert bases <= {"${DEBIAN_IMAGE}", "scratch", *all_stages}, bases


def test_ci_runs_the_smoke_test_after_every_other_suite() -> None:
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert commands[-1] == "make compose-smoke"
    assert "make test" in commands


def test_the_smoke_test_checks_every_service_and_job_compose_runs() -> None:
    smoke = smoke_module()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    ours = {name for name, service in compose["services"].items() if "build" in service}
    jobs = {name for name in ours if compose["services"][name].get("restart") == "no"}
    assert set(smoke.JOBS) == jobs
    assert set(smoke.OUR_SERVICES) | set(smoke.WORKERS) == ours - jobs
    assert set(smoke.SCHEMAS) == {name.removeprefix("migrate-") for name in jobs} - {"bootstrap"}


def test_every_directory_the_dockerfile_copies_is_in_the_build_context() -> None:
    admitted = {
        line.removeprefix("!").strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source
        for stage in stages(REPO / "Dockerfile").values()
        for arguments in stage.all("COPY")
        if not arguments.startswith("--from=")
        for source in arguments.split()[:-1]  # the last one is the destination
    }
    assert "web_service/" in copied
    assert copied <= admitted, copied - admitted
