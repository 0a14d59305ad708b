"""The whole pipeline on a real slice: leakage, bundle round-trip, scoring parity."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from retention_bundle.model_store import load_bundle, save_bundle
from retention_bundle.predict import churn_contributions, score
from retention_shared.features import compute_features
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.training_set import cutoff_instant
from tests.support.uci_orders import TEST_DATA, load_orders

CHURN_TEST = date(2011, 9, 10)
LTV_TEST = date(2011, 6, 12)


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_II_slice.parquet")


def _train(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(
        orders, churn_test_cutoff=CHURN_TEST, ltv_test_cutoff=LTV_TEST, rolling_origins=0
    )


@pytest.fixture(scope="module")
def run(orders: pl.DataFrame) -> TrainingRun:
    return _train(orders)


def test_report_has_the_agreed_shape(run: TrainingRun) -> None:
    report = json.loads(json.dumps(run.report.as_json(), allow_nan=False))
    assert set(report["churn"]["model"]) >= {"roc_auc", "pr_auc", "brier", "f1", "lift_top_decile"}
    assert set(report["churn"]["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    assert set(report["ltv"]["model"]) == {
        "mae",
        "rmse",
        "spearman",
        "normalized_gini",
        "top10_capture",
    }
    assert set(report["ltv"]["baselines"]) == {
        "past_spend_scaled",
        "bgnbd_gamma_gamma",
        "recent_spend",
    }
    assert report["segments"] and report["windows"]["churn"]["test_cutoff"] == "2011-09-10"
    assert "| **model** |" in run.markdown
    # The 80% interval: coverage (kept under its old key too) and width at the test cutoff and
    # at every rolling origin, computed from the test predictions.
    ltv, predictions = report["ltv"], run.ltv_predictions
    actual = run.ltv_test["future_spend"].to_numpy()
    low, high = predictions["ltv_low"].to_numpy(), predictions["ltv_high"].to_numpy()
    coverage = float(np.mean((actual >= low) & (actual <= high)))
    assert ltv["interval_coverage_80"] == ltv["interval_coverage_10_90"] == pytest.approx(coverage)
    assert ltv["interval_median_width"] == pytest.approx(float(np.median(high - low)))
    assert ltv["interval"]["base"] in {"quantiles", "point"}
    assert report["rolling"]["ltv_interval"]["coverage_80_by_origin"] == [
        ltv["interval_coverage_80"]
    ]
    assert "LTV 80% interval" in run.markdown
    # Two years of history: the seasonal level is measured about a year before the test cutoff.
    stack = report["ltv"]["stack"]
    assert stack["link"] == "log" and stack["level"] == run.bundle.ltv.level
    assert (
        abs((LTV_TEST - timedelta(days=365) - date.fromisoformat(stack["level_cutoff"])).days) <= 15
    )


def test_test_period_orders_never_reach_the_models(orders: pl.DataFrame, run: TrainingRun) -> None:
    """Perturb every order after the churn test cutoff (the test labels): same models."""
    future = pl.col("occurred_at") > cutoff_instant(CHURN_TEST)
    changed = pl.concat(
        [
            orders.filter(~future),
            orders.filter(future)
            .with_columns(total=pl.col("total") * 5)
            .sample(fraction=0.5, seed=1),
        ]
    )
    other = _train(changed)
    assert other.bundle.churn.threshold == run.bundle.churn.threshold
    assert other.bundle.churn.stack == run.bundle.churn.stack
    assert bytes(other.bundle.churn.booster.save_raw("ubj")) == bytes(
        run.bundle.churn.booster.save_raw("ubj")
    )
    assert other.bundle.segmenter.names == run.bundle.segmenter.names
    np.testing.assert_array_equal(
        other.churn_predictions["churn_probability"], run.churn_predictions["churn_probability"]
    )
    np.testing.assert_array_equal(
        other.churn_predictions["expected_orders"], run.churn_predictions["expected_orders"]
    )
    assert other.churn_predictions["next_order_days"].equals(
        run.churn_predictions["next_order_days"]
    )
    # The test labels did change, so the reported metrics may; the LTV model, whose test
    # cutoff is earlier still, is untouched as well.
    np.testing.assert_array_equal(other.ltv_predictions["ltv"], run.ltv_predictions["ltv"])


def test_ltv_test_period_orders_never_reach_the_ltv_model(
    orders: pl.DataFrame, run: TrainingRun
) -> None:
    future = pl.col("occurred_at") > cutoff_instant(LTV_TEST)
    changed = pl.concat(
        [orders.filter(~future), orders.filter(future).with_columns(total=pl.col("total") * 2)]
    )
    other = _train(changed)
    assert other.bundle.ltv.stack == run.bundle.ltv.stack
    np.testing.assert_array_equal(other.ltv_predictions["ltv"], run.ltv_predictions["ltv"])
    np.testing.assert_array_equal(
        other.ltv_predictions["ltv_high"], run.ltv_predictions["ltv_high"]
    )


def test_bundle_round_trip_through_the_store_scores_the_same(
    run: TrainingRun, orders: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    from bentoml._internal.configuration.containers import BentoMLContainer

    monkeypatch.setattr(BentoMLContainer, "bentoml_home", str(tmp_path / "bentoml"), raising=False)
    store_dir = tmp_path / "bentoml" / "models"
    BentoMLContainer.model_store.set(
        __import__("bentoml._internal.models", fromlist=["ModelStore"]).ModelStore(store_dir)
    )
    model = save_bundle(run.bundle)
    assert str(model.tag).startswith("retention-uci:")
    loaded = load_bundle(f"{model.tag.name}:latest")
    features = compute_features(orders, cutoff_instant(CHURN_TEST))
    features = features.filter(pl.col("frequency") >= 1)
    assert score(loaded, features).equals(score(run.bundle, features))
    # The LTV stack's link and the interval's conformal numbers travel as JSON numbers.
    assert loaded.ltv.link == run.bundle.ltv.link == "log"
    assert loaded.ltv.interval_base == run.bundle.ltv.interval_base
    assert loaded.ltv.interval_offsets == run.bundle.ltv.interval_offsets != (0.0, 0.0)
    files = [p for p in Path(model.path).rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "bundle.json",
        "segmenter.json",
        "churn_xgb.ubj",
        "ltv_point.ubj",
        "ltv_interval.ubj",
    }
    for path in files:
        data = path.read_bytes()
        assert path.suffix not in {".pkl", ".pickle"}
        assert not data.startswith(b"\x80"), f"{path.name} looks like a pickle"
    assert model.info.metadata["feature_schema"] == list(run.bundle.feature_names)


def test_score_on_online_features_equals_the_pipeline_predictions(
    run: TrainingRun, orders: pl.DataFrame
) -> None:
    features = compute_features(orders, cutoff_instant(CHURN_TEST)).filter(pl.col("frequency") >= 1)
    scored = score(run.bundle, features)
    expected = run.churn_predictions
    assert scored["customer_id"].to_list() == expected["customer_id"].to_list()
    np.testing.assert_allclose(scored["churn_probability"], expected["churn_probability"])
    np.testing.assert_allclose(scored["ltv"], expected["ltv"])
    assert scored["segment"].to_list() == expected["segment"].to_list()


def test_contributions_add_up_to_the_calibrated_log_odds(
    run: TrainingRun, orders: pl.DataFrame
) -> None:
    features = compute_features(orders, cutoff_instant(CHURN_TEST) - timedelta(days=1))
    features = features.filter(pl.col("frequency") >= 1).head(50)
    contributions = churn_contributions(run.bundle, features)
    total = contributions.drop("tenant_id", "customer_id").to_numpy().sum(axis=1)
    p = score(run.bundle, features)["churn_probability"].to_numpy()
    np.testing.assert_allclose(total, np.log(p / (1 - p)), atol=1e-4)


def test_the_orders_backtest_compares_with_bgnbd_and_chose_on_validation(
    run: TrainingRun, orders: pl.DataFrame
) -> None:
    section = run.report.orders
    assert section is not None and section.horizon_days == 90
    validation = section.validation_mae_by_method
    assert set(validation) == {"bgnbd", "bgnbd_xgboost"}
    assert section.method == min(validation, key=validation.__getitem__)
    assert (run.bundle.orders.booster is not None) == (section.method == "bgnbd_xgboost")
    assert set(section.baselines) == {"bgnbd", "bgnbd_occasions"}
    test = run.churn_test
    actual = test["future_orders"].to_numpy()
    expected = run.churn_predictions["expected_orders"].to_numpy()
    assert section.model.mae == pytest.approx(np.mean(np.abs(expected - actual)))
    assert section.test_customers == test.height
    assert section.mean_orders == pytest.approx(actual.mean())
    # Who ordered within the horizon is who did not churn.
    assert section.ordered_customers == int((test["churned"] == 0).sum())
    assert section.model.next_order_median_abs_days is not None
    assert 0 < section.model.next_order_median_abs_days < 90
    assert 0 < section.model.next_order_dated_share <= 1


def test_calibration_and_importance_are_measured_on_the_test_customers(run: TrainingRun) -> None:
    churn = run.report.churn
    assert len(churn.reliability) == 10
    assert sum(b.count for b in churn.reliability) == churn.test_customers
    y = run.churn_test["churned"].to_numpy()
    p = run.churn_predictions["churn_probability"].to_numpy()
    gaps = [
        ((p >= b.lower) & ((p < b.upper) | (b.upper == 1.0)), b)
        for b in churn.reliability
        if b.count
    ]
    ece = sum(m.sum() * abs(p[m].mean() - y[m].mean()) for m, _ in gaps) / len(p)
    assert churn.expected_calibration_error == pytest.approx(ece)
    importance = run.report.importance
    assert importance is not None
    assert set(importance.churn) == set(importance.ltv) == set(run.bundle.feature_names)
    values = list(importance.churn.values())
    assert values == sorted(values, reverse=True) and values[0] > 0
    contributions = churn_contributions(run.bundle, run.churn_test)
    top = next(iter(importance.churn))
    assert importance.churn[top] == pytest.approx(contributions[top].abs().mean())
    report = run.report.as_json()
    assert "importance" in report and "reliability" in report["churn"]
    assert "expected_calibration_error" in report["churn"] and "orders" in report


def test_a_cutoff_where_nobody_ordered_twice_borrows_its_neighbours_bgnbd(
    run: TrainingRun,
) -> None:
    """The earliest training cutoffs of a young shop may have no repeat customer to fit BG/NBD
    on; the booster's inputs there use the nearest cutoff's parameters instead of failing."""
    from retention_trainer.fitting.orders import _bgnbd_by_cutoff

    test = run.churn_test
    one_timers = test.with_columns(
        cutoff=pl.lit(date(2011, 1, 1)),
        gap_mean_days=pl.lit(0.0),
    )
    frame = pl.concat([one_timers, test]).sort("cutoff", maintain_order=True)
    expected = _bgnbd_by_cutoff(frame, 90)
    borrowed = expected[: test.height]
    assert np.all(np.isfinite(expected)) and np.all(borrowed > 0)
    with pytest.raises(ValueError, match="ordered twice"):
        _bgnbd_by_cutoff(one_timers, 90)
