"""The features service's own Prometheus metrics (names in docs/metrics.md)."""

from prometheus_client import Counter, Gauge, Histogram

CONSUMER_LAG = Gauge(
    "retention_features_consumer_lag",
    "Records of transactions not yet applied, per owned partition (fetch high watermark - next offset).",
    ["partition"],
)
FRESHNESS = Histogram(
    "retention_features_freshness_seconds",
    "From an order's arrival on transactions (record timestamp) to its customer's vector published.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CUSTOMERS = Gauge("retention_features_customers", "Customers held in this instance's state.")
REBUILDS = Counter(
    "retention_features_rebuilds_total",
    "Partitions rebuilt by replay because they had no state file.",
)
REBUILD_DURATION = Histogram(
    "retention_features_rebuild_duration_seconds",
    "From starting a rebuild until the partition caught up with its high watermark.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
REJECTED = Counter(
    "retention_features_rejected_total",
    "Transactions records sent to transactions.rejected, by reason code.",
    ["reason"],
)
LOG_RESETS = Counter(
    "retention_features_log_resets_total",
    "Partitions whose log no longer holds what the state applied (the broker lost it); "
    "the state is kept, every customer's vector republished, and consuming restarts at the log's start.",
)
