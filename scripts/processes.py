"""Child processes of the tests and benchmarks: a port to give one, and stopping one
politely first, then for good."""

from __future__ import annotations

import socket
import subprocess

# A socket bound to each port free_port has handed out, held for the life of this process
# and never listening. Until a server binds it, a port picked by probing alone is free to the
# kernel: it may give it to another process's bind (the other test worker's next server) or
# as the source port of an outgoing connection, and a "dead" port could then answer. A held
# bound socket keeps every other taker off it, and connections to it are still refused. It
# sets SO_REUSEADDR, as uvicorn (asyncio), Redis and PostgreSQL do on their listening
# sockets, and Linux lets such a socket bind and listen beside one that only holds the port.
_held: dict[int, socket.socket] = {}


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused), that no
    other process can take, and that a server started later can bind with SO_REUSEADDR."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    port: int = held.getsockname()[1]
    _held[port] = held
    return port


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL when it has not exited after ``timeout`` seconds; returns once it
    has exited (at once for one that already had)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
