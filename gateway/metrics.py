"""The gateway's Prometheus metrics, served on the internal metrics port only.

Label children are bound once per (prefix, status) and kept, so observing a request is two
dictionary look-ups and two increments rather than a label resolution each time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "gateway_requests_total", "Requests answered by the gateway", ["prefix", "status"]
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from request to the end of the response, as the gateway saw it",
    ["prefix", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Upstream failures by kind (refused, connect_timeout, reset, invalid, timeout)",
    ["upstream", "kind"],
)
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429", ["scope"])
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "gateway_rate_limit_storage_errors_total",
    "Rate-limit storage failures (the request was let through)",
)


class RequestMetrics:
    """Cached label children for the per-request observations."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, prefix: str, status: int, seconds: float) -> None:
        pair = self._children.get((prefix, status))
        if pair is None:
            code = str(status)
            pair = (REQUESTS.labels(prefix, code), LATENCY.labels(prefix, code))
            self._children[(prefix, status)] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    @staticmethod
    def upstream_error(upstream: str, kind: str) -> None:
        UPSTREAM_ERRORS.labels(upstream, kind).inc()
