"""An example backtest report for the OpenAPI document: the report of a real run on the Online
Retail II slice (tests/data/bundles/before-rolling), numbers rounded and lists cut to one or
three entries. The contract test validates it against `BacktestReport`'s schema."""

from __future__ import annotations

from typing import Any

_CUTOFFS = ["2010-01-18", "2010-02-17", "2010-03-19"]

REPORT_EXAMPLE: dict[str, Any] = {
    "tenant": "default",
    "churn": {
        "model": {
            "roc_auc": 0.898,
            "pr_auc": 0.959,
            "brier": 0.126,
            "f1": 0.887,
            "lift_top_decile": 1.39,
            "roc_auc_active_365d": 0.777,
        },
        "baselines": {
            "recency": {
                "roc_auc": 0.872,
                "pr_auc": 0.942,
                "brier": 0.183,
                "f1": 0.859,
                "lift_top_decile": 1.356,
                "roc_auc_active_365d": 0.712,
            }
        },
        "components_roc_auc": {"xgboost": 0.887, "logistic": 0.898},
        "threshold": 0.529,
        "calibration": {"a": 1.119, "b": 0.498, "c": -0.321},
        "test_customers": 406,
        "training_rows": 4295,
        "churn_rate": 0.719,
    },
    "ltv": {
        "model": {
            "mae": 456.038,
            "rmse": 1397.904,
            "spearman": 0.717,
            "normalized_gini": 0.906,
            "top10_capture": 0.706,
        },
        "baselines": {
            "past_spend_scaled": {
                "mae": 506.316,
                "rmse": 1112.373,
                "spearman": 0.565,
                "normalized_gini": 0.867,
                "top10_capture": 0.642,
            }
        },
        "objective": "tweedie",
        "validation_spearman_by_objective": {"log1p_squared_error": 0.634, "tweedie": 0.637},
        "interval_coverage_10_90": 0.845,
        "stack": {"w_xgb": 0.339, "w_bgnbd": 1.227, "intercept": -6.613},
        "test_customers": 393,
        "training_rows": 1228,
    },
    "segments": [
        {
            "segment": "Champions",
            "customers": 47,
            "revenue_share": 0.616,
            "churn_rate": 0.128,
            "action": "Reward them: early access, loyalty perks, ask for referrals.",
        }
    ],
    "rolling_origin": [
        {
            "task": "churn",
            "metric": "roc_auc",
            "test_cutoff": "2011-09-10",
            "model": 0.898,
            "baselines": {"recency": 0.872, "rfm_logistic": 0.882, "bgnbd": 0.905},
        }
    ],
    "windows": {
        "churn": {
            "task": "churn",
            "horizon_days": 90,
            "every_days": 30,
            "test_cutoff": "2011-09-10",
            "validation_cutoff": "2011-06-12",
            "training_cutoffs": _CUTOFFS,
        },
        "ltv": {
            "task": "ltv",
            "horizon_days": 180,
            "every_days": 30,
            "test_cutoff": "2011-06-12",
            "validation_cutoff": "2010-12-14",
            "training_cutoffs": _CUTOFFS,
        },
    },
    "timings": {"total": 13.098},
}
