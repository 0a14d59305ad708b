"""Point-in-time training sets on a real slice: windows, labels and leakage."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from retention_shared.features import FEATURE_NAMES
from retention_trainer.training_set import cutoff_instant, plan_windows, training_examples
from tests.support.uci_orders import TEST_DATA, load_orders


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_II_slice.parquet")


def test_windows_keep_every_label_window_before_the_next_cutoff(orders: pl.DataFrame) -> None:
    w = plan_windows(orders, task="churn", horizon_days=90, test_cutoff=date(2011, 9, 10))
    horizon = timedelta(days=90)
    assert w.validation_cutoff + horizon <= w.test_cutoff
    assert w.validation_cutoff == date(2011, 6, 12)  # the latest 30-day grid point allowed
    assert all(c + horizon <= w.validation_cutoff for c in w.training_cutoffs)
    assert all((w.test_cutoff - c).days % 30 == 0 for c in w.training_cutoffs)


def test_default_test_cutoff_is_last_event_date_minus_horizon(orders: pl.DataFrame) -> None:
    assert plan_windows(orders, task="ltv", horizon_days=180).test_cutoff == date(2011, 6, 12)


def test_labels_count_only_orders_in_the_window(orders: pl.DataFrame) -> None:
    cutoff = date(2011, 3, 15)
    examples = training_examples(orders, [cutoff])
    start = cutoff_instant(cutoff)
    after = orders.filter(pl.col("occurred_at") > start)
    bought = after.filter(
        (pl.col("kind") == "purchase") & (pl.col("occurred_at") <= start + timedelta(days=90))
    )["customer_id"].unique()
    spend = (
        after.filter(pl.col("occurred_at") <= start + timedelta(days=180))
        .group_by("customer_id")
        .agg(pl.col("total").sum())
    )
    expected = (
        examples.select("customer_id")
        .join(spend, on="customer_id", how="left")
        .with_columns(churned=(~pl.col("customer_id").is_in(bought.implode())).cast(pl.Int8))
    )
    assert examples["churned"].to_list() == expected["churned"].to_list()
    assert examples["future_spend"].to_numpy() == pytest.approx(
        expected["total"].fill_null(0.0).to_numpy(), abs=1e-6
    )
    assert (examples["frequency"] >= 1).all()


def test_changing_the_future_changes_no_feature_at_a_cutoff(orders: pl.DataFrame) -> None:
    cutoff = date(2010, 12, 14)
    cutoffs = [cutoff - timedelta(days=30 * k) for k in range(4)]
    instant = cutoff_instant(cutoff)
    future = pl.col("occurred_at") > instant
    changed = pl.concat(
        [
            orders.filter(~future),
            # every later order altered: spend tripled, kind flipped, moved in time
            orders.filter(future).with_columns(
                total=pl.col("total") * 3,
                kind=pl.when(pl.col("kind") == "purchase")
                .then(pl.lit("cancellation"))
                .otherwise(pl.lit("purchase")),
                occurred_at=pl.col("occurred_at") + timedelta(days=1),
            ),
        ]
    )
    before = training_examples(orders, cutoffs).select("customer_id", "cutoff", *FEATURE_NAMES)
    after = training_examples(changed, cutoffs).select("customer_id", "cutoff", *FEATURE_NAMES)
    assert before.equals(after)
