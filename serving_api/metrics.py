"""Prometheus metrics of the API, on a registry owned by the app (not the process global).

Every label takes a bounded set of values: the route is the matched template (or "unmatched"),
the method one of ``METHODS`` (anything else is "OTHER"), so no request can add a series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "METHODS", "ApiMetrics"]

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Unauthenticated traffic that is counted here instead of audited row by row.
UNAUTHENTICATED_REASONS = ("unknown_route", "address_limited")


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlservice_http_requests_total", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.errors = Counter(
            "mlservice_http_errors_total", "HTTP error responses by route, status and error code",
            ["method", "route", "status", "code"], registry=self.registry,
        )
        self.latency = Histogram(
            "mlservice_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.unauthenticated = Counter(
            "mlservice_unauthenticated_refusals_total",
            "Unauthenticated requests answered without an audit record: unknown routes and methods "
            "(404, 405) and addresses past their unauthenticated limit (429)",
            ["reason"], registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float, code: str | None) -> None:
        method = method_label(method)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(method, route, str(status), code or "").inc()

    def unauthenticated_refusal(self, reason: str) -> None:
        if reason not in UNAUTHENTICATED_REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.unauthenticated.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
