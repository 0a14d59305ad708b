"""The webhooks service's own Prometheus metrics (names and labels: docs/metrics.md)."""

from prometheus_client import Gauge, Histogram

from retention_shared.metrics import TenantCounter

ATTEMPTS = TenantCounter(
    "retention_webhooks_attempts_total",
    "Delivery attempts by outcome: delivered (2xx), failed (another attempt follows) or parked "
    "(the last attempt failed).",
    ["tenant", "type", "outcome"],
)
ATTEMPT_DURATION = Histogram(
    "retention_webhooks_attempt_duration_seconds",
    "Time from connecting to a subscriber to its answer (or the error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES = Gauge(
    "retention_webhooks_deliveries",
    "Deliveries in the log by state: pending, retrying, delivered, parked.",
    ["state"],
)
