"""The backtest report a bundle carries: the models against the baselines on the test cutoffs and
over the rolling origins, the segments, and the windows it was all measured on.

The trainer builds it (`retention_trainer.pipeline`); it travels in ``bundle.json`` under
``report`` and in the trainer's run records; scoring's model card (`GET /v1/model`) shows part of
it. Its JSON is the report's JSON as bundles have always held it:

- a metric the data cannot define (ROC-AUC among active customers when all of them churned, a
  rolling interval with no finite resample) is computed as NaN and held as None, ``null`` in
  JSON; older bundles wrote it as the ``NaN`` literal, which reads back as None too;
- ``rolling`` is absent from bundles written before the rolling evaluation, ``notes`` when there
  is nothing to note; both read back as their defaults and are left out again when written. So
  are ``orders`` (expected orders and the next-order date), ``importance`` (global feature
  importance), ``sampling`` (which customers the training examples used) and the churn
  section's ``expected_calibration_error`` and ``reliability``, which bundles before them lack.

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
    "CustomerSampling",
    "FeatureImportance",
    "IntervalByOrigin",
    "LTVBacktest",
    "LTVInterval",
    "LTVMetrics",
    "LTVStack",
    "OrdersBacktest",
    "OrdersMetrics",
    "OriginResult",
    "ReliabilityBin",
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


class ReliabilityBin(_Part):
    """One of the ten equal-width probability bins of the churn model on the test customers."""

    lower: float
    upper: float = Field(description="Bins are [lower, upper); the last one includes 1.")
    count: int
    mean_predicted: Undefined = Field(description="Mean churn probability; null when empty.")
    observed_rate: Undefined = Field(description="Share who churned; null when empty.")


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
    expected_calibration_error: Undefined = Field(
        None,
        description="Σ over the 10 bins of (count / customers) × |mean predicted − observed "
        "rate|; absent from reports before it.",
    )
    reliability: list[ReliabilityBin] = Field(
        default_factory=list, description="The 10 bins behind the calibration error."
    )


class LTVStack(_Part):
    """``log(LTV) = w_xgb·u + w_bgnbd·log1p(E_bgnbd) + intercept`` (``link="log"``, a Poisson fit
    of the mean), or ``log1p(LTV) = …`` by least squares in reports before it (``"log1p"``)."""

    w_xgb: float
    w_bgnbd: float
    intercept: float
    link: Literal["log", "log1p"] = "log1p"
    level: float = Field(1.0, description="Seasonal level: a factor on the stacked point.")
    level_cutoff: date | None = Field(
        None, description="Where the level was measured: about a year before the test cutoff."
    )


class LTVInterval(_Part):
    """The 80% interval at the test cutoff: how it was built and whether it meant what it says
    (about 80% of customers' actual spend inside). Absent from reports before it."""

    base: Literal["quantiles", "point"] = Field(
        description="`quantiles` (quantile booster, CQR) or `point` (conformal residuals)."
    )
    offsets: tuple[float, float] = Field(
        description="Conformal offsets (low, high) in log1p space, fitted on validation."
    )
    validation_coverage: float = Field(description="Coverage on validation after calibration.")
    validation_median_width_by_base: dict[str, float] = Field(
        description="Each base's median width on validation; the narrower was kept."
    )


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
    validation_by_objective: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per point candidate: validation spearman, top10_capture, mae and the "
        "`score` that chose it (gains over BG/NBD × Gamma-Gamma). Absent before it.",
    )
    interval_coverage_80: Undefined = Field(
        None, description="Same as `interval_coverage_10_90`: the 80% interval's coverage."
    )
    interval_median_width: Undefined = Field(
        None, description="Median of ltv_high − ltv_low over the test customers."
    )
    interval: LTVInterval | None = None


class OrdersMetrics(_Part):
    """One expected-orders scorer on the churn test customers (orders over the churn horizon)."""

    mae: float = Field(description="Mean absolute error of expected orders. Lower is better.")
    next_order_median_abs_days: Undefined = Field(
        description="Median |next-order date − actual first order| in days, over the customers "
        "who ordered within the horizon and were given a date. Lower is better."
    )
    next_order_dated_share: Undefined = Field(
        description="Share of the customers who ordered within the horizon that had a date."
    )
    next_order_hit_rate: Undefined = Field(
        description="Of the customers whose date fell within the horizon, the share who had "
        "ordered by it: 0.5 when the dates mean what they say."
    )


class OrdersBacktest(_Part):
    """Expected orders and the next-order date at the churn test cutoff."""

    horizon_days: int
    method: str = Field(description="`bgnbd` or `bgnbd_xgboost`: the one kept on validation.")
    validation_mae_by_method: dict[str, float]
    model: OrdersMetrics
    baselines: dict[str, OrdersMetrics]
    test_customers: int
    ordered_customers: int = Field(description="Test customers who ordered within the horizon.")
    mean_orders: float = Field(description="Mean orders per test customer within the horizon.")


class FeatureImportance(_Part):
    """Mean absolute contribution of each feature on the test customers, largest first: churn in
    log-odds of the calibrated probability, LTV in ``log(LTV)`` of the tree part of the stack
    (``log1p`` before the Poisson stack)."""

    churn: dict[str, float]
    ltv: dict[str, float]


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


class IntervalByOrigin(_Part):
    """The LTV 80% interval at every rolling origin (latest, the test cutoff, first)."""

    coverage_80_by_origin: list[Undefined]
    median_width_by_origin: list[Undefined]
    coverage_80_mean: Undefined
    median_width_mean: Undefined


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
    ltv_interval: IntervalByOrigin | None = Field(
        None, description="Absent from reports before the calibrated interval."
    )


class CustomerSampling(_Part):
    """Which customers the run's training examples used, and which the earlier rolling origins
    and the bootstrap evaluated (the test cutoff's validation and test use all)."""

    sampled: bool = Field(description="False: the tenant is at or below the cap (or no cap).")
    customers: int = Field(description="Customers in the tenant's orders.")
    trained_customers: int = Field(description="Customers whose examples the models trained on.")
    share: float = Field(description="trained_customers / customers.")
    max_customers: int | None = Field(description="The cap in force; None: no cap.")
    rule: str | None = Field(description="How the sample was drawn; None when not sampled.")
    # The evaluation cap (added later: reports before it have none of these keys).
    evaluation_sampled: bool | None = Field(
        None,
        description="True: the earlier rolling origins and the bootstrap used a sample of "
        "evaluated_customers (the test cutoff's numbers are always on everyone); None: a "
        "report from before the evaluation cap.",
    )
    evaluated_customers: int | None = Field(
        None, description="Customers of the earlier origins and the bootstrap; None: not recorded."
    )
    max_evaluation_customers: int | None = Field(
        None, description="The evaluation cap in force; None: no cap or not recorded."
    )


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
    orders: OrdersBacktest | None = Field(
        None, description="Absent from bundles written before expected orders."
    )
    importance: FeatureImportance | None = Field(
        None, description="Absent from bundles written before global importance."
    )
    windows: BacktestWindows
    sampling: CustomerSampling | None = Field(
        None, description="Absent from bundles written before customer sampling."
    )
    notes: list[str] = Field(
        default_factory=list, description="What the run changed to fit the data it had."
    )
    timings: dict[str, float] = Field(description="Seconds per pipeline stage, and `total`.")

    def as_json(self) -> dict[str, Any]:
        """The report as bundles hold it: JSON values, NaN as null, and the keys older reports
        lack (``rolling``, ``notes``, ``orders``, ``importance``, the calibration error and
        reliability table) left out when they have nothing."""
        stored: dict[str, Any] = json.loads(self.model_dump_json(exclude_defaults=True))
        return stored
