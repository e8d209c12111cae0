"""Child processes of the tests and benchmarks: a port to give one, and stopping one
politely first, then for good."""

from __future__ import annotations

import socket
import subprocess

# Every port free_port has handed out in this process. A port picked but not bound yet (a
# stack's services are all given theirs before any starts) is free to the kernel, which may
# give it again to the next caller: two services of one stack on one port, one of them
# answering for both.
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused), and
    that this process has not handed out before."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no port this process has not handed out yet in 100 tries")


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
