"""`GET /v1/model`: the tenant's model card."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from retention_bundle.backtest_report import (
    BacktestWindows,
    ChurnMetrics,
    LTVMetrics,
    OrdersBacktest,
    ReliabilityBin,
    SegmentSummary,
)
from retention_bundle.production import ProductionFit
from retention_scoring.api.deps import State, champion_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_shared.auth import ReadCaller
from retention_shared.events import TimeWindow
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["model"])


class DriftView(BaseModel):
    # "not checked yet", "stable" or "drift".
    status: str
    checked_at: datetime | None = None
    threshold: float
    psi: dict[str, float] = {}
    drifted_features: list[str] = []
    published_at: datetime | None = None


class ChurnCard(BaseModel):
    """The churn model against its baselines on the churn test customers."""

    model: ChurnMetrics
    baselines: dict[str, ChurnMetrics]
    threshold: float = Field(description="The churn flag's probability threshold.")
    test_customers: int
    expected_calibration_error: float | None = Field(
        None, description="ECE over 10 probability bins (null for models trained before it)."
    )
    reliability: list[ReliabilityBin] = Field(
        default_factory=list, description="Per bin: mean predicted, observed rate, count."
    )
    importance: dict[str, float] = Field(
        default_factory=dict,
        description="Mean absolute contribution of each feature to the churn log-odds, largest "
        "first (empty for models trained before it).",
    )


class LTVCard(BaseModel):
    """The LTV model against its baselines on the LTV test customers."""

    model: LTVMetrics
    baselines: dict[str, LTVMetrics]
    objective: str
    interval_coverage_10_90: float = Field(
        description="Share of test customers whose actual spend fell in [ltv_low, ltv_high]."
    )
    importance: dict[str, float] = Field(
        default_factory=dict,
        description="Mean absolute contribution of each feature to log(LTV), largest first "
        "(empty for models trained before it).",
    )


class ModelCard(BaseModel):
    tenant_id: str
    model_version: str
    model_tag: str
    champion_since: datetime
    loaded_at: datetime
    trained_at: datetime
    training_window: TimeWindow
    windows: BacktestWindows = Field(
        description="The evidence window: each task's training, validation and test cutoffs, "
        "on which the backtest numbers below were measured."
    )
    production: ProductionFit | None = Field(
        None,
        description="The production window: the cutoffs the served models were trained on "
        "(refitted after promotion up to data end − horizon) and the data end; null for models "
        "published before the refit, which serve the evidence model.",
    )
    feature_schema: list[str]
    churn: ChurnCard
    ltv: LTVCard
    orders: OrdersBacktest | None = Field(
        None,
        description="Expected orders and the next-order date against BG/NBD on the churn test "
        "customers (null for models trained before them).",
    )
    segments: list[SegmentSummary] = Field(description="The segments of the churn test customers.")
    drift: DriftView


_CHURN_WINDOW = {
    "task": "churn",
    "horizon_days": 90,
    "every_days": 30,
    "test_cutoff": "2011-09-10",
    "validation_cutoff": "2011-06-12",
    "training_cutoffs": ["2010-01-18", "2010-02-17", "2011-03-14"],
}
_LTV_WINDOW = {
    "task": "ltv",
    "horizon_days": 180,
    "every_days": 30,
    "test_cutoff": "2011-06-12",
    "validation_cutoff": "2010-12-14",
    "training_cutoffs": ["2010-01-18", "2010-02-17", "2010-06-17"],
}
_EXAMPLE = {
    "tenant_id": "default",
    "model_version": "kx3b2bq7ownflzaf",
    "model_tag": "retention-default:kx3b2bq7ownflzaf",
    "champion_since": "2024-05-01T09:00:42Z",
    "loaded_at": "2024-05-01T09:00:43Z",
    "trained_at": "2024-05-01T09:00:30Z",
    "training_window": {"start": "2009-12-01T07:45:00Z", "end": "2011-12-09T12:50:00Z"},
    "windows": {"churn": _CHURN_WINDOW, "ltv": _LTV_WINDOW},
    "production": {
        "refitted": True,
        "reason": "refitted after promotion on the latest cutoffs with complete labels (data "
        "ends 2011-12-09: churn up to 2011-09-10, LTV up to 2011-06-12), with the settings the "
        "gate judged",
        "data_end": "2011-12-09",
        "purchase_model_cutoff": "2011-12-09",
        "churn": {
            "task": "churn",
            "horizon_days": 90,
            "every_days": 30,
            "training_cutoffs": ["2010-01-18", "2011-08-11", "2011-09-10"],
            "training_rows": 61234,
        },
        "ltv": {
            "task": "ltv",
            "horizon_days": 180,
            "every_days": 30,
            "training_cutoffs": ["2010-01-18", "2011-05-13", "2011-06-12"],
            "training_rows": 40417,
        },
    },
    "feature_schema": ["recency_days", "frequency", "monetary"],
    "churn": {
        "model": {
            "roc_auc": 0.826,
            "pr_auc": 0.781,
            "brier": 0.162,
            "f1": 0.741,
            "lift_top_decile": 1.62,
            "roc_auc_active_365d": 0.774,
        },
        "baselines": {
            "recency": {
                "roc_auc": 0.801,
                "pr_auc": 0.752,
                "brier": 0.191,
                "f1": 0.716,
                "lift_top_decile": 1.55,
                "roc_auc_active_365d": 0.712,
            }
        },
        "threshold": 0.529,
        "test_customers": 4339,
        "expected_calibration_error": 0.031,
        "reliability": [
            {
                "lower": 0.9,
                "upper": 1.0,
                "count": 1165,
                "mean_predicted": 0.943,
                "observed_rate": 0.912,
            }
        ],
        "importance": {"recency_gap_ratio": 0.36, "spend_180d": 0.31},
    },
    "ltv": {
        "model": {
            "mae": 612.4,
            "rmse": 2210.8,
            "spearman": 0.665,
            "normalized_gini": 0.874,
            "top10_capture": 0.52,
        },
        "baselines": {
            "bgnbd_gamma_gamma": {
                "mae": 598.1,
                "rmse": 2390.2,
                "spearman": 0.641,
                "normalized_gini": 0.861,
                "top10_capture": 0.5,
            }
        },
        "objective": "tweedie",
        "interval_coverage_10_90": 0.81,
        "importance": {"monetary": 0.59, "spend_90d": 0.2},
    },
    "orders": {
        "horizon_days": 90,
        "method": "bgnbd",
        "validation_mae_by_method": {"bgnbd": 0.633, "bgnbd_xgboost": 0.641},
        "model": {
            "mae": 0.78,
            "next_order_median_abs_days": 38.9,
            "next_order_dated_share": 0.79,
            "next_order_hit_rate": 0.55,
        },
        "baselines": {
            "bgnbd": {
                "mae": 0.806,
                "next_order_median_abs_days": 43.8,
                "next_order_dated_share": 0.81,
                "next_order_hit_rate": 0.59,
            }
        },
        "test_customers": 5281,
        "ordered_customers": 2292,
        "mean_orders": 1.05,
    },
    "segments": [
        {
            "segment": SEGMENT_ROW["segment"],
            "customers": SEGMENT_ROW["customers"],
            "revenue_share": SEGMENT_ROW["revenue_share"],
            "churn_rate": 0.58,
            "action": SEGMENT_ROW["action"],
        }
    ],
    "drift": {
        "status": "stable",
        "checked_at": "2024-05-02T09:00:00Z",
        "threshold": 0.2,
        "psi": {"recency_days": 0.04},
        "drifted_features": [],
        "published_at": None,
    },
}


@router.get(
    "/model",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 503),
)
async def model_card(caller: ReadCaller, state: State) -> ModelCard:
    """The tenant's champion: version, training window, backtest numbers against the baselines,
    segments, and the latest drift check (503 before the first model)."""
    champion = champion_of(state, caller.tenant_id)
    bundle, published = champion.bundle, champion.published
    drift = state.drift.get(caller.tenant_id)
    threshold = state.settings.drift_psi_threshold
    if drift is None or drift.model_version != champion.version:
        drift_view = DriftView(status="not checked yet", threshold=threshold)
    else:
        drift_view = DriftView(
            status="drift" if drift.drifted else "stable",
            checked_at=drift.checked_at,
            threshold=drift.threshold,
            psi=drift.psi,
            drifted_features=drift.drifted,
            published_at=drift.published_at,
        )
    report = bundle.report
    churn, ltv = report.churn, report.ltv
    return ModelCard(
        tenant_id=caller.tenant_id,
        model_version=champion.version,
        model_tag=champion.tag,
        champion_since=published.published_at,
        loaded_at=champion.loaded_at,
        trained_at=champion.trained_at,
        training_window=published.training_window,
        windows=bundle.windows,
        production=bundle.production,
        feature_schema=list(bundle.feature_names),
        churn=ChurnCard(
            model=churn.model,
            baselines=churn.baselines,
            threshold=churn.threshold,
            test_customers=churn.test_customers,
            expected_calibration_error=churn.expected_calibration_error,
            reliability=churn.reliability,
            importance=report.importance.churn if report.importance else {},
        ),
        ltv=LTVCard(
            model=ltv.model,
            baselines=ltv.baselines,
            objective=ltv.objective,
            interval_coverage_10_90=ltv.interval_coverage_10_90,
            importance=report.importance.ltv if report.importance else {},
        ),
        orders=report.orders,
        segments=report.segments,
        drift=drift_view,
    )
