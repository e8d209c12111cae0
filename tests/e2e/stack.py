"""The end-to-end harness: the platform's real services as separate uvicorn processes.

Each service runs exactly as in production (``python -m <package>``) on its own free
127.0.0.1 port, against the test session's PostgreSQL, with a signing key made for the run.
A service can be stopped and started again at any time; it comes back on the same port, so
the gateway (and chat's MCP client) reach it again without being reconfigured.

Usage (``running_stack`` below is the ``stack`` fixture of each package that runs the
processes: ``tests/e2e``, ``tests/security``, ``tests/fuzz``, one stack per package)::

    stack = Stack(database_url, workdir)
    stack.start("auth", "todo", "chat")      # started together, each waited for (/readyz)
    stack.start("gateway")
    stack.url("gateway")                     # "http://127.0.0.1:<port>"
    stack.stop("todo")                       # SIGTERM, then SIGKILL after 10 s
    stack.kill("todo")                       # SIGKILL at once (a crash)
    stack.pid("gateway")                     # the running process's id
    with stack.stopped("todo"): ...          # down inside the block, up again after it
    with stack.configured("gateway", GATEWAY_RATE_LIMIT_USER="3/minute"): ...
                                             # restarted with extra environment, then restored
    with stack.replica("gateway", GATEWAY_RATE_LIMIT_USER="3/minute") as name: ...
                                             # one more process with it, stopped after
    stack.log("auth")                        # everything the process printed
    stack.errors()                           # what every process logged at ERROR
    stack.assert_no_errors()                 # none (``running_stack`` checks it once closed)
    name = stack.add_replica("gateway")      # one more gateway process ("gateway-2"), its
    stack.start(name, env={...})             # own port; started, stopped... like the others
    stack.close()                            # stop everything

Names: ``auth``, ``todo``, ``chat``, ``web``, ``gateway``, and the workers ``auth-worker``,
``todo-worker``, ``chat-worker`` (``python -m <package>.worker``; started only by the tests
that give them ``EVENTS_REDIS_URL``). ``stack.available(name)`` says whether that
service exists in this checkout. Methods block (they wait for processes), so they are plain
functions usable from sync and async tests alike; each wait is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.keys import generate_pem
from scripts.processes import free_port
from shared.settings import PLATFORM_VARIABLES
from tests.support.database import empty_service_schemas

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    env_prefix: str
    # The module ``python -m`` runs, when it is not the package itself (a worker).
    module: str = ""


SERVICES = {
    "auth": Service("auth", "auth_service", "AUTH_"),
    "todo": Service("todo", "todo_service", "TODO_"),
    "chat": Service("chat", "chat_service", "CHAT_"),
    "web": Service("web", "web_service", "WEB_"),
    "gateway": Service("gateway", "gateway", "GATEWAY_"),
    "auth-worker": Service("auth-worker", "auth_service", "AUTH_", "auth_service.worker"),
    "todo-worker": Service("todo-worker", "todo_service", "TODO_", "todo_service.worker"),
    "chat-worker": Service("chat-worker", "chat_service", "CHAT_", "chat_service.worker"),
}


# A log record starts with its time and level (LOG_JSON=false); the lines after it up to the
# next record are its traceback. The harness writes a banner before each start.
_RECORD = re.compile(r"\d\d:\d\d:\d\d [A-Z]+ ")
_SEVERE_RECORD = re.compile(r"\d\d:\d\d:\d\d (ERROR|CRITICAL) ")
_BANNER = "----- starting "


class ServiceFailed(RuntimeError):
    """A service did not become ready; the message carries the end of its log."""


class Stack:
    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        env: Mapping[str, Mapping[str, str]] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        """``env`` adds or overrides variables per service name, for every start."""
        self.database_url = database_url
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.ports = {name: free_port() for name in SERVICES}
        self._kinds = dict(SERVICES)  # by name: what each (replicas included) runs
        self.signing_pem = generate_pem()
        self.extra_env = {name: dict(values) for name, values in (env or {}).items()}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # --- where things are ------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @staticmethod
    def available(name: str) -> bool:
        """The service exists in this checkout (its package has an ``app`` module)."""
        try:
            return importlib.util.find_spec(f"{SERVICES[name].package}.app") is not None
        except ModuleNotFoundError:  # not even the package
            return False

    def add_replica(self, of: str) -> str:
        """Another process of service ``of``, on its own port and log; returns its name
        (``gateway-2``...), which the other methods take like a service's. Not started."""
        name = f"{of}-{sum(kind.name == of for kind in self._kinds.values()) + 1}"
        self._kinds[name] = SERVICES[of]
        self.ports[name] = free_port()
        return name

    def running(self, name: str) -> bool:
        process = self._processes.get(name)
        return process is not None and process.poll() is None

    def log(self, name: str) -> str:
        path = self._log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def errors(self) -> str:
        """Every record the services logged at ERROR or CRITICAL, with its traceback, each
        under the name of the process: for a failing test's message (the logs go with the
        working directory)."""
        found = []
        for name in self._kinds:
            lines = self.log(name).splitlines()
            for at, line in enumerate(lines):
                if not _SEVERE_RECORD.match(line):
                    continue
                record = [f"{name}: {line}"]
                for following in lines[at + 1 :]:
                    if _RECORD.match(following) or following.startswith(_BANNER):
                        break
                    record.append(following)
                found.append("\n".join(record).rstrip())
        return "\n".join(found)

    def assert_no_errors(self) -> None:
        """No process logged an ERROR. Each unhandled exception (a 500) and each failed
        background task logs one, so a test that accepts an answer without naming its
        status, or a request made along the way, cannot pass over one."""
        errors = self.errors()
        assert not errors, f"the services logged errors:\n{errors}"

    def env_for(self, name: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a service starts with: the platform wired to this stack's ports."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key not in PLATFORM_VARIABLES.values()
            and not key.startswith(tuple(s.env_prefix for s in SERVICES.values()))
        }
        env = {
            **inherited,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "HOST": "127.0.0.1",
            "PORT": str(self.ports[name]),
            "ENVIRONMENT": "test",
            "LOG_JSON": "false",
            "DATABASE_URL": self.database_url,
            "AUTH_JWKS_URL": f"{self.url('auth')}/api/auth/jwks",
            "AUTH_SIGNING_KEYS": self.signing_pem,
            "CHAT_TODO_MCP_URL": f"{self.url('todo')}/api/mcp",
            "CHAT_AGENT": "rules",
            "GATEWAY_AUTH_URL": self.url("auth"),
            "GATEWAY_TODO_URL": self.url("todo"),
            "GATEWAY_CHAT_URL": self.url("chat"),
            "GATEWAY_WEB_URL": self.url("web"),
            "WEB_GATEWAY_URL": self.url("gateway"),
            # Generous: the suite registers many users from one address. Tests of the
            # limits themselves use `configured`.
            "GATEWAY_RATE_LIMIT_AUTH_IP": "10000/minute",
            "GATEWAY_RATE_LIMIT_USER": "10000/minute",
            "GATEWAY_RATE_LIMIT_CHAT_TURN": "10000/minute",
        }
        env.update(self.extra_env.get(self._kinds[name].name, {}))
        env.update(overrides or {})
        return env

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, *names: str, env: Mapping[str, str] | None = None) -> None:
        """Start the services (together) and wait until each answers /readyz with 200."""
        for name in names:
            if self.running(name):
                raise RuntimeError(f"{name} is already running")
        for name in names:
            self._spawn(name, env)
        for name in names:
            self._wait_ready(name)

    def stop(self, *names: str) -> None:
        for name in names:
            process = self._processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def kill(self, name: str) -> None:
        """SIGKILL: the process dies at once without closing anything, as in a crash or an
        out-of-memory kill. ``start`` brings it back."""
        process = self._processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pid(self, name: str) -> int:
        """The running service's process id (for its memory figures, or to check it is the
        same process as before)."""
        if not self.running(name):
            raise RuntimeError(f"{name} is not running")
        return self._processes[name].pid

    def restart(self, name: str, *, env: Mapping[str, str] | None = None) -> None:
        self.stop(name)
        self.start(name, env=env)

    @contextlib.contextmanager
    def stopped(self, name: str) -> Iterator[None]:
        """``name`` is down inside the block and running again after it."""
        self.stop(name)
        try:
            yield
        finally:
            self.start(name)

    @contextlib.contextmanager
    def configured(self, name: str, **env: str) -> Iterator[None]:
        """``name`` restarted with extra environment inside the block, restored after it."""
        self.restart(name, env=env)
        try:
            yield
        finally:
            self.restart(name)

    @contextlib.contextmanager
    def replica(self, of: str, **env: str) -> Iterator[str]:
        """One more process of ``of`` with extra environment inside the block, stopped after
        it; its name. For a test of a service's own answers under other settings: one start
        where ``configured`` restarts the service twice."""
        name = self.add_replica(of)
        self.start(name, env=env)
        try:
            yield name
        finally:
            self.stop(name)

    def close(self) -> None:
        self.stop(*reversed(list(self._processes)))

    # --- internals ---------------------------------------------------------------------------

    def _log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _spawn(self, name: str, env: Mapping[str, str] | None) -> None:
        service = self._kinds[name]
        if not self.available(service.name):
            raise RuntimeError(f"service {service.name} does not exist in this checkout")
        with self._log_path(name).open("ab") as log:
            log.write(f"\n{_BANNER}{name} on port {self.ports[name]} -----\n".encode())
            log.flush()
            self._processes[name] = subprocess.Popen(
                [sys.executable, "-m", service.module or service.package],
                env=self.env_for(name, env),
                cwd=self.workdir,  # no stray .env or .data/ of a developer's checkout
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.url(name)}/readyz"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                process = self._processes[name]
                if process.poll() is not None:
                    raise ServiceFailed(
                        f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop(name)
        raise ServiceFailed(
            f"{name} not ready after {self.startup_timeout:.0f}s:\n{self.log(name)[-3000:]}"
        )


# Started before the gateway by ``running_stack``, those this checkout has.
UPSTREAMS = ("auth", "todo", "chat", "web")


@contextlib.asynccontextmanager
async def running_stack(database_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """Every service of this checkout running, the gateway in front, in a working directory
    of its own; afterwards no ERROR in any log (``Stack.assert_no_errors``), everything
    stopped and every service schema emptied (the tests commit their data for real)."""
    with tempfile.TemporaryDirectory(prefix="todo-platform-e2e-") as directory:
        running = Stack(database_url, Path(directory))
        try:
            running.start(*(name for name in UPSTREAMS if running.available(name)))
            running.start("gateway")
            yield running
        finally:
            running.close()
            await empty_service_schemas(engine)
        running.assert_no_errors()  # their shutdown included
