"""The metrics listener: separate port, never fatal when the port is taken."""

from __future__ import annotations

import logging
import urllib.request

import pytest

from scripts.processes import free_port
from shared.metrics import start_metrics_server


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body: str = answer.read().decode()
    return body


def test_metrics_are_served_on_their_own_port() -> None:
    port = free_port()
    stop = start_metrics_server("127.0.0.1", port)
    try:
        assert "http_requests_total" in scrape(port)
    finally:
        stop()


def test_a_taken_metrics_port_does_not_stop_the_process(caplog: pytest.LogCaptureFixture) -> None:
    # A second worker on the same port runs without a listener: it starts, says why it has
    # no metrics, and leaves the first worker's listener serving.
    port = free_port()
    stop_first = start_metrics_server("127.0.0.1", port)
    try:
        with caplog.at_level(logging.WARNING, logger="shared.metrics"):
            stop_second = start_metrics_server("127.0.0.1", port)
        stop_second()
        assert "metrics listener not started" in caplog.text
        assert "http_requests_total" in scrape(port)
    finally:
        stop_first()
