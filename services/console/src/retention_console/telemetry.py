"""The console's Prometheus metrics: the HTTP request metrics every service counts, served on
`/metrics`. The console has no broker and no metric of its own (names in docs/metrics.md)."""

from __future__ import annotations

from fastapi import FastAPI

from retention_shared.metrics import HttpMetricsMiddleware, metrics_response


def instrument(app: FastAPI) -> None:
    app.add_middleware(HttpMetricsMiddleware, service="console")
    app.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
