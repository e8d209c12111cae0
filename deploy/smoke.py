"""``make compose-smoke``: build and run the whole compose stack under Docker, and prove it.

From an empty engine on a machine without a registry: install Docker, compose and debootstrap
when missing (Debian's packages), start ``dockerd`` when none answers (and stop only that one),
make the local stand-in base images (``todo-platform/standin-*``, deploy/standins/), write the
local secrets, build the five service images, start the stack, wait (bounded) for every service
to be healthy, then run the end-to-end contract through the published gateway port (and a page
of the web client from it) and check what compose promises: non-root, read-only containers,
one published port, no secret in any container's environment, a Redis that wants its
password, each database role kept out of the others' schemas, no acknowledged write lost
across a PostgreSQL restart, an idempotent second ``up``, and each image's size over its
Python base. ``docker-compose down -v`` at the end,
whatever happened; on a failure, the failing container's last log lines and exit status 1.

``--public-images`` uses the public base images instead of the stand-ins (a machine that can
pull them). See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/bin/docker"  # Debian's client: /usr/local/bin/docker may lack buildx
PROJECT = "todo-smoke"
STANDIN_TAG = "bookworm"
DEBIAN_IMAGE = f"todo-platform/standin-debian:{STANDIN_TAG}"
STANDINS = {
    "PYTHON_IMAGE": ("python", f"todo-platform/standin-python:{STANDIN_TAG}"),
    "UV_IMAGE": ("uv", f"todo-platform/standin-uv:{STANDIN_TAG}"),
    "POSTGRES_IMAGE": ("postgres", f"todo-platform/standin-postgres:{STANDIN_TAG}"),
    "REDIS_IMAGE": ("redis", f"todo-platform/standin-redis:{STANDIN_TAG}"),
}
PUBLIC_PYTHON_IMAGE = "python:3.11-slim-bookworm"
OUR_SERVICES = ("auth", "todo", "chat", "web", "gateway")
# The event workers run the images of their services (docs/events.md).
WORKERS = ("auth-worker", "todo-worker", "chat-worker")
JOBS = ("bootstrap", "migrate-auth", "migrate-todo", "migrate-chat", "migrate-web")
SCHEMAS = {
    "auth": "auth.users",
    "todo": "todo.tasks",
    "chat": "chat.conversations",
    "web": "web.sessions",
}
IMAGE_BUDGET_BYTES = 120 * 1000 * 1000
HEALTH_TIMEOUT = 300.0
RECOVERY_TIMEOUT = 90.0


class SmokeFailure(Exception):
    """A check failed; ``container`` names the one whose logs explain it, when known."""

    def __init__(self, message: str, container: str | None = None) -> None:
        super().__init__(message)
        self.container = container


def say(message: str) -> None:
    sys.stdout.write(f"[smoke {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


def check(condition: object, message: str, container: str | None = None) -> None:
    if not condition:
        raise SmokeFailure(message, container)


def run(
    *arguments: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check_status: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(arguments),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input_text,
        check=False,
    )
    if check_status and result.returncode != 0:
        raise SmokeFailure(
            f"`{' '.join(arguments[:4])} ...` exited {result.returncode}:\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    return result


# --- the engine ---------------------------------------------------------------------------


def install_missing_tools() -> None:
    """Debian's docker.io, docker-compose (1.29) and debootstrap, when one is missing."""
    wanted = {
        "docker.io": DOCKER,
        "docker-compose": "/usr/bin/docker-compose",
        "debootstrap": "/usr/sbin/debootstrap",
    }
    missing = [package for package, path in wanted.items() if not Path(path).exists()]
    if not missing:
        return
    say(f"installing {', '.join(missing)}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=environment)
    run("apt-get", "install", "-y", "-qq", *missing, env=environment)


def engine_answers(env: dict[str, str]) -> bool:
    return run(DOCKER, "info", env=env, timeout=30, check_status=False).returncode == 0


@contextlib.contextmanager
def docker_engine(env: dict[str, str], log_dir: Path) -> Iterator[None]:
    """The running engine, or one started here and stopped (by its PID) on the way out."""
    if engine_answers(env):
        yield
        return
    say("no Docker engine answers: starting dockerd")
    log = (log_dir / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        ["/usr/sbin/dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not engine_answers(env):
            check(daemon.poll() is None, f"dockerd exited {daemon.returncode}: see {log.name}")
            check(time.monotonic() < deadline, "dockerd did not answer within 60 s")
            time.sleep(0.5)
        yield
    finally:
        say(f"stopping the dockerd this run started (pid {daemon.pid})")
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()


def image_exists(name: str, env: dict[str, str]) -> bool:
    return run(DOCKER, "image", "inspect", name, env=env, check_status=False).returncode == 0


def debian_mirror() -> str:
    """The host's Debian mirror (deb822 sources), else deb.debian.org."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def build_standins(env: dict[str, str], work: Path) -> None:
    """todo-platform/standin-*: a minbase Debian, then python, uv, postgres and redis on it."""
    if not image_exists(DEBIAN_IMAGE, env):
        say(f"debootstrap --variant=minbase bookworm ({debian_mirror()})")
        rootfs = work / "rootfs"
        run(
            "debootstrap",
            "--variant=minbase",
            "bookworm",
            str(rootfs),
            debian_mirror(),
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [DOCKER, "import", "-", DEBIAN_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            env=env,
            check=False,
        )
        tar.wait()
        check(imported.returncode == 0, f"docker import failed: {imported.stderr!r}")
        shutil.rmtree(rootfs, ignore_errors=True)
    context = work / "standins"
    shutil.copytree(REPO / "deploy" / "standins", context)
    (context / "ca").mkdir()
    for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(certificate, context / "ca")
    (context / "apt").mkdir()
    for setting in Path("/etc/apt/apt.conf.d").iterdir():
        text = setting.read_text(errors="replace") if setting.is_file() else ""
        if "Acquire::" in text and "Invoke" not in text:
            shutil.copy(setting, context / "apt")
    for target, image in STANDINS.values():
        say(f"building {image}")
        run(
            DOCKER,
            "build",
            "--quiet",
            "--build-arg",
            f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
            "--target",
            target,
            "--tag",
            image,
            str(context),
            env=env,
            timeout=900,
        )


# --- the stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    root: Path  # holds .env and the secret files, outside the checkout
    port: int
    secrets: dict[str, str] = field(default_factory=dict)

    def compose(self, *arguments: str, timeout: float = 900, check_status: bool = True) -> str:
        command = [
            "docker-compose",
            "--project-name",
            PROJECT,
            "--project-directory",
            str(REPO),
            "--env-file",
            str(self.root / ".env"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(REPO / "docker-compose.override.yml"),
            *arguments,
        ]
        result = run(*command, env=self.env, timeout=timeout, check_status=check_status)
        return result.stdout

    def containers(self, *, all_states: bool = True) -> dict[str, dict[str, Any]]:
        """``docker inspect`` of each of the project's containers, by compose service."""
        listing = run(
            DOCKER,
            "ps",
            *(["--all"] if all_states else []),
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            env=self.env,
        ).stdout.split()
        if not listing:
            return {}
        inspected = json.loads(run(DOCKER, "inspect", *listing, env=self.env).stdout)
        return {item["Config"]["Labels"]["com.docker.compose.service"]: item for item in inspected}

    def container_name(self, service: str) -> str:
        return str(self.containers()[service]["Name"]).lstrip("/")

    def logs(self, service: str, lines: int = 40) -> str:
        result = run(
            DOCKER,
            "logs",
            "--tail",
            str(lines),
            self.container_name(service),
            env=self.env,
            check_status=False,
        )
        return result.stdout + result.stderr

    def exec(self, service: str, *command: str, env: dict[str, str] | None = None) -> str:
        options = [
            item for name, value in (env or {}).items() for item in ("-e", f"{name}={value}")
        ]
        result = run(
            DOCKER,
            "exec",
            *options,
            self.container_name(service),
            *command,
            env=self.env,
            check_status=False,
            timeout=60,
        )
        return result.stdout + result.stderr

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> None:
        """Every job exited 0 and every long-running container healthy, or a clear failure."""
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            pending = []
            for job in JOBS:
                state = containers.get(job, {}).get("State")
                if state is None or state["Status"] != "exited":
                    pending.append(job)
                    continue
                check(state["ExitCode"] == 0, f"{job} exited {state['ExitCode']}", job)
            for service in (*OUR_SERVICES, *WORKERS, "postgres", "redis"):
                state = containers.get(service, {}).get("State")
                health = (state or {}).get("Health", {}).get("Status")
                if state is not None and state["Status"] in {"exited", "dead"}:
                    raise SmokeFailure(f"{service} stopped (exit {state['ExitCode']})", service)
                if health != "healthy":
                    pending.append(f"{service}:{health or 'starting'}")
            if not pending:
                return
            if time.monotonic() > deadline:
                # The unhealthy one if any, else the first still waiting.
                unhealthy = [p for p in pending if p.endswith(":unhealthy")]
                failing = (unhealthy or pending)[0].split(":")[0]
                raise SmokeFailure(f"not healthy after {timeout:.0f} s: {pending}", failing)
            time.sleep(2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the end-to-end contract through the gateway -------------------------------------------


async def expect(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    status: int,
    what: str,
    container: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """``method url`` (``kwargs`` as ``httpx`` takes them), checked to answer ``status``; a
    failure says ``what`` it was and shows ``container``'s log."""
    response = await client.request(method, url, **kwargs)
    check(
        response.status_code == status,
        f"{what}: {response.status_code} {response.text[:300]}",
        container,
    )
    return response


async def register_and_login(client: httpx.AsyncClient, label: str) -> dict[str, Any]:
    """A new account signed in: the login's answer, its ``headers`` and its ``password``."""
    email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    account = {"email": email, "password": password}
    registration = account | {"name": label}
    await expect(client, "POST", "/api/auth/register", 201, "register", json=registration)
    login = await expect(client, "POST", "/api/auth/login", 200, "login", "auth", json=account)
    body: dict[str, Any] = login.json()
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    body["password"] = password
    return body


def forged_token(user_id: str) -> str:
    """A well-formed token with the platform's claims, signed by a key it never published."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iss": "todo-platform-auth",
        "aud": "todo-platform",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")


async def web_pages(base_url: str) -> None:
    """The browser's view: GET / through the published port is an HTML page of the web
    service, with the page's own security policy, not the API's."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60, follow_redirects=True) as client:
        page = await client.get("/", headers={"Accept": "text/html"})
        check(page.status_code == 200, f"GET /: {page.status_code} {page.text[:300]}", "web")
        check(
            page.headers.get("content-type", "").startswith("text/html"),
            f"GET / is not a page: {page.headers.get('content-type')}",
            "web",
        )
        check("<html" in page.text.lower(), f"GET /: {page.text[:300]}", "web")
        policy = page.headers.get("content-security-policy", "")
        check("default-src 'self'" in policy, f"the page's policy: {policy!r}", "gateway")


async def contract(base_url: str) -> None:
    """register, login, refresh, logout, tasks with If-Match and Idempotency-Key, the
    compatibility routes, a chat turn plain and streamed, health, a forged token."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        user = await register_and_login(client, "smoke")
        headers = user["headers"]
        me = await expect(client, "GET", "/api/auth/me", 200, "me", "auth", headers=headers)
        user_id = me.json()["id"]

        first = {"refresh_token": user["refresh_token"]}
        await expect(client, "POST", "/api/auth/refresh", 200, "refresh", "auth", json=first)
        spent = "a spent refresh token"
        await expect(client, "POST", "/api/auth/refresh", 401, spent, "auth", json=first)
        second = {"refresh_token": (await register_and_login(client, "logout"))["refresh_token"]}
        await expect(client, "POST", "/api/auth/logout", 204, "logout", "auth", json=second)
        after = "refresh after logout"
        await expect(client, "POST", "/api/auth/refresh", 401, after, "auth", json=second)

        key = {"Idempotency-Key": uuid.uuid4().hex}
        created = await client.post(
            "/api/tasks", json={"title": "smoke task", "priority": "high"}, headers=headers | key
        )
        check(created.status_code == 201, f"create: {created.status_code} {created.text}", "todo")
        task = created.json()
        replay = await client.post(
            "/api/tasks", json={"title": "smoke task", "priority": "high"}, headers=headers | key
        )
        check(
            replay.status_code == 201 and replay.json()["id"] == task["id"],
            f"an Idempotency-Key replay made another task: {replay.text}",
            "todo",
        )
        etag = created.headers["etag"]
        for title, status, what in (
            ("smoke task, renamed", 200, "patch with If-Match"),
            ("stale", 412, "a stale If-Match"),
        ):
            await expect(
                client,
                "PATCH",
                f"/api/tasks/{task['id']}",
                status,
                what,
                "todo",
                json={"title": title},
                headers=headers | {"If-Match": etag},
            )
        toggled = await client.patch(f"/api/tasks/{task['id']}/complete", headers=headers)
        check(toggled.json().get("completed") is True, f"complete: {toggled.text}", "todo")
        listed = await client.get("/api/tasks", params={"status": "completed"}, headers=headers)
        check(
            listed.status_code == 200 and [t["id"] for t in listed.json()] == [task["id"]],
            f"list: {listed.status_code} {listed.text[:300]}",
            "todo",
        )
        compat = await client.get(f"/api/{user_id}/tasks", headers=headers)
        check(
            compat.status_code == 200 and len(compat.json()) == 1,
            f"compat list: {compat.status_code}",
        )
        other = await client.get(f"/api/{uuid.uuid4()}/tasks", headers=headers)
        check(other.status_code == 403, f"compat with another user id: {other.status_code}")
        path = f"/api/tasks/{task['id']}"
        await expect(client, "DELETE", path, 204, "delete", "todo", headers=headers)
        await expect(client, "GET", path, 404, "get after delete", "todo", headers=headers)

        turn = await client.post("/api/chat", json={"message": "add buy milk"}, headers=headers)
        check(turn.status_code == 200, f"chat: {turn.status_code} {turn.text}", "chat")
        check(turn.json()["tool_calls"], f"chat turn called no tool: {turn.text}", "chat")
        conversation = turn.json()["conversation_id"]
        events = []
        async with client.stream(
            "POST",
            f"/api/{user_id}/chat",
            json={"message": "list my tasks", "conversation_id": conversation},
            headers=headers | {"Accept": "text/event-stream"},
        ) as stream:
            check(stream.status_code == 200, f"chat stream: {stream.status_code}", "chat")
            check(
                stream.headers["content-type"].startswith("text/event-stream"),
                "the chat stream is not server-sent events",
                "chat",
            )
            events = [
                line.removeprefix("event:").strip()
                async for line in stream.aiter_lines()
                if line.startswith("event:")
            ]
        check("error" not in events and events, f"chat stream events: {events}", "chat")
        milk = await client.get("/api/tasks", params={"q": "milk"}, headers=headers)
        check(len(milk.json()) == 1, f"the chat's task is not in the list: {milk.text}", "chat")

        await expect(client, "GET", "/api/health", 200, "health", "gateway")
        forged = {"Authorization": f"Bearer {forged_token(user_id)}"}
        refused = await client.get("/api/tasks", headers=forged)
        check(refused.status_code == 401, f"a forged token: {refused.status_code}", "gateway")
        check(refused.json().get("code") == "invalid_token", f"forged: {refused.text}")


async def deletion_reaches_the_workers(base_url: str) -> None:
    """DELETE /api/auth/me travels auth's outbox -> Redis -> the todo worker, which purges the
    user and makes todo refuse the still-valid access token (bounded wait)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        user = await register_and_login(client, "leaving")
        headers = user["headers"]
        task = {"title": "soon gone"}
        await expect(
            client, "POST", "/api/tasks", 201, "create", "todo", json=task, headers=headers
        )
        await expect(
            client,
            "DELETE",
            "/api/auth/me",
            204,
            "delete account",
            "auth",
            json={"password": user["password"]},
            headers=headers,
        )
        deadline = time.monotonic() + 60
        while True:
            listed = await client.get("/api/tasks", headers=headers)
            if listed.status_code == 401:
                check(listed.json()["code"] == "account_deleted", listed.text, "todo-worker")
                return
            check(time.monotonic() < deadline, "todo never consumed user.deleted", "todo-worker")
            await asyncio.sleep(1)


async def writes_survive_a_postgres_restart(stack: Stack) -> None:
    """A small write load across `docker-compose restart postgres`: no 2xx write is lost."""
    base_url = f"http://127.0.0.1:{stack.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        user = await register_and_login(client, "restart")
        headers = user["headers"]
        acknowledged: set[int] = set()
        refused = 0
        stop = asyncio.Event()

        async def writer(number: int) -> None:
            nonlocal refused
            sequence = 0
            while not stop.is_set():
                sequence += 1
                body = {"title": f"w{number}-{sequence}"}
                key = {"Idempotency-Key": uuid.uuid4().hex}
                try:
                    response = await client.post("/api/tasks", json=body, headers=headers | key)
                except httpx.HTTPError:
                    refused += 1
                else:
                    if response.status_code == 201:
                        acknowledged.add(int(response.json()["id"]))
                    else:
                        refused += 1
                await asyncio.sleep(0.4)

        before = {name: c["State"]["StartedAt"] for name, c in stack.containers().items()}
        # About 7 writes a second: under the gateway's per-user limit (600 a minute).
        writers = [asyncio.create_task(writer(number)) for number in range(3)]
        try:
            await asyncio.sleep(3)
            say("docker-compose restart postgres, under 3 writers")
            await asyncio.to_thread(stack.compose, "restart", "postgres")
            count_at_restart = len(acknowledged)
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while len(acknowledged) < count_at_restart + 15:
                check(
                    time.monotonic() < deadline,
                    f"writes did not recover within {RECOVERY_TIMEOUT:.0f} s of the restart",
                    "todo",
                )
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*writers)
        stored: set[int] = set()
        url: str | None = "/api/tasks?limit=100"
        while url:
            page = await client.get(url, headers=headers)
            check(page.status_code == 200, f"list after the restart: {page.status_code}", "todo")
            stored |= {int(task["id"]) for task in page.json()}
            url = page.links.get("next", {}).get("url")
        lost = acknowledged - stored
        check(not lost, f"{len(lost)} acknowledged writes lost across the restart", "todo")
        after = stack.containers()
        for name in OUR_SERVICES:
            check(
                after[name]["State"]["StartedAt"] == before[name]
                and after[name]["RestartCount"] == 0,
                f"{name} was restarted to recover",
                name,
            )
        say(f"restart: {len(acknowledged)} writes acknowledged, all stored; {refused} refused")


# --- properties read from the engine ------------------------------------------------------


def second_up(stack: Stack) -> None:
    """`up -d` again: the bootstrap and the migrations re-run and succeed, the stack serves."""
    say("a second docker-compose up -d")
    before = {job: stack.containers()[job]["State"]["StartedAt"] for job in JOBS}
    stack.compose("up", "-d")
    stack.wait_healthy()
    containers = stack.containers()
    for job in JOBS:
        check(containers[job]["State"]["StartedAt"] != before[job], f"{job} did not re-run", job)

    async def still_serves() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.port}") as client:
            user = await register_and_login(client, "again")
            created = await client.post(
                "/api/tasks", json={"title": "again"}, headers=user["headers"]
            )
            check(created.status_code == 201, f"create after a second up: {created.text}", "todo")

    asyncio.run(still_serves())
    say("second up: bootstrap and migrations re-ran cleanly, the stack still serves")


def check_containers(stack: Stack) -> None:
    containers = stack.containers()
    for name in (*OUR_SERVICES, *WORKERS, *JOBS):
        container = containers[name]
        user = container["Config"]["User"]
        check(user and user.split(":")[0] not in {"0", "root"}, f"{name} runs as root", name)
        check(container["HostConfig"]["ReadonlyRootfs"], f"{name}: writable root file system")
    published = {
        name
        for name, container in containers.items()
        for bindings in (container["NetworkSettings"]["Ports"] or {}).values()
        if bindings
    }
    check(published == {"gateway"}, f"published ports: {sorted(published)}")
    values = {value for value in stack.secrets.values() if len(value) >= 8}
    for name, container in containers.items():
        environment = "\n".join(container["Config"]["Env"] or [])
        leaked = [value[:4] + "..." for value in values if value in environment]
        check(not leaked, f"{name} has a secret in its environment: {leaked}", name)
    say("containers: non-root, read-only, only the gateway published, no secret in any Env")


def check_redis_wants_its_password(stack: Stack) -> None:
    without = stack.exec("redis", "redis-cli", "ping")
    check("NOAUTH" in without and "PONG" not in without, f"redis without password: {without}")
    with_password = stack.exec(
        "redis", "redis-cli", "ping", env={"REDISCLI_AUTH": stack.secrets["redis-password"]}
    )
    check("PONG" in with_password, f"redis with its password: {with_password}", "redis")
    say("redis: refuses a client without its password")


SCHEMA_PROBE = """
import asyncio, sys, asyncpg
async def main():
    url = open(sys.argv[1]).read().strip()
    connection = await asyncpg.connect(url)
    try:
        await connection.fetch(f"SELECT 1 FROM {sys.argv[2]} LIMIT 1")
        print("READ")
    except asyncpg.InsufficientPrivilegeError:
        print("DENIED")
    finally:
        await connection.close()
asyncio.run(main())
"""


def check_schema_isolation(stack: Stack) -> None:
    """From inside each service's container, with its own URL: its table yes, others' no."""
    for service in SCHEMAS:
        secret = f"/run/secrets/{service}_database_url"
        for owner, table in SCHEMAS.items():
            answer = stack.exec(service, "python", "-c", SCHEMA_PROBE, secret, table).strip()
            expected = "READ" if owner == service else "DENIED"
            check(answer == expected, f"{service}_app on {table}: {answer}", service)
    say("schemas: each service's role reads its own schema and is denied the others")


def layer_sizes(image: str, env: dict[str, str]) -> list[int]:
    """Each layer's size in bytes, newest first (`docker history`)."""
    history = run(
        DOCKER, "history", "--human=false", "--format", "{{.Size}}", image, env=env
    ).stdout
    return [int(size) for size in history.split()]


def check_image_sizes(env: dict[str, str], python_image: str) -> dict[str, int]:
    """What each service image adds over its Python base: the layers above the base's."""
    base = len(layer_sizes(python_image, env))
    sizes = {}
    for service in OUR_SERVICES:
        image = f"todo-platform/{service}:smoke"
        layers = layer_sizes(image, env)
        added = sum(layers[: len(layers) - base])
        sizes[service] = added
        check(
            added < IMAGE_BUDGET_BYTES,
            f"{image} adds {added / 1e6:.0f} MB over {python_image} (budget 120 MB)",
        )
    say(
        "image sizes over the Python base: "
        + ", ".join(f"{s} {b / 1e6:.1f} MB" for s, b in sizes.items())
    )
    return sizes


# --- the run ------------------------------------------------------------------------------


def smoke(public_images: bool) -> None:
    started = time.monotonic()
    install_missing_tools()
    env = {
        **os.environ,
        "PATH": "/usr/bin:/usr/sbin:" + os.environ.get("PATH", ""),
        "DOCKER_BUILDKIT": "1",
        "COMPOSE_DOCKER_CLI_BUILD": "1",
    }
    with tempfile.TemporaryDirectory(prefix="compose-smoke-") as work_dir:
        work = Path(work_dir)
        with docker_engine(env, work):
            if not public_images:
                build_standins(env, work)
                env.update({name: image for name, (_, image) in STANDINS.items()})
            python_image = env.get("PYTHON_IMAGE", PUBLIC_PYTHON_IMAGE)
            root = work / "project"
            root.mkdir()
            run(
                sys.executable,
                str(REPO / "deploy" / "local_secrets.py"),
                "compose",
                "--root",
                str(root),
            )
            secrets_dir = root / ".data" / "compose"
            port = free_port()
            env.update(
                {
                    "SECRETS_DIR": str(secrets_dir),
                    "IMAGE_TAG": "smoke",
                    "GATEWAY_PUBLISH": f"127.0.0.1:{port}",
                }
            )
            stack = Stack(env=env, root=root, port=port)
            stack.secrets = {
                path.name: path.read_text().strip()
                for path in secrets_dir.iterdir()
                if path.is_file()
            }
            try:
                say("building the service images")
                stack.compose("build")
                say("docker-compose up -d")
                stack.compose("up", "-d")
                stack.wait_healthy()
                say(f"every service healthy after {time.monotonic() - started:.0f} s")
                asyncio.run(contract(f"http://127.0.0.1:{port}"))
                say("contract: passed through the published gateway port")
                asyncio.run(web_pages(f"http://127.0.0.1:{port}"))
                say("web: GET / through the published gateway port is the client's page")
                asyncio.run(deletion_reaches_the_workers(f"http://127.0.0.1:{port}"))
                say("events: a deleted account is purged by the todo worker through Redis")
                check_containers(stack)
                check_redis_wants_its_password(stack)
                check_schema_isolation(stack)
                asyncio.run(writes_survive_a_postgres_restart(stack))
                second_up(stack)
                check_image_sizes(env, python_image)
            except SmokeFailure as failure:
                say(f"FAILED: {failure}")
                show_logs(stack, failure.container)
                raise
            except Exception as error:
                say(f"FAILED: {error!r}")
                show_logs(stack, None)
                raise
            finally:
                say("docker-compose down -v")
                stack.compose("down", "-v", "--remove-orphans", check_status=False, timeout=300)
    say(f"PASSED in {time.monotonic() - started:.0f} s")


def show_logs(stack: Stack, container: str | None) -> None:
    """The named container's last lines, or those of every container not running well."""
    try:
        containers = stack.containers()
    except SmokeFailure:
        return
    names = [container] if container in containers else []
    if not names:
        for name, item in containers.items():
            state = item["State"]
            failed = state["Status"] != "running" and state.get("ExitCode")
            if failed or state.get("Health", {}).get("Status") == "unhealthy":
                names.append(name)
    lines = 40
    if not names:  # no container to blame: a few lines of each of ours
        names, lines = [name for name in OUR_SERVICES if name in containers], 15
    for name in names:
        sys.stdout.write(f"----- last log lines of {name} -----\n{stack.logs(name, lines)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--public-images",
        action="store_true",
        help="use the public base images (a machine that can pull them) instead of stand-ins",
    )
    arguments = parser.parse_args()
    try:
        smoke(arguments.public_images)
    except SmokeFailure:
        sys.exit(1)


if __name__ == "__main__":
    main()
