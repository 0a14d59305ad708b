"""The trainer's own Prometheus metrics (names and labels are the contract in docs/metrics.md)."""

from prometheus_client import Histogram

from retention_shared.metrics import TenantCounter, TenantGauge

STAGE_DURATION = Histogram(
    "retention_trainer_stage_duration_seconds",
    "Wall time of each training-run stage (lake wait, lake read, training sets, fit, backtest, "
    "gate, publish, ...).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RUNS = TenantCounter(
    "retention_trainer_runs_total",
    "Training runs by outcome: published, rejected (by the gate), skipped, failed.",
    ["tenant", "outcome"],
)
LAST_SUCCESS = TenantGauge(
    "retention_trainer_last_success_timestamp_seconds",
    "Unix time of the tenant's last successful run (a model evaluated by the gate).",
    ["tenant"],
)
CHAMPION_METRIC = TenantGauge(
    "retention_trainer_champion_metric",
    "Backtest metrics of the tenant's champion (roc_auc, pr_auc, spearman, ...).",
    ["tenant", "metric"],
)
LAKE_BYTES = TenantGauge(
    "retention_trainer_lake_bytes", "Size of the tenant's transaction lake.", ["tenant"]
)
REALIZED_ROC_AUC = TenantGauge(
    "retention_trainer_realized_churn_roc_auc",
    "Realized churn ROC-AUC of the champion's scores at their latest settled score date.",
    ["tenant"],
)
REALIZED_BRIER = TenantGauge(
    "retention_trainer_realized_churn_brier",
    "Realized churn Brier score of the champion's scores at their latest settled score date.",
    ["tenant"],
)
