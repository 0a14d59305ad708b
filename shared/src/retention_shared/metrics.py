"""Prometheus metrics common to every service, and the `/metrics` endpoint.

Kafka message counts are the Kafka kit's (`retention_shared.kafka.message_counts`).

Each service runs in its own process with the default registry; the `service` label tells them
apart where several are scraped into one Prometheus.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retention_shared.config import TenantLabels
from retention_shared.tenant_labels import tenant_label

# `*_created` series (one per counter and histogram child) double what Prometheus stores and no
# dashboard or alert here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

HTTP_REQUESTS = Counter(
    "retention_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "retention_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# How this process's metrics name tenants; set once at start-up from the settings.
_tenant_labels = TenantLabels.PLAIN


def use_tenant_labels(mode: TenantLabels) -> None:
    """Name tenants on `/metrics` as `mode` says (`RETENTION_METRICS_TENANT_LABELS`)."""
    global _tenant_labels
    _tenant_labels = mode


class TenantLabelled:
    """A metric whose `tenant` label value passes through `tenant_label`, wherever it is set:
    call sites keep passing the tenant id and cannot forget the setting."""

    _labelnames: tuple[str, ...]

    def _mapped(
        self, values: tuple[Any, ...], named: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if named:
            return values, {
                k: tenant_label(_tenant_labels, v) if k == "tenant" else v for k, v in named.items()
            }
        return tuple(
            tenant_label(_tenant_labels, v) if name == "tenant" else v
            for name, v in zip(self._labelnames, values, strict=False)
        ), named

    def labels(self, *values: Any, **named: Any) -> Any:
        values, named = self._mapped(values, named)
        return super().labels(*values, **named)  # type: ignore[misc]

    def remove(self, *values: Any) -> None:
        values, _ = self._mapped(values, {})
        super().remove(*values)  # type: ignore[misc]


class TenantCounter(TenantLabelled, Counter):
    """A Counter with a `tenant` label (see `TenantLabelled`)."""


class TenantGauge(TenantLabelled, Gauge):
    """A Gauge with a `tenant` label (see `TenantLabelled`)."""


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """ASGI middleware counting requests and timing them by route template (bounded labels)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(
                time.perf_counter() - started
            )
