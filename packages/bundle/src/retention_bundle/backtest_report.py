"""The backtest report a bundle carries: the models against the baselines on the test cutoffs and
over the rolling origins, the segments, and the windows it was all measured on.

The trainer builds it (`retention_trainer.pipeline`); it travels in ``bundle.json`` under
``report`` and in the trainer's run records; scoring's model card (`GET /v1/model`) shows part of
it. Its JSON is the report's JSON as bundles have always held it:

- a metric the data cannot define (ROC-AUC among active customers when all of them churned, a
  rolling interval with no finite resample) is computed as NaN and held as None, ``null`` in
  JSON; older bundles wrote it as the ``NaN`` literal, which reads back as None too;
- ``rolling`` is absent from bundles written before the rolling evaluation, ``notes`` when there
  is nothing to note; both read back as their defaults and are left out again when written.

Baselines are keyed by name (``recency``, ``rfm_logistic``, ``bgnbd``; ``past_spend_scaled``,
``bgnbd_gamma_gamma``, ``recent_spend``) because which baselines run is the trainer's choice;
every baseline has the model's metrics.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "BacktestReport",
    "BacktestWindows",
    "ChurnBacktest",
    "ChurnCalibration",
    "ChurnComponents",
    "ChurnMetrics",
    "LTVBacktest",
    "LTVMetrics",
    "LTVStack",
    "OriginResult",
    "RollingEvaluation",
    "RollingMetric",
    "RollingOrigins",
    "RollingWindows",
    "SegmentSummary",
    "TaskWindow",
]


def _defined(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


# A metric or statistic the data may leave undefined (NaN when computed): None, null in JSON.
Undefined = Annotated[float | None, AfterValidator(_defined)]


class _Part(BaseModel):
    # Unknown keys (from a newer trainer) are ignored, as the events' readers do.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskWindow(_Part):
    """The cutoffs one task was trained, validated and tested on."""

    task: Literal["churn", "ltv"]
    horizon_days: int = Field(description="Days after a cutoff that its label looks at.")
    every_days: int = Field(description="Days between training cutoffs.")
    test_cutoff: date
    validation_cutoff: date
    training_cutoffs: list[date]


class BacktestWindows(_Part):
    churn: TaskWindow
    ltv: TaskWindow


class ChurnMetrics(_Part):
    """One churn scorer on the test customers."""

    roc_auc: float
    pr_auc: float = Field(description="Average precision.")
    brier: float = Field(description="Lower is better.")
    f1: float = Field(description="At the threshold chosen on the validation cutoff.")
    lift_top_decile: float = Field(description="Churn rate of the top 10% over the overall rate.")
    roc_auc_active_365d: Undefined = Field(
        description="ROC-AUC among customers with a purchase in the last 365 days."
    )


class LTVMetrics(_Part):
    """One LTV scorer on the test customers (spend over the LTV horizon)."""

    mae: float = Field(description="Lower is better.")
    rmse: float = Field(description="Lower is better.")
    spearman: float
    normalized_gini: float
    top10_capture: float = Field(description="Share of actual spend held by the top 10%.")


class ChurnComponents(_Part):
    """Test ROC-AUC of each part of the churn stack on its own."""

    xgboost: float
    logistic: float


class ChurnCalibration(_Part):
    """``P(churn) = σ(a·m_xgb + b·m_logistic + c)``."""

    a: float
    b: float
    c: float


class ChurnBacktest(_Part):
    model: ChurnMetrics
    baselines: dict[str, ChurnMetrics]
    components_roc_auc: ChurnComponents
    threshold: float = Field(
        description="The churn flag's probability threshold (F1 on validation)."
    )
    calibration: ChurnCalibration
    test_customers: int
    training_rows: int
    churn_rate: float = Field(description="Share of the test customers who churned.")


class LTVStack(_Part):
    """``log1p(LTV) = w_xgb·u + w_bgnbd·log1p(E_bgnbd) + intercept``."""

    w_xgb: float
    w_bgnbd: float
    intercept: float


class LTVBacktest(_Part):
    model: LTVMetrics
    baselines: dict[str, LTVMetrics]
    objective: str = Field(description="`log1p_squared_error` or `tweedie`.")
    validation_spearman_by_objective: dict[str, float]
    interval_coverage_10_90: float = Field(
        description="Share of test customers whose actual spend fell in [ltv_low, ltv_high]."
    )
    stack: LTVStack
    test_customers: int
    training_rows: int


class SegmentSummary(_Part):
    """One segment of the churn test customers."""

    segment: str
    customers: int
    revenue_share: float
    churn_rate: float
    action: str


class OriginResult(_Part):
    """One task's headline metric at one test origin, for the model and each baseline."""

    task: Literal["churn", "ltv"]
    metric: str = Field(description="`roc_auc` for churn, `spearman` for LTV.")
    test_cutoff: date
    model: Undefined
    baselines: dict[str, Undefined]


class RollingMetric(_Part):
    """One metric over the rolling origins: means, and the paired bootstrap interval of
    (model − best baseline)."""

    model_mean: Undefined
    model_by_origin: list[Undefined] = Field(description="Latest origin first.")
    baselines: dict[str, Undefined] = Field(description="Each baseline's mean over the origins.")
    best_baseline: str | None
    higher_is_better: bool
    diff_mean: Undefined = Field(description="Model mean − best baseline mean.")
    diff_interval_90: tuple[Undefined, Undefined] = Field(
        description="5th and 95th percentiles of the bootstrap difference."
    )
    verdict: Literal["better", "worse", "not distinguishable", "undefined"]


class RollingOrigins(_Part):
    churn: list[date] = Field(description="Test origins, latest (the test cutoff) first.")
    ltv: list[date] = Field(description="Test origins, latest (the test cutoff) first.")


class RollingWindows(_Part):
    churn: list[TaskWindow]
    ltv: list[TaskWindow]


class RollingEvaluation(_Part):
    """The model and every baseline at several test origins, compared per metric."""

    origins: RollingOrigins
    origin_every_days: int
    resamples: int = Field(description="Paired bootstrap resamples of the customers.")
    seed: int
    interval: float = Field(description="Coverage of `diff_interval_90` (0.9).")
    metrics: dict[str, dict[str, RollingMetric]] = Field(
        description="Per task (`churn`, `ltv`), per metric."
    )
    windows: RollingWindows


class BacktestReport(_Part):
    tenant: str
    churn: ChurnBacktest
    ltv: LTVBacktest
    segments: list[SegmentSummary]
    rolling_origin: list[OriginResult] = Field(
        description="Each task's headline metric at each test origin."
    )
    rolling: RollingEvaluation | None = Field(
        None, description="Absent from bundles written before the rolling evaluation."
    )
    windows: BacktestWindows
    notes: list[str] = Field(
        default_factory=list, description="What the run changed to fit the data it had."
    )
    timings: dict[str, float] = Field(description="Seconds per pipeline stage, and `total`.")

    def as_json(self) -> dict[str, Any]:
        """The report as bundles hold it: JSON values, NaN as null, and the keys older reports
        lack (``rolling``, ``notes``) left out when they have nothing."""
        stored: dict[str, Any] = json.loads(self.model_dump_json(exclude_defaults=True))
        return stored
