"""Run the whole platform locally: ``make run``.

Starts an embedded PostgreSQL under ``.data/`` (unless ``DATABASE_URL`` is set), migrates every
service, starts each service as its own process with its log lines prefixed, prints the URLs,
reports a service that dies, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

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


SERVICES = (
    Service("auth", "auth_service", 8001, 9001, "AUTH_", "\033[35m"),
    Service("todo", "todo_service", 8002, 9002, "TODO_", "\033[36m"),
    Service("chat", "chat_service", 8003, 9003, "CHAT_", "\033[33m"),
    Service("web", "web_service", 8004, 9004, "WEB_", "\033[34m"),
    Service("gateway", "gateway", 8000, 9000, "GATEWAY_", "\033[32m"),
)
RESET = "\033[0m"


def installed(service: Service) -> bool:
    return importlib.util.find_spec(f"{service.package}.app") is not None


def prepare_database() -> EmbeddedPostgres | None:
    """Point DATABASE_URL at a server: the given one, or an embedded one under .data/."""
    if os.environ.get("DATABASE_URL"):
        return None
    server = EmbeddedPostgres(Path(DATA_DIR) / "postgres")
    os.environ["DATABASE_URL"] = server.start()
    return server


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
            service.package,
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
    try:
        migrate()
        if args.migrate_only:
            return
        services = [s for s in SERVICES if installed(s)]
        sys.exit(asyncio.run(run_services(services)))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
