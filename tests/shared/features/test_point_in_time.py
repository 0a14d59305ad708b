"""Point in time (docs/architecture.md, principle 3): features at T see only orders at or before T."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from retention_shared.features import compute_features, compute_features_at_cutoffs

T = datetime(2011, 6, 1, 10, 30, tzinfo=UTC)


def rewrite_future(orders: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """Every order after `at` changed in every field but its customer; some dropped; new ones added
    for old and brand-new customers, including one a microsecond after `at`."""
    future = pl.col("occurred_at") > at
    changed = (
        orders.with_row_index("n")
        .filter(~future | (pl.col("n") % 5 != 0))  # drop a fifth of the future
        .with_columns(
            total=pl.when(future).then(pl.col("total") * 3 - 7).otherwise("total"),
            items=pl.when(future).then(pl.col("items") + 11).otherwise("items"),
            kind=pl.when(future & (pl.col("n") % 3 == 0))
            .then(pl.lit("cancellation"))
            .otherwise("kind"),
            products=pl.when(future)
            .then(pl.concat_list("products", pl.lit(["NEW-PRODUCT"])))
            .otherwise("products"),
        )
        .drop("n")
    )
    past_customers = orders.filter(~future).get_column("customer_id").unique().sort()[:50]
    extra = pl.DataFrame(
        {
            "tenant_id": orders.get_column("tenant_id")[0],
            "customer_id": [*past_customers.to_list(), "brand-new"],
            "order_id": [f"future-{i}" for i in range(len(past_customers) + 1)],
            "occurred_at": [at + timedelta(microseconds=1)] * (len(past_customers) + 1),
            "kind": "purchase",
            "total": 1234.5,
            "items": 3.0,
            "products": [["P-FUTURE"]] * (len(past_customers) + 1),
        },
        schema=orders.schema,
    )
    return pl.concat([changed, extra])


def test_changing_the_future_changes_nothing_at_t(orders_i: pl.DataFrame) -> None:
    before = compute_features(orders_i, T)
    after = compute_features(rewrite_future(orders_i, T), T)
    assert_frame_equal(before, after)
    assert "brand-new" not in after.get_column("customer_id")


def test_changing_the_future_changes_no_training_cutoff(orders_ii: pl.DataFrame) -> None:
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in (2, 4, 6)]
    last = cutoffs[-1]
    before = compute_features_at_cutoffs(orders_ii, cutoffs)
    after = compute_features_at_cutoffs(rewrite_future(orders_ii, last), cutoffs)
    assert_frame_equal(before, after)


def test_changing_the_past_does_change_the_features(orders_i: pl.DataFrame) -> None:
    target = (
        orders_i.filter((pl.col("occurred_at") < T) & (pl.col("kind") == "purchase"))
        .sort("occurred_at", "order_id")
        .row(-1, named=True)
    )
    changed = orders_i.with_columns(
        total=pl.when(pl.col("order_id") == target["order_id"])
        .then(pl.col("total") + 100.0)
        .otherwise("total")
    )
    before = compute_features(orders_i, T)
    after = compute_features(changed, T)
    diff = before.join(after, on=["tenant_id", "customer_id"], suffix="_after").filter(
        pl.col("monetary") != pl.col("monetary_after")
    )
    assert diff.get_column("customer_id").to_list() == [target["customer_id"]]
    row = diff.row(0, named=True)
    assert abs(row["monetary_after"] - row["monetary"] - 100.0) < 1e-9
    assert abs(row["spend_30d_after"] - row["spend_30d"] - 100.0) < 1e-9


def test_a_customer_whose_orders_are_all_after_t_is_absent(orders_ii: pl.DataFrame) -> None:
    at = datetime(2010, 2, 1, tzinfo=UTC)
    firsts = orders_ii.group_by("customer_id").agg(pl.col("occurred_at").min())
    later = set(firsts.filter(pl.col("occurred_at") > at).get_column("customer_id"))
    assert later
    present = set(compute_features(orders_ii, at).get_column("customer_id"))
    assert not present & later
    assert present == set(firsts.get_column("customer_id")) - later
