"""The outcome monitor's and the growth trigger's rules on real orders, without a broker.

Realized metrics are checked against sklearn on labels read from the orders independently of
the training-set code; the growth rule against real lake extents; the store keeps one outcome
per (model, score date) across reopening."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from retention_bundle.bundle import read_bundle
from retention_shared.events import DriftDetected, DriftKind, TimeWindow, decode_event
from retention_shared.features import compute_features
from retention_trainer.consumers.triggers import as_trigger
from retention_trainer.growth import growth_reason, growth_since
from retention_trainer.outcomes import auc_drop, latest_score_date, realized_churn_outcome
from retention_trainer.runs.history import orders_summary
from retention_trainer.store import OutcomeRecord, RunStore
from retention_trainer.watch import performance_drift
from tests.support.uci_orders import TEST_DATA, load_orders

BUNDLE = TEST_DATA / "bundles" / "with-rolling"
SCORE_DATE = date(2011, 9, 10)  # the bundle's churn test cutoff: its horizon ends with the data


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_II_slice.parquet")


def test_realized_metrics_are_sklearns_on_labels_read_from_the_orders(
    orders: pl.DataFrame,
) -> None:
    bundle = read_bundle(BUNDLE)
    outcome = realized_churn_outcome(bundle, orders, SCORE_DATE)

    instant = datetime(2011, 9, 11, tzinfo=UTC)
    features = compute_features(orders, instant).filter(pl.col("frequency") >= 1)
    came_back = (
        orders.filter(
            (pl.col("kind") == "purchase")
            & (pl.col("occurred_at") > instant)
            & (pl.col("occurred_at") <= instant + timedelta(days=90))
        )["customer_id"]
        .unique()
        .to_list()
    )
    churned = (~features["customer_id"].is_in(came_back)).cast(pl.Int8).to_numpy()
    probability = bundle.churn.probability(bundle.matrix(features))

    assert outcome.score_date == SCORE_DATE and outcome.horizon_days == 90
    assert outcome.customers == features.height and outcome.churners == int(churned.sum())
    assert 0 < outcome.churners < outcome.customers
    assert outcome.roc_auc == pytest.approx(roc_auc_score(churned, probability), abs=1e-12)
    assert outcome.brier == pytest.approx(brier_score_loss(churned, probability), abs=1e-12)
    # A model that ranks at all: far from a coin, as its backtest said.
    assert outcome.roc_auc > 0.65


def test_customers_shuffled_after_the_score_date_make_the_realized_auc_a_coin(
    orders: pl.DataFrame,
) -> None:
    """What the service test does to make a model poor: the orders after the score date moved
    to other customers, so the history no longer says who comes back."""
    bundle = read_bundle(BUNDLE)
    instant = datetime(2011, 9, 11, tzinfo=UTC)
    before, after = (
        orders.filter(pl.col("occurred_at") <= instant),
        orders.filter(pl.col("occurred_at") > instant),
    )
    customers = before["customer_id"].unique().sort()
    moved = dict(zip(customers, customers.sample(fraction=1.0, shuffle=True, seed=3), strict=True))
    after = after.with_columns(pl.col("customer_id").replace(moved))
    good = realized_churn_outcome(bundle, orders, SCORE_DATE)
    poor = realized_churn_outcome(bundle, pl.concat([before, after]), SCORE_DATE)
    assert abs(poor.roc_auc - 0.5) < 0.1
    assert auc_drop(poor.roc_auc, good.roc_auc) > 0.10 > auc_drop(good.roc_auc, good.roc_auc)


def test_the_latest_settled_score_date_steps_from_the_data_end() -> None:
    end = date(2011, 6, 1)
    at = lambda day: datetime.combine(day, datetime.min.time(), tzinfo=UTC)  # noqa: E731
    assert latest_score_date(end, None, 90, 30) is None
    assert latest_score_date(end, at(end + timedelta(days=89)), 90, 30) is None
    assert latest_score_date(end, at(end + timedelta(days=90)), 90, 30) == end
    assert latest_score_date(end, at(end + timedelta(days=119)), 90, 30) == end
    assert latest_score_date(end, at(end + timedelta(days=121)), 90, 30) == date(2011, 7, 1)


def test_the_growth_rule_on_real_lake_extents(orders: pl.DataFrame) -> None:
    def read_until(day: date) -> tuple[int, datetime | None]:
        found = growth_since(orders_summary(orders.filter(pl.col("occurred_at") < day_at(day))))
        assert found is not None
        return found

    def day_at(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=UTC)

    baseline = read_until(date(2011, 6, 1))
    rules = {"orders_share": 0.10, "days": 30.0}
    # A week later: fewer than 10% more orders and under 30 days.
    week = read_until(date(2011, 6, 8))
    assert week[0] > baseline[0] and growth_reason(baseline, week, **rules) is None
    # Six weeks later: over 30 days of new data, and the orders' share counted first if over.
    later = read_until(date(2011, 7, 13))
    reason = growth_reason(baseline, later, **rules)
    assert reason is not None
    grown = (later[0] - baseline[0]) / baseline[0]
    assert ("RETENTION_RETRAIN_GROWTH_ORDERS_SHARE" in reason) is (grown >= 0.10)
    assert growth_reason(baseline, later, orders_share=0.0, days=0.0) is None
    only_days = growth_reason(baseline, later, orders_share=0.0, days=30.0)
    assert only_days is not None and "RETENTION_RETRAIN_GROWTH_DAYS=30" in only_days
    assert growth_since(None) is None and growth_since({}) is None


def _outcome(tag: str, day: date, drift: bool) -> OutcomeRecord:
    return OutcomeRecord(
        tenant_id="acme",
        model_tag=tag,
        score_date=day,
        horizon_days=90,
        customers=240,
        churners=110,
        roc_auc=0.52,
        brier=0.31,
        backtest_roc_auc=0.77,
        backtest_brier=0.19,
        auc_drop=auc_drop(0.52, 0.77),
        drift=drift,
        evaluated_at=datetime.now(UTC),
    )


def test_an_outcome_is_kept_once_per_model_and_date_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    first = _outcome("retention-acme:v1", date(2011, 9, 10), drift=True)
    assert store.add_outcome(first)
    assert not store.add_outcome(replace(first, roc_auc=0.9))  # evaluated already
    assert store.add_outcome(_outcome("retention-acme:v1", date(2011, 10, 10), drift=False))
    store.close()

    reopened = RunStore(path)
    assert reopened.outcome("retention-acme:v1", date(2011, 9, 10)) == first
    assert [o.score_date for o in reopened.unannounced_drifts()] == [date(2011, 9, 10)]
    reopened.mark_announced("retention-acme:v1", date(2011, 9, 10))
    assert reopened.unannounced_drifts() == []
    assert len(reopened.outcomes("acme")) == 2 and reopened.outcomes("globex") == []


def test_a_performance_drift_event_becomes_a_performance_trigger() -> None:
    event = performance_drift(_outcome("retention-acme:v1", date(2011, 9, 10), True), 0.10)
    assert event.kind is DriftKind.PERFORMANCE and event.model_version == "v1"
    assert event.realized == {"roc_auc": 0.52, "brier": 0.31}
    assert event.expected == {"roc_auc": 0.77, "brier": 0.19}
    assert event.window.end - event.window.start == timedelta(days=90)
    trigger = as_trigger(decode_event(DriftDetected, event.to_bytes()))
    assert trigger.kind == "performance"
    assert trigger.detail == (
        "model v1: realized churn ROC-AUC 0.520 against the backtest's 0.770 for its scores as "
        "of 2011-09-11 00:00Z"
    )


def test_a_drift_event_of_version_1_0_reads_as_feature_drift() -> None:
    window = TimeWindow(start=datetime(2011, 12, 1, tzinfo=UTC), end=datetime.now(UTC))
    old = DriftDetected(
        tenant_id="acme",
        model_version="v1",
        psi={"recency_days": 0.3},
        threshold=0.2,
        window=window,
    ).model_dump(mode="json")
    for added in ("kind", "realized", "expected"):
        old.pop(added)
    event = DriftDetected.model_validate(old)
    assert event.kind is DriftKind.FEATURES and event.realized == event.expected == {}
    assert as_trigger(event).kind == "drift"
