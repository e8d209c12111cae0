"""Run the whole platform locally: ``make run``.

Starts an embedded PostgreSQL under ``.data/`` (unless ``DATABASE_URL`` is set), migrates every
service, starts each service as its own process with its log lines prefixed, prints the URLs,
reports a service that dies, and stops everything cleanly on Ctrl-C.

The workers (``python -m <service>.worker``, docs/events.md) need a Redis: the one
``EVENTS_REDIS_URL`` names, or else the machine's ``redis-server`` started under
``.data/redis`` on loopback with a generated password. Without either, the workers are left
out (events wait in the outboxes) and the stack says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.processes import stop_process
from shared.embedded_pg import EmbeddedPostgres
from shared.migrate import available_services
from shared.migrations import upgrade
from shared.settings import DATA_DIR

logger = logging.getLogger("stack")


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    port: int
    metrics_port: int
    env_prefix: str
    colour: str
    # The module ``python -m`` runs, when it is not the package itself (a worker).
    module: str = ""


SERVICES = (
    Service("auth", "auth_service", 8001, 9001, "AUTH_", "\033[35m"),
    Service("todo", "todo_service", 8002, 9002, "TODO_", "\033[36m"),
    Service("chat", "chat_service", 8003, 9003, "CHAT_", "\033[33m"),
    Service("web", "web_service", 8004, 9004, "WEB_", "\033[34m"),
    Service("gateway", "gateway", 8000, 9000, "GATEWAY_", "\033[32m"),
)
# The workers that move each service's events (docs/events.md).
WORKERS = (
    Service("auth-w", "auth_service", 8011, 9011, "AUTH_", "\033[35m", "auth_service.worker"),
    Service("todo-w", "todo_service", 8012, 9012, "TODO_", "\033[36m", "todo_service.worker"),
    Service("chat-w", "chat_service", 8013, 9013, "CHAT_", "\033[33m", "chat_service.worker"),
)
RESET = "\033[0m"
REDIS_START_SECONDS = 10.0


def installed(service: Service) -> bool:
    return importlib.util.find_spec(f"{service.package}.app") is not None


def prepare_database() -> EmbeddedPostgres | None:
    """Point DATABASE_URL at a server: the given one, or an embedded one under .data/."""
    if os.environ.get("DATABASE_URL"):
        return None
    server = EmbeddedPostgres(Path(DATA_DIR) / "postgres")
    os.environ["DATABASE_URL"] = server.start()
    return server


class LocalRedis:
    """The machine's ``redis-server`` for the event streams, under ``.data/redis``: loopback
    only, a password kept in a 0600 file there, the streams in an append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password_file = self.directory / "password"
        if not password_file.exists():
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        password = password_file.read_text().strip()
        # The password in a configuration file, not on the command line (`ps` shows that).
        config = self.directory / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                f"requirepass {password}\nbind 127.0.0.1\nport 0\nunixsocket "
                f"{self.directory.resolve() / 'redis.sock'}\nunixsocketperm 700\n"
                f'save ""\nappendonly yes\nappendfsync everysec\n'
                f"dir {self.directory.resolve()}\n"
            )
        self.process = subprocess.Popen(  # noqa: S603 - the redis-server on PATH
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        socket_path = self.directory / "redis.sock"
        deadline = time.monotonic() + REDIS_START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(socket_path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return f"unix://:{password}@{socket_path.resolve()}?db=1"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def prepare_events() -> LocalRedis | bool | None:
    """Point EVENTS_REDIS_URL at a Redis: True if given, a started LocalRedis, or None if none
    can be had (the workers are then left out)."""
    if os.environ.get("EVENTS_REDIS_URL"):
        return True
    binary = shutil.which("redis-server")
    if binary is None:
        logger.warning(
            "no EVENTS_REDIS_URL and no redis-server: the workers are not started, so events "
            "wait in the outboxes (an account deletion is not applied by todo and chat)"
        )
        return None
    redis = LocalRedis(Path(DATA_DIR) / "redis")
    os.environ["EVENTS_REDIS_URL"] = redis.start(binary)
    logger.info("started redis-server for the event streams under %s", redis.directory)
    return redis


def migrate() -> None:
    for package in available_services():
        settings = importlib.import_module(f"{package}.settings").get_settings()
        upgrade(package, settings.migration_url())
        logger.info("migrated %s", package)


async def pump(service: Service, stream: asyncio.StreamReader) -> None:
    prefix = (
        f"{service.colour}{service.name:>7} |{RESET} "
        if sys.stdout.isatty()
        else f"{service.name:>7} | "
    )
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()


async def run_services(services: list[Service]) -> int:
    processes: dict[str, asyncio.subprocess.Process] = {}
    pumps = []
    for service in services:
        env = {
            **os.environ,
            "PORT": str(service.port),
            f"{service.env_prefix}METRICS_PORT": os.environ.get(
                f"{service.env_prefix}METRICS_PORT", str(service.metrics_port)
            ),
            "PYTHONUNBUFFERED": "1",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            service.module or service.package,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        processes[service.name] = process
        assert process.stdout is not None
        pumps.append(asyncio.create_task(pump(service, process.stdout)))

    print("\nThe platform is starting:")
    for service in services:
        print(
            f"  {service.name:<8} http://127.0.0.1:{service.port}   metrics :{service.metrics_port}"
        )
    if any(s.name == "gateway" for s in services):
        if any(s.name == "web" for s in services):
            print("  Web app   http://127.0.0.1:8000/")
        print("  API docs  http://127.0.0.1:8000/api/docs")
    print("Press Ctrl-C to stop.\n")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def watch(name: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if not stop.is_set():
            logger.error("service %s exited with code %s; the others keep running", name, code)

    watchers = [asyncio.create_task(watch(n, p)) for n, p in processes.items()]
    await stop.wait()
    print("\nStopping...")
    for process in processes.values():
        if process.returncode is None:
            process.terminate()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(p.wait() for p in processes.values()))
    except TimeoutError:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
    for task in [*pumps, *watchers]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrate-only", action="store_true", help="migrate and exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  stack | %(message)s")

    server = prepare_database()
    redis: LocalRedis | bool | None = None
    try:
        migrate()
        if args.migrate_only:
            return
        services = [s for s in SERVICES if installed(s)]
        redis = prepare_events()
        if redis is not None:
            services += [w for w in WORKERS if installed(w)]
        sys.exit(asyncio.run(run_services(services)))
    finally:
        if isinstance(redis, LocalRedis):
            redis.stop()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
