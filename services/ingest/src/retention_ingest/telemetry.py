"""The ingest service's own Prometheus metrics (names in docs/metrics.md)."""

from prometheus_client import Histogram

from retention_shared.metrics import TenantCounter, TenantGauge

ROWS = TenantCounter(
    "retention_ingest_rows_total",
    "Input rows (order lines) by outcome (accepted/rejected) and reject reason.",
    ["tenant", "outcome", "reason"],
)
ORDERS_PUBLISHED = TenantCounter(
    "retention_ingest_orders_published_total",
    "Order events acknowledged by the broker.",
    ["tenant"],
)
PUBLISH_LATENCY = Histogram(
    "retention_ingest_publish_latency_seconds",
    "From sending a batch of order events until the broker acknowledged all of them.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOAD_DURATION = Histogram(
    "retention_ingest_upload_duration_seconds",
    "From an upload starting to run until it is done or failed.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
UPLOAD_BYTES = TenantCounter(
    "retention_ingest_upload_bytes_total", "Bytes of uploaded files.", ["tenant"]
)
UPLOADS_IN_FLIGHT = TenantGauge(
    "retention_ingest_uploads_in_flight", "Uploads queued or running.", ["tenant"]
)


def count_rows(tenant: str, accepted: int, rejected_by_reason: dict[str, int]) -> None:
    if accepted:
        ROWS.labels(tenant, "accepted", "").inc(accepted)
    for reason, count in rejected_by_reason.items():
        ROWS.labels(tenant, "rejected", reason).inc(count)
