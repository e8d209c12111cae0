"""Prometheus metrics, served on an internal port of their own (never on public routes)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

REFUSED = Counter(
    "http_requests_refused_total",
    "Requests the HTTP server refused before the application saw them (shared/server.py)",
    ["code"],
)


def start_metrics_server(host: str, port: int | None) -> Callable[[], None]:
    """Start the metrics listener in a daemon thread; returns the function that stops it.

    Metrics are per process: run one uvicorn worker per container and scale with replicas.
    When several workers share a port, the first serves its own figures and the others run
    without a listener rather than fail to start.
    """
    if port is None:
        return lambda: None
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        logger.warning("metrics listener not started on %s:%d: %s", host, port, exc)
        return lambda: None
    logger.info("metrics on http://%s:%d/metrics", host, server.server_port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)

    return stop
