"""The rolling evaluation on a real slice: origins, point-in-time windows, the paired bootstrap,
the recent-spend baseline and the run report's reading of it."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from retention_trainer.evaluation.backtest import churn_report
from retention_trainer.evaluation.baselines import (
    bgnbd_churn_scores,
    bgnbd_spend,
    recency_scores,
    recent_spend,
)
from retention_trainer.evaluation.bootstrap import (
    BATCH_METRICS,
    PairedSample,
    ScoredSample,
    batch_metric,
    paired_bootstrap,
)
from retention_trainer.evaluation.calibration import expected_calibration_error, reliability_table
from retention_trainer.evaluation.metrics import ltv_metrics
from retention_trainer.evaluation.rolling import OriginScores, rolling_summary
from retention_trainer.pipeline import TrainingRun, rolling_plans, train_and_backtest
from retention_trainer.run_report import build_run_report
from retention_trainer.training_set import cutoff_instant, training_examples
from tests.support.uci_orders import TEST_DATA, load_orders

SLICE = TEST_DATA / "online_retail_II_slice.parquet"
CUTOFF = date(2011, 6, 12)
HORIZON = 90
CHURN_KEYS = ("roc_auc", "pr_auc", "brier", "f1", "lift_top_decile", "roc_auc_active_365d", "ece")
LTV_KEYS = ("mae", "rmse", "spearman", "normalized_gini", "top10_capture")


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(SLICE)


@pytest.fixture(scope="module")
def at_cutoff(orders: pl.DataFrame) -> pl.DataFrame:
    """Purchasing customers at CUTOFF with features and labels (churn 90 days, spend 90 days)."""
    return training_examples(orders, [CUTOFF], churn_horizon_days=HORIZON, ltv_horizon_days=HORIZON)


@pytest.fixture(scope="module")
def run(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(orders, resamples=1000)


def _churn_samples(orders: pl.DataFrame, frame: pl.DataFrame) -> dict[str, ScoredSample]:
    y = frame["churned"].to_numpy()
    active = frame["orders_365d"].to_numpy() > 0
    return {
        "bgnbd": ScoredSample(y, bgnbd_churn_scores(orders, CUTOFF, frame, HORIZON), 0.5, active),
        # Recency ranks: thousands of ties, the hard case for tie handling.
        "recency": ScoredSample(y, recency_scores(frame), 0.6, active),
    }


def _ltv_samples(orders: pl.DataFrame, frame: pl.DataFrame) -> dict[str, ScoredSample]:
    actual = frame["future_spend"].to_numpy()
    return {
        "bgnbd_gamma_gamma": ScoredSample(actual, bgnbd_spend(orders, CUTOFF, frame, HORIZON)),
        # Net spend is 0 for many customers: ties in the prediction.
        "recent_spend": ScoredSample(actual, recent_spend(orders, CUTOFF, frame, HORIZON)),
    }


def test_batch_metrics_equal_the_report_metrics_on_the_sample_and_on_resamples(
    orders: pl.DataFrame, at_cutoff: pl.DataFrame
) -> None:
    n = at_cutoff.height
    rng = np.random.default_rng(3)
    rows = [np.arange(n), *rng.integers(0, n, size=(3, n))]
    counts = np.stack([np.bincount(r, minlength=n) for r in rows])
    for name, s in _churn_samples(orders, at_cutoff).items():
        got = {m: batch_metric(m, s, counts) for m in CHURN_KEYS}
        for b, r in enumerate(rows):
            assert s.active is not None and s.threshold is not None
            expected = churn_report(s.actual[r], s.scores[r], s.threshold, s.active[r])
            table = reliability_table(s.actual[r], s.scores[r])
            expected["ece"] = expected_calibration_error(table)
            for m in CHURN_KEYS:
                assert got[m][b] == pytest.approx(expected[m], rel=1e-9, abs=1e-12), (name, m, b)
    for name, s in _ltv_samples(orders, at_cutoff).items():
        got = {m: batch_metric(m, s, counts) for m in LTV_KEYS}
        for b, r in enumerate(rows):
            expected = ltv_metrics(s.actual[r], s.scores[r])
            for m in LTV_KEYS:
                assert got[m][b] == pytest.approx(expected[m], rel=1e-9, abs=1e-9), (name, m, b)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(draws, [5, 95])
    return float(low), float(high)


def test_the_same_scores_give_an_interval_around_0(
    orders: pl.DataFrame, at_cutoff: pl.DataFrame
) -> None:
    churn = _churn_samples(orders, at_cutoff)["bgnbd"]
    twin = ScoredSample(churn.actual, churn.scores.copy(), churn.threshold, churn.active)
    ltv = _ltv_samples(orders, at_cutoff)["bgnbd_gamma_gamma"]
    ltv_twin = ScoredSample(ltv.actual, ltv.scores.copy())
    pairs = {m: PairedSample(churn, twin) for m in CHURN_KEYS}
    pairs.update({m: PairedSample(ltv, ltv_twin) for m in LTV_KEYS})
    draws = paired_bootstrap([*CHURN_KEYS, *LTV_KEYS], [pairs, pairs], resamples=1000, seed=1)
    for m, values in draws.items():
        low, high = _interval(values)
        assert low <= 0 <= high, m
    # Paired: both scorers see the same customers, so identical scores differ by exactly 0,
    # although each one's own metric moves from resample to resample.
    w = np.random.default_rng(1).integers(0, 3, size=(50, churn.actual.size)).astype(float)
    assert np.ptp(batch_metric("roc_auc", churn, w)) > 0.01


def test_a_known_improvement_gives_an_interval_off_0_on_the_right_side(
    orders: pl.DataFrame, at_cutoff: pl.DataFrame
) -> None:
    churn = _churn_samples(orders, at_cutoff)["bgnbd"]
    y, p = churn.actual, churn.scores
    # Every probability moved 30% of the way towards the true label: better on every churn
    # metric; spend predictions moved halfway towards the actual spend.
    sharper = ScoredSample(y, p + 0.3 * (y - p), churn.threshold, churn.active)
    ltv = _ltv_samples(orders, at_cutoff)["bgnbd_gamma_gamma"]
    closer = ScoredSample(ltv.actual, ltv.scores + 0.5 * (ltv.actual - ltv.scores))
    origin = OriginScores(
        CUTOFF, y, {"model": sharper.scores, "bgnbd": p}, {"model": 0.5, "bgnbd": 0.5}, churn.active
    )
    ltv_origin = OriginScores(
        CUTOFF, ltv.actual, {"model": closer.scores, "bgnbd_gamma_gamma": ltv.scores}
    )
    summary = rolling_summary(
        {"churn": [origin], "ltv": [ltv_origin]}, origin_every_days=30, resamples=1000, seed=2
    )
    for m in ("roc_auc", "pr_auc", "brier", "roc_auc_active_365d"):
        entry = summary["metrics"]["churn"][m]
        low, high = entry["diff_interval_90"]
        assert (low > 0) if entry["higher_is_better"] else (high < 0), (m, low, high)
        assert entry["verdict"] == "better"
        # The point difference is the metric difference on the customers themselves.
        exact = (
            batch_metric(m, sharper, np.ones(y.size))[0]
            - batch_metric(m, churn, np.ones(y.size))[0]
        )
        assert entry["diff_mean"] == pytest.approx(exact)
    for m in ("mae", "rmse", "spearman"):
        entry = summary["metrics"]["ltv"][m]
        low, high = entry["diff_interval_90"]
        assert (low > 0) if entry["higher_is_better"] else (high < 0), (m, low, high)
    # The other way round, the same shift is a clear loss.
    swapped = rolling_summary(
        {
            "churn": [
                OriginScores(
                    CUTOFF,
                    y,
                    {"model": p, "bgnbd": sharper.scores},
                    {"model": 0.5, "bgnbd": 0.5},
                    churn.active,
                )
            ]
        },
        origin_every_days=30,
        resamples=1000,
        seed=2,
    )
    assert swapped["metrics"]["churn"]["roc_auc"]["verdict"] == "worse"
    assert swapped["metrics"]["churn"]["brier"]["verdict"] == "worse"


def test_the_bootstrap_is_seeded(orders: pl.DataFrame, at_cutoff: pl.DataFrame) -> None:
    samples = _churn_samples(orders, at_cutoff)
    pairs = {"roc_auc": PairedSample(samples["bgnbd"], samples["recency"])}
    first = paired_bootstrap(["roc_auc"], [pairs], resamples=1000, seed=5)["roc_auc"]
    again = paired_bootstrap(["roc_auc"], [pairs], resamples=1000, seed=5)["roc_auc"]
    other = paired_bootstrap(["roc_auc"], [pairs], resamples=1000, seed=6)["roc_auc"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert set(BATCH_METRICS) == {*CHURN_KEYS, *LTV_KEYS}


def test_origins_are_30_days_apart_and_each_trains_only_on_labels_known_before_it(
    orders: pl.DataFrame, run: TrainingRun
) -> None:
    report = run.report.as_json()
    rolling = report["rolling"]
    for task, horizon in (("churn", 90), ("ltv", 180)):
        origins = [date.fromisoformat(d) for d in rolling["origins"][task]]
        assert len(origins) == 4
        assert [a - b for a, b in pairwise(origins)] == [timedelta(days=30)] * 3
        assert origins[0].isoformat() == report["windows"][task]["test_cutoff"]
        plans = rolling_plans(
            orders,
            task=task,
            horizon_days=horizon,
            test_cutoff=None,
            every_days=30,
            rolling_origins=3,
        )
        assert [p.as_dict() for p in plans] == rolling["windows"][task]
        for plan in plans:
            # Change every order after the origin: the training and validation examples, labels
            # included, stay the same; the origin's own labels do not (the change is material).
            after = pl.col("occurred_at") > cutoff_instant(plan.test_cutoff)
            changed = pl.concat(
                [
                    orders.filter(~after),
                    orders.filter(after)
                    .with_columns(total=pl.col("total") * 3)
                    .sample(fraction=0.5, seed=1),
                ]
            )
            known = (*plan.training_cutoffs, plan.validation_cutoff)
            kwargs = {"churn_horizon_days": 90, "ltv_horizon_days": horizon}
            assert training_examples(orders, known, **kwargs).equals(
                training_examples(changed, known, **kwargs)
            ), (task, plan.test_cutoff)
            label = "churned" if task == "churn" else "future_spend"
            test_now = training_examples(orders, [plan.test_cutoff], **kwargs)[label]
            test_changed = training_examples(changed, [plan.test_cutoff], **kwargs)[label]
            assert not test_now.equals(test_changed)


def test_recent_spend_is_the_net_spend_of_the_last_horizon(
    orders: pl.DataFrame, at_cutoff: pl.DataFrame
) -> None:
    # Independently, from the raw lines: cleaned by the data rules, quantity × price summed over
    # the lines dated in (cutoff instant − 90 days, cutoff instant], in UTC.
    instant = cutoff_instant(CUTOFF)
    lines = (
        pl.read_parquet(SLICE)
        .unique()
        .filter(pl.col("Customer ID").is_not_null(), pl.col("Price") > 0, pl.col("Quantity") != 0)
        .with_columns(
            at=pl.col("InvoiceDate")
            .dt.replace_time_zone("Europe/London", ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"),
            customer_id=pl.col("Customer ID").cast(pl.Int64).cast(pl.String),
        )
    )
    # An order's time is its first line's: take it per invoice, then window by it.
    invoices = lines.group_by("Invoice", "customer_id").agg(
        at=pl.col("at").min(), spend=(pl.col("Quantity") * pl.col("Price")).sum()
    )
    expected = (
        invoices.filter(pl.col("at") > instant - timedelta(days=HORIZON), pl.col("at") <= instant)
        .group_by("customer_id")
        .agg(pl.col("spend").sum())
    )
    got = at_cutoff.select("customer_id").with_columns(
        baseline=pl.Series(recent_spend(orders, CUTOFF, at_cutoff, HORIZON))
    )
    both = got.join(expected, on="customer_id", how="left").with_columns(
        pl.col("spend").fill_null(0.0)
    )
    assert both.height == at_cutoff.height and (both["spend"] != 0).sum() > 20
    np.testing.assert_allclose(both["baseline"], both["spend"], atol=1e-6)
    # The same number the shared feature definition keeps as `spend_90d`.
    np.testing.assert_allclose(both["baseline"], at_cutoff["spend_90d"], atol=1e-6)


def test_the_run_reports_recent_spend_and_the_rolling_block(
    orders: pl.DataFrame, run: TrainingRun
) -> None:
    # The report as its JSON (as a bundle holds it).
    report_json = run.report.as_json()
    ltv = report_json["ltv"]
    horizon = report_json["windows"]["ltv"]["horizon_days"]
    cutoff = date.fromisoformat(report_json["windows"]["ltv"]["test_cutoff"])
    spend = recent_spend(orders, cutoff, run.ltv_test, horizon)
    assert ltv["baselines"]["recent_spend"] == pytest.approx(
        ltv_metrics(run.ltv_test["future_spend"].to_numpy(), spend)
    )
    rolling = report_json["rolling"]
    assert rolling["resamples"] >= 1000 and "seed" in rolling
    for task, keys in (("churn", CHURN_KEYS), ("ltv", LTV_KEYS)):
        metrics = rolling["metrics"][task]
        assert set(metrics) == set(keys)
        for m, entry in metrics.items():
            low, high = entry["diff_interval_90"]
            assert low <= high
            # The test cutoff's numbers are origin 0's.
            section = report_json[task]
            at_test = section["expected_calibration_error"] if m == "ece" else section["model"][m]
            assert entry["model_by_origin"][0] == pytest.approx(at_test)
            assert entry["baselines"].keys() == section["baselines"].keys()
            means = entry["baselines"]
            pick = max if entry["higher_is_better"] else min
            assert entry["best_baseline"] == pick(means, key=means.__getitem__)
            assert entry["diff_mean"] == pytest.approx(
                entry["model_mean"] - means[entry["best_baseline"]]
            )
    assert "recent_spend" in rolling["metrics"]["ltv"]["mae"]["baselines"]
    assert "## Rolling evaluation" in run.markdown

    report = build_run_report(run, orders)
    assert report.facts["rolling"]["origins"] == rolling["origins"]
    spearman = rolling["metrics"]["ltv"]["spearman"]
    assert "test origins" in report.markdown
    best = spearman["best_baseline"]
    expected = {
        "better": f"LTV spearman: the model beats the best baseline ({best})",
        "not distinguishable": f"LTV spearman: not distinguishable from {best}",
        "worse": f"LTV spearman: the model does worse than the best baseline ({best})",
    }[spearman["verdict"]]
    assert expected in report.markdown
