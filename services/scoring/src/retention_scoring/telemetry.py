"""The scoring service's own metrics (names and labels: docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from retention_shared.metrics import TenantCounter, TenantGauge

SCORES = TenantCounter(
    "retention_scoring_scores_total",
    "Scores served (HTTP and events), by churn risk band.",
    ["tenant", "risk_band"],
)
CUSTOMERS_SCORED = TenantCounter(
    "retention_scoring_customers_scored_total",
    "Customers scored into the cached population, by why: changed (their vector changed; the "
    "rest of the population kept), or a whole pass: first, model, removed, day, settle.",
    ["tenant", "reason"],
)
MODEL_INFO = TenantGauge(
    "retention_scoring_model_info",
    "1 for the champion model version loaded per tenant.",
    ["tenant", "version"],
)
MODEL_AGE = TenantGauge(
    "retention_scoring_model_age_seconds",
    "Age of the loaded champion (now - training time).",
    ["tenant"],
)
FEATURE_FRESHNESS = Histogram(
    "retention_scoring_feature_freshness_seconds",
    "Age of the features a score was computed from, at scoring time.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
DRIFT_PSI = TenantGauge(
    "retention_scoring_drift_psi",
    "Population stability index of live features against the champion's reference distribution.",
    ["tenant", "feature"],
)
CONSUMER_LAG = Gauge(
    "retention_scoring_consumer_lag",
    "Messages of customer-features not yet materialized by this instance, per partition.",
    ["partition"],
)
