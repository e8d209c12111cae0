"""The metrics listener: separate port, never fatal when the port is taken."""

from __future__ import annotations

import socket
import urllib.request

from shared.metrics import start_metrics_server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_are_served_on_their_own_port() -> None:
    port = _free_port()
    stop = start_metrics_server("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        assert "http_requests_total" in body
    finally:
        stop()


def test_a_taken_metrics_port_does_not_stop_the_process() -> None:
    port = _free_port()
    stop_first = start_metrics_server("127.0.0.1", port)
    try:
        stop_second = start_metrics_server("127.0.0.1", port)
        stop_second()
    finally:
        stop_first()
