"""``train_and_backtest``: training sets → segmenter, churn and LTV models → backtest → bundle.

Stages (wall time of each is in the report's ``timings``):

1. ``training_sets``: features (shared definition) and labels at every cutoff any task or
   rolling origin needs, in one pass; above ``max_customers``, two: validation and test cutoffs
   on every customer, training cutoffs on a deterministic sample (:mod:`.sampling`).
2. ``churn`` / ``ltv``: fit on the training cutoffs, validate on the validation cutoff, score the
   test cutoff; the BG/NBD × Gamma-Gamma part of the LTV model is fitted at the validation
   cutoff (for the stack) and at the test cutoff (for scoring), each on data up to that cutoff.
3. ``baselines``: the baselines of :mod:`retention_trainer.evaluation.baselines` on the same test
   customers.
4. ``rolling_origin``: steps 2–3 again at up to ``rolling_origins`` earlier test origins,
   ``origin_every_days`` apart (30: the latest is the test cutoff, then −30, −60, −90 days), each
   with its own windows from :func:`~retention_trainer.training_set.plan_windows`, so every
   origin's training and validation labels end at or before it; the model is fitted with the same
   settings as at the test cutoff.
5. ``bootstrap``: per metric, the model's and each baseline's mean over the origins and a paired
   bootstrap 90% interval of (model − best baseline)
   (:mod:`retention_trainer.evaluation.rolling`): the report's ``rolling`` block.
6. ``orders``: the order model (expected orders over the churn horizon and the next-order date,
   :mod:`retention_trainer.fitting.orders`) on the churn windows, backtested at the churn test
   cutoff against BG/NBD (:mod:`retention_trainer.evaluation.orders`).
7. ``segments``: the segmenter, fitted on the churn test cutoff's customers.
8. ``bundle``: reference distributions, global feature importance
   (:mod:`retention_trainer.evaluation.importance`) and the report.

Nothing after a task's test cutoff reaches its model: training and validation label windows end
at or before it (see :mod:`retention_trainer.training_set`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from retention_bundle.backtest_report import (
    BacktestReport,
    BacktestWindows,
    ChurnBacktest,
    ChurnCalibration,
    ChurnComponents,
    FeatureImportance,
    IntervalByOrigin,
    LTVBacktest,
    LTVInterval,
    LTVStack,
    OrdersBacktest,
    OriginResult,
    ReliabilityBin,
    RollingEvaluation,
    SegmentSummary,
)
from retention_bundle.bundle import ModelBundle
from retention_bundle.drift_reference import reference_distributions
from retention_bundle.models.churn import ChurnModel
from retention_bundle.models.ltv import LTVModel
from retention_bundle.models.orders import OrderModel
from retention_bundle.models.segmenter import Segmenter
from retention_bundle.predict import score
from retention_shared.features import FEATURE_NAMES
from retention_trainer.evaluation.backtest import churn_report, render_markdown
from retention_trainer.evaluation.baselines import (
    bgnbd_churn_scores,
    bgnbd_orders,
    bgnbd_spend,
    past_spend_scaled,
    recency_scores,
    recent_spend,
    rfm_logistic_scores,
)
from retention_trainer.evaluation.calibration import (
    expected_calibration_error,
    reliability_table,
)
from retention_trainer.evaluation.importance import churn_importance, ltv_importance
from retention_trainer.evaluation.metrics import (
    ltv_metrics,
    roc_auc,
    select_threshold,
    spearman,
)
from retention_trainer.evaluation.orders import days_to_next_order, orders_metrics
from retention_trainer.evaluation.rolling import (
    BOOTSTRAP_RESAMPLES,
    OriginScores,
    rolling_summary,
)
from retention_trainer.fitting.churn import fit_churn_model
from retention_trainer.fitting.ltv import LTVFit, fit_ltv_model
from retention_trainer.fitting.orders import fit_order_bgnbd, fit_order_model
from retention_trainer.fitting.purchase import fit_purchase_model
from retention_trainer.fitting.seasonal import seasonal_cutoff, with_seasonal_level
from retention_trainer.fitting.segmenter import fit_segmenter
from retention_trainer.sampling import (
    DEFAULT_MAX_CUSTOMERS,
    DEFAULT_MAX_EVALUATION_CUSTOMERS,
    evaluation_sample,
    sample_customers,
    sampled_orders,
    sampled_rows,
)
from retention_trainer.training_set import (
    CHURN_HORIZON_DAYS,
    CUTOFF_EVERY_DAYS,
    LTV_HORIZON_DAYS,
    TaskWindows,
    plan_windows,
    training_examples,
)

__all__ = [
    "ORIGIN_EVERY_DAYS",
    "ROLLING_ORIGINS",
    "TrainingRun",
    "rolling_plans",
    "train_and_backtest",
]

FEATURES = list(FEATURE_NAMES)
# Earlier test origins next to the test cutoff, and their spacing: four origins a month apart.
ROLLING_ORIGINS = 3
ORIGIN_EVERY_DAYS = 30
# One year of history cannot hold a 180-day LTV backtest (train, validate and test windows).
SHORT_LTV_HORIZON_DAYS = 90


@dataclass(frozen=True)
class TrainingRun:
    bundle: ModelBundle
    report: BacktestReport
    markdown: str
    # Test-cutoff scores of the bundle: churn rows at the churn test cutoff, LTV rows at the LTV one.
    churn_predictions: pl.DataFrame
    ltv_predictions: pl.DataFrame
    timings: dict[str, float]
    # The labelled test examples behind those predictions (features, ``churned``,
    # ``future_spend``), so another bundle can be scored on the same test set (the gate).
    churn_test: pl.DataFrame
    ltv_test: pl.DataFrame


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _at(examples: pl.DataFrame, cutoffs: tuple[date, ...] | date) -> pl.DataFrame:
    wanted = cutoffs if isinstance(cutoffs, tuple) else (cutoffs,)
    return examples.filter(pl.col("cutoff").is_in(wanted))


def _X(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(FEATURES).to_numpy().astype(np.float64)


def _churn_task(
    examples: pl.DataFrame, trainable: pl.DataFrame, w: TaskWindows
) -> tuple[ChurnModel, pl.DataFrame]:
    train = _at(trainable, w.training_cutoffs)
    valid = _at(examples, w.validation_cutoff)
    model = fit_churn_model(
        _X(train), train["churned"].to_numpy(), _X(valid), valid["churned"].to_numpy()
    )
    return model, _at(examples, w.test_cutoff)


def _churn_baselines(
    orders: pl.DataFrame, examples: pl.DataFrame, trainable: pl.DataFrame, w: TaskWindows
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(validation scores, test scores) per baseline; the fitted one trains as the model does."""
    train = _at(trainable, w.training_cutoffs)
    valid, test = _at(examples, w.validation_cutoff), _at(examples, w.test_cutoff)
    rfm_valid, rfm_test = rfm_logistic_scores(train, valid, test)
    return {
        "recency": (recency_scores(valid), recency_scores(test)),
        "rfm_logistic": (rfm_valid, rfm_test),
        "bgnbd": (
            bgnbd_churn_scores(orders, w.validation_cutoff, valid, w.horizon_days),
            bgnbd_churn_scores(orders, w.test_cutoff, test, w.horizon_days),
        ),
    }


def _ltv_task(
    examples: pl.DataFrame, trainable: pl.DataFrame, w: TaskWindows
) -> tuple[LTVModel, pl.DataFrame, LTVFit]:
    train = _at(trainable, w.training_cutoffs)
    valid = _at(examples, w.validation_cutoff)
    test = _at(examples, w.test_cutoff)
    at_valid = fit_purchase_model(valid)
    fit = fit_ltv_model(
        _X(train),
        train["future_spend"].to_numpy(),
        _X(valid),
        valid["future_spend"].to_numpy(),
        at_valid.expected_spend(valid, w.horizon_days),
        at_valid,
        w.horizon_days,
    )
    # The season of the test horizon, seen one year earlier (level 1 without such a cutoff).
    season = seasonal_cutoff(w.test_cutoff, w.training_cutoffs, w.every_days // 2)
    at_season = _at(trainable, season) if season is not None else None
    model, _ = with_seasonal_level(
        fit.model, at_season, _X(at_season) if at_season is not None else None
    )
    # Scoring uses the parameters fitted on everything known at the test cutoff.
    model = dataclasses.replace(model, purchase_model=fit_purchase_model(test))
    return model, test, dataclasses.replace(fit, level_cutoff=season)


def _interval_reading(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """(coverage, median width) of an interval on the customers' actual spend."""
    return float(np.mean((actual >= low) & (actual <= high))), float(np.median(high - low))


def _orders_task(
    orders: pl.DataFrame, examples: pl.DataFrame, trainable: pl.DataFrame, w: TaskWindows
) -> tuple[OrderModel, OrdersBacktest]:
    """The order model on the churn windows, and its backtest at the churn test cutoff."""
    test, valid = _at(examples, w.test_cutoff), _at(examples, w.validation_cutoff)
    model, validation_mae = fit_order_model(
        _at(trainable, w.training_cutoffs),
        valid,
        tuple(FEATURES),
        w.horizon_days,
        served=fit_order_bgnbd(test),
        valid_days=days_to_next_order(orders, w.validation_cutoff, valid, w.horizon_days),
    )
    actual = test["future_orders"].to_numpy().astype(float)
    days = days_to_next_order(orders, w.test_cutoff, test, w.horizon_days)
    forecast = model.forecast(test, _X(test))
    alone = dataclasses.replace(model, booster=None).forecast(test, _X(test))
    classical = bgnbd_orders(orders, w.test_cutoff, test, w.horizon_days)

    def metrics(expected: np.ndarray, predicted_days: np.ndarray) -> dict[str, float]:
        return orders_metrics(actual, expected, days, predicted_days, w.horizon_days)

    section = OrdersBacktest(
        horizon_days=w.horizon_days,
        method=model.method,
        validation_mae_by_method=validation_mae,
        model=metrics(forecast.expected_orders, forecast.next_order_days),
        baselines={
            "bgnbd": metrics(*classical),
            "bgnbd_occasions": metrics(alone.expected_orders, alone.next_order_days),
        },
        test_customers=test.height,
        ordered_customers=int(np.isfinite(days).sum()),
        mean_orders=float(actual.mean()),
    )
    return model, section


def _ltv_predict(model: LTVModel, frame: pl.DataFrame) -> tuple[np.ndarray, ...]:
    expected = model.purchase_model.expected_spend(frame, model.horizon_days)
    return model.predict(_X(frame), expected)


def _segment_table(segmenter: Segmenter, test: pl.DataFrame) -> list[SegmentSummary]:
    assigned = test.select("monetary", "churned").with_columns(
        segment=pl.Series(segmenter.segment_names(test))
    )
    total = float(assigned["monetary"].clip(lower_bound=0).sum()) or 1.0
    stats = assigned.group_by("segment").agg(
        customers=pl.len(),
        revenue=pl.col("monetary").clip(lower_bound=0).sum(),
        churn_rate=pl.col("churned").mean(),
    )
    by_name = {row["segment"]: row for row in stats.iter_rows(named=True)}
    table = []
    for name, action in zip(segmenter.names, segmenter.actions, strict=True):
        row = by_name.get(name, {"customers": 0, "revenue": 0.0, "churn_rate": 0.0})
        table.append(
            SegmentSummary(
                segment=name,
                customers=int(row["customers"]),
                revenue_share=float(row["revenue"]) / total,
                churn_rate=float(row["churn_rate"] or 0.0),
                action=action,
            )
        )
    return table


def rolling_plans(
    orders: pl.DataFrame,
    *,
    task: str,
    horizon_days: int,
    test_cutoff: date | None,
    every_days: int,
    rolling_origins: int,
    origin_every_days: int = ORIGIN_EVERY_DAYS,
) -> list[TaskWindows]:
    """The task's windows at its test cutoff, then at up to `rolling_origins` earlier test
    origins, `origin_every_days` apart (as many as the history holds). Each origin's windows are
    planned by `plan_windows` as a test cutoff of its own, so its training and validation label
    windows end at or before it."""
    first = plan_windows(
        orders, task=task, horizon_days=horizon_days, test_cutoff=test_cutoff, every_days=every_days
    )
    plans = [first]
    for k in range(1, rolling_origins + 1):
        try:
            plans.append(
                plan_windows(
                    orders,
                    task=task,
                    horizon_days=horizon_days,
                    test_cutoff=first.test_cutoff - timedelta(days=k * origin_every_days),
                    every_days=every_days,
                )
            )
        except ValueError:
            break
    return plans


def train_and_backtest(
    orders: pl.DataFrame,
    *,
    tenant: str | None = None,
    churn_horizon_days: int = CHURN_HORIZON_DAYS,
    ltv_horizon_days: int | None = None,
    churn_test_cutoff: date | None = None,
    ltv_test_cutoff: date | None = None,
    every_days: int = CUTOFF_EVERY_DAYS,
    rolling_origins: int = ROLLING_ORIGINS,
    origin_every_days: int = ORIGIN_EVERY_DAYS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    previous_segmenter: Segmenter | None = None,
    max_customers: int | None = DEFAULT_MAX_CUSTOMERS,
    max_evaluation_customers: int | None = DEFAULT_MAX_EVALUATION_CUSTOMERS,
) -> TrainingRun:
    """The whole pipeline on one tenant's orders frame (``ORDER_SCHEMA``).

    ``rolling_origins`` earlier test origins, ``origin_every_days`` apart, are evaluated next to
    the test cutoff (0: the test cutoff alone), and the report's ``rolling`` block compares the
    model with the best baseline per metric over all of them with ``resamples`` paired bootstrap
    resamples drawn from ``seed``.

    Test cutoffs default to the last event date minus each task's horizon. Without an explicit
    ``ltv_horizon_days``, the LTV horizon is 180 days, or 90 when the history is too short for a
    180-day backtest (one year of data), which the report's ``notes`` then say. Returns the bundle,
    the typed report (`BacktestReport`) and its Markdown, the test predictions and stage timings.

    Above ``max_customers`` customers (None or 0: no cap), the training examples of every task
    and origin use a deterministic sample of that many customers (:mod:`.sampling`); validation,
    test and baselines use every customer. Above ``max_evaluation_customers`` (None or 0: no
    cap), the earlier rolling origins (validation, test, baselines) and the bootstrap's resamples
    use a sample drawn by the same rule; the test cutoff's numbers stay on every customer. The
    report's ``sampling`` block records both.
    """
    clock = _Stopwatch()
    if tenant is None:
        tenants = orders["tenant_id"].unique().to_list()
        if len(tenants) != 1:
            raise ValueError(f"train one tenant at a time; the orders hold {len(tenants)}")
        tenant = str(tenants[0])

    def plans(task: str, horizon: int, test: date | None) -> list[TaskWindows]:
        return rolling_plans(
            orders,
            task=task,
            horizon_days=horizon,
            test_cutoff=test,
            every_days=every_days,
            rolling_origins=rolling_origins,
            origin_every_days=origin_every_days,
        )

    churn_plans = plans("churn", churn_horizon_days, churn_test_cutoff)
    notes: list[str] = []
    if ltv_horizon_days is not None:
        ltv_plans = plans("ltv", ltv_horizon_days, ltv_test_cutoff)
    else:
        try:
            ltv_plans = plans("ltv", LTV_HORIZON_DAYS, ltv_test_cutoff)
        except ValueError as error:
            ltv_plans = plans("ltv", SHORT_LTV_HORIZON_DAYS, ltv_test_cutoff)
            notes.append(f"{error}; using a {SHORT_LTV_HORIZON_DAYS}-day LTV horizon instead")
        ltv_horizon_days = ltv_plans[0].horizon_days
    with clock.stage("training_sets"):
        sample, sampling = sample_customers(orders, tenant, max_customers)
        horizons = {"churn_horizon_days": churn_horizon_days, "ltv_horizon_days": ltv_horizon_days}
        all_plans = (*churn_plans, *ltv_plans)
        if sample is None:
            cutoffs = {c for w in all_plans for c in w.all_cutoffs}
            examples = trainable = training_examples(orders, cutoffs, **horizons)
        else:
            # Evaluation cutoffs on every customer, training cutoffs on the sample only: a date
            # that is one origin's training cutoff and another's validation is computed twice.
            held_out = {c for w in all_plans for c in (w.validation_cutoff, w.test_cutoff)}
            fitted = {c for w in all_plans for c in w.training_cutoffs}
            examples = training_examples(orders, held_out, **horizons)
            trainable = training_examples(sampled_orders(orders, sample), fitted, **horizons)
        # The earlier origins and the bootstrap: their cost grew with every customer, while what
        # they measure (means over origins, interval widths) is settled well below the cap.
        judged = evaluation_sample(orders, tenant, max_evaluation_customers)
        sampling = sampling.model_copy(
            update={
                "evaluation_sampled": judged is not None,
                "evaluated_customers": sampling.customers if judged is None else len(judged),
                "max_evaluation_customers": max_evaluation_customers or None,
            }
        )

    def evaluated(i: int, w: TaskWindows) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(orders, examples) of origin ``i``: everyone at the test cutoff (the gate's numbers),
        the evaluation sample at the earlier origins — only the origin's own held-out rows, made
        per origin, so no sampled copy of the whole examples frame outlives it (peak memory)."""
        if i == 0 or judged is None:
            return orders, examples
        held_out = examples.filter(pl.col("cutoff").is_in([w.validation_cutoff, w.test_cutoff]))
        return sampled_orders(orders, judged), sampled_rows(held_out, judged)

    def resampled(test: pl.DataFrame) -> np.ndarray | None:
        """The test customers the bootstrap resamples (None: all)."""
        if judged is None:
            return None
        return test["customer_id"].is_in(list(judged)).to_numpy()

    rolling: list[OriginResult] = []
    scored: dict[str, list[OriginScores]] = {"churn": [], "ltv": []}
    intervals: list[tuple[float, float]] = []
    for i, w in enumerate(churn_plans):
        origin_orders, origin_examples = evaluated(i, w)
        with clock.stage("churn" if i == 0 else "rolling_origin"):
            churn, test = _churn_task(origin_examples, trainable, w)
            probability = churn.probability(_X(test))
            y = test["churned"].to_numpy()
        with clock.stage("baselines" if i == 0 else "rolling_origin"):
            baselines = _churn_baselines(origin_orders, origin_examples, trainable, w)
            valid_y = _at(origin_examples, w.validation_cutoff)["churned"].to_numpy()
            thresholds = {
                name: select_threshold(valid_y, valid_scores)
                for name, (valid_scores, _) in baselines.items()
            }
        active = test["orders_365d"].to_numpy() > 0
        scored["churn"].append(
            OriginScores(
                origin=w.test_cutoff,
                actual=y.astype(float),
                scores={"model": probability, **{n: s for n, (_, s) in baselines.items()}},
                thresholds={"model": churn.threshold, **thresholds},
                active=active,
                resampled=resampled(test),
            )
        )
        if i == 0:
            train = _at(trainable, w.training_cutoffs)
            reliability = reliability_table(y, probability)
            churn_section = ChurnBacktest(
                model=churn_report(y, probability, churn.threshold, active),
                baselines={
                    name: churn_report(y, scores, thresholds[name], active)
                    for name, (_, scores) in baselines.items()
                },
                components_roc_auc=ChurnComponents(
                    xgboost=roc_auc(y, churn.margins(_X(test))[0]),
                    logistic=roc_auc(y, churn.linear.margin(_X(test))),
                ),
                threshold=churn.threshold,
                calibration=ChurnCalibration(a=churn.stack[0], b=churn.stack[1], c=churn.stack[2]),
                test_customers=len(y),
                training_rows=train.height,
                churn_rate=float(y.mean()),
                expected_calibration_error=expected_calibration_error(reliability),
                reliability=[ReliabilityBin(**row) for row in reliability],
            )
            churn_model, churn_test = churn, test
        rolling.append(
            OriginResult(
                task="churn",
                metric="roc_auc",
                test_cutoff=w.test_cutoff,
                model=roc_auc(y, probability),
                baselines={n: roc_auc(y, s) for n, (_, s) in baselines.items()},
            )
        )

    for i, w in enumerate(ltv_plans):
        origin_orders, origin_examples = evaluated(i, w)
        with clock.stage("ltv" if i == 0 else "rolling_origin"):
            ltv, test, fit = _ltv_task(origin_examples, trainable, w)
            point, low, high = _ltv_predict(ltv, test)
            actual = test["future_spend"].to_numpy()
            intervals.append(_interval_reading(actual, low, high))
        with clock.stage("baselines" if i == 0 else "rolling_origin"):
            baselines_ltv = {
                "past_spend_scaled": past_spend_scaled(test, w.horizon_days),
                "bgnbd_gamma_gamma": bgnbd_spend(
                    origin_orders, w.test_cutoff, test, w.horizon_days
                ),
                "recent_spend": recent_spend(origin_orders, w.test_cutoff, test, w.horizon_days),
            }
        scored["ltv"].append(
            OriginScores(
                origin=w.test_cutoff,
                actual=actual.astype(float),
                scores={"model": point, **baselines_ltv},
                resampled=resampled(test),
            )
        )
        if i == 0:
            inside, width = intervals[0]
            ltv_section = LTVBacktest(
                model=ltv_metrics(actual, point),
                baselines={n: ltv_metrics(actual, s) for n, s in baselines_ltv.items()},
                objective=ltv.objective,
                validation_spearman_by_objective={
                    name: m["spearman"] for name, m in fit.validation_by_objective.items()
                },
                interval_coverage_10_90=inside,
                stack=LTVStack(
                    w_xgb=ltv.stack[0],
                    w_bgnbd=ltv.stack[1],
                    intercept=ltv.stack[2],
                    link=ltv.link,
                    level=ltv.level,
                    level_cutoff=fit.level_cutoff,
                ),
                test_customers=len(actual),
                training_rows=_at(trainable, w.training_cutoffs).height,
                validation_by_objective=fit.validation_by_objective,
                interval_coverage_80=inside,
                interval_median_width=width,
                interval=LTVInterval(
                    base=ltv.interval_base,
                    offsets=ltv.interval_offsets,
                    validation_coverage=fit.validation_by_interval[ltv.interval_base]["coverage"],
                    validation_median_width_by_base={
                        base: v["median_width"] for base, v in fit.validation_by_interval.items()
                    },
                ),
            )
            ltv_model, ltv_test = ltv, test
        rolling.append(
            OriginResult(
                task="ltv",
                metric="spearman",
                test_cutoff=w.test_cutoff,
                model=spearman(actual, point),
                baselines={n: spearman(actual, s) for n, s in baselines_ltv.items()},
            )
        )

    with clock.stage("bootstrap"):
        rolling_block = RollingEvaluation.model_validate(
            rolling_summary(
                scored, origin_every_days=origin_every_days, resamples=resamples, seed=seed
            )
            | {
                "windows": {
                    "churn": [w.as_dict() for w in churn_plans],
                    "ltv": [w.as_dict() for w in ltv_plans],
                },
                "ltv_interval": IntervalByOrigin(
                    coverage_80_by_origin=[c for c, _ in intervals],
                    median_width_by_origin=[w for _, w in intervals],
                    coverage_80_mean=float(np.mean([c for c, _ in intervals])),
                    median_width_mean=float(np.mean([w for _, w in intervals])),
                ),
            }
        )

    with clock.stage("orders"):
        order_model, orders_section = _orders_task(orders, examples, trainable, churn_plans[0])

    with clock.stage("segments"):
        segmenter = fit_segmenter(churn_test, previous=previous_segmenter)
        segments = _segment_table(segmenter, churn_test)

    with clock.stage("bundle"):
        report = BacktestReport(
            tenant=tenant,
            churn=churn_section,
            ltv=ltv_section,
            segments=segments,
            rolling_origin=rolling,
            rolling=rolling_block,
            orders=orders_section,
            windows=BacktestWindows(churn=churn_plans[0].as_dict(), ltv=ltv_plans[0].as_dict()),
            sampling=sampling,
            notes=notes,
            timings={},  # this stage is still running: filled in below
        )
        reference = reference_distributions(churn_test, FEATURES)
        bundle = ModelBundle(
            tenant=tenant,
            feature_names=tuple(FEATURES),
            segmenter=segmenter,
            churn=churn_model,
            ltv=ltv_model,
            report=report,
            reference=reference,
            orders=order_model,
        )
        importance = FeatureImportance(
            churn=churn_importance(bundle, churn_test), ltv=ltv_importance(bundle, ltv_test)
        )
        churn_predictions = score(bundle, churn_test)
        ltv_predictions = score(bundle, ltv_test)
    timings = {**clock.timings, "total": sum(clock.timings.values())}
    report = report.model_copy(update={"importance": importance, "timings": timings})
    markdown = render_markdown(report)
    bundle = dataclasses.replace(bundle, report=report, markdown=markdown)
    return TrainingRun(
        bundle=bundle,
        report=report,
        markdown=markdown,
        churn_predictions=churn_predictions,
        ltv_predictions=ltv_predictions,
        timings=timings,
        churn_test=churn_test,
        ltv_test=ltv_test,
    )
