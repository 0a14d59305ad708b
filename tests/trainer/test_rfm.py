"""RFM summary at a cutoff, and BG/NBD on a real slice of UCI Online Retail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from retention_bundle.models.bgnbd import probability_alive
from retention_trainer.classical.bgnbd import fit_bgnbd, probability_no_purchase
from retention_trainer.classical.rfm import rfm_summary
from retention_trainer.evaluation.metrics import roc_auc
from tests.support.paths import TEST_DATA

DATA = TEST_DATA
CUTOFF = datetime(2024, 1, 15)


def _orders() -> pl.DataFrame:
    rows = [
        # a: two orders on Jan 1 (one purchase day worth 15), repeat days Jan 5 and Jan 11.
        ("a", datetime(2024, 1, 1, 9), "purchase", 10.0),
        ("a", datetime(2024, 1, 1, 15), "purchase", 5.0),
        ("a", datetime(2024, 1, 5, 12), "purchase", 20.0),
        ("a", datetime(2024, 1, 8, 12), "cancellation", -20.0),  # ignored
        ("a", datetime(2024, 1, 11, 23, 59), "purchase", 40.0),
        ("a", datetime(2024, 1, 16), "purchase", 1000.0),  # after the cutoff: ignored
        # b: one purchase day only.
        ("b", datetime(2024, 1, 3), "purchase", 7.0),
        # c: first purchase Jan 2, a repeat exactly at the cutoff (counted), one after it.
        ("c", datetime(2024, 1, 2), "purchase", 3.0),
        ("c", CUTOFF, "purchase", 9.0),
        ("c", datetime(2024, 1, 20), "purchase", 100.0),
        # d: first purchase after the cutoff: not a customer yet.
        ("d", datetime(2024, 1, 16), "purchase", 5.0),
        # e: only a cancellation: no purchase, not in the summary.
        ("e", datetime(2024, 1, 4), "cancellation", -5.0),
    ]
    return pl.DataFrame(
        rows, schema=["customer_id", "occurred_at", "kind", "total"], orient="row"
    ).with_columns(pl.col("occurred_at").dt.cast_time_unit("us"))


def test_summary_by_hand() -> None:
    s = rfm_summary(_orders(), CUTOFF)
    assert list(s.customer_id) == ["a", "b", "c"]
    assert list(s.x) == [2, 0, 1]
    assert list(s.t_x) == [10, 0, 13]  # Jan 1 -> Jan 11; Jan 2 -> Jan 15
    assert list(s.T) == [14, 12, 13]  # first purchase day -> cutoff day
    assert list(s.mean_spend) == [30.0, 0.0, 9.0]  # repeat days only: (20 + 40) / 2
    assert len(s) == 3


def test_summary_with_utc_timestamps_and_an_aware_cutoff() -> None:
    aware = _orders().with_columns(pl.col("occurred_at").dt.replace_time_zone("UTC"))
    naive = rfm_summary(_orders(), CUTOFF)
    for cutoff in (CUTOFF, CUTOFF.replace(tzinfo=UTC)):
        s = rfm_summary(aware, cutoff)
        for name in ("x", "t_x", "T", "mean_spend"):
            assert np.array_equal(getattr(s, name), getattr(naive, name))


def test_summary_names_the_missing_column() -> None:
    with pytest.raises(ValueError, match="kind"):
        rfm_summary(_orders().drop("kind"), CUTOFF)


# --- the real slice -------------------------------------------------------------------------

SLICE_CUTOFF = datetime(2011, 9, 10)
HORIZON_DAYS = 90


@pytest.fixture(scope="module")
def retail_orders() -> pl.DataFrame:
    """Online Retail slice, cleaned inline: one row per invoice, purchases and cancellations."""
    raw = pl.read_parquet(DATA / "online_retail_slice.parquet")
    clean = raw.filter(
        pl.col("CustomerID").is_not_null() & (pl.col("UnitPrice") > 0) & (pl.col("Quantity") != 0)
    ).unique(maintain_order=True)
    is_purchase = ~pl.col("InvoiceNo").str.starts_with("C") & (pl.col("Quantity") > 0)
    return (
        clean.with_columns(
            pl.when(is_purchase)
            .then(pl.lit("purchase"))
            .otherwise(pl.lit("cancellation"))
            .alias("kind"),
            (pl.col("Quantity") * pl.col("UnitPrice")).alias("amount"),
        )
        .group_by("InvoiceNo", "kind")
        .agg(
            pl.col("CustomerID").first().cast(pl.Int64).cast(pl.String).alias("customer_id"),
            pl.col("InvoiceDate").min().alias("occurred_at"),
            pl.col("amount").sum().alias("total"),
        )
    )


def test_bgnbd_on_the_online_retail_slice(retail_orders: pl.DataFrame) -> None:
    s = rfm_summary(retail_orders, SLICE_CUTOFF)
    assert len(s) > 250
    assert np.all((s.t_x <= s.T) & (s.x >= 0))
    assert np.all((s.x > 0) == (s.t_x > 0))
    assert np.all((s.x > 0) == (s.mean_spend > 0))

    fit = fit_bgnbd(s.x, s.t_x, s.T)
    assert fit.converged and np.isfinite(fit.log_likelihood)
    params = fit.params
    # Plausible in days: a shape r below 1 (heterogeneous buyers), mean purchase rate r/α
    # between one a year and one a week, and a mean dropout probability a/(a+b) in [0, 1).
    # On this slice the MLE sits at the no-dropout edge (a/(a+b) -> 0, the NBD limit).
    assert 0.05 < params.r < 2
    assert 1 / 365 < params.r / params.alpha < 1 / 7
    assert 0 <= params.a / (params.a + params.b) < 1

    end = SLICE_CUTOFF + timedelta(days=HORIZON_DAYS)
    future_buyers = retail_orders.filter(
        (pl.col("kind") == "purchase")
        & (pl.col("occurred_at") > SLICE_CUTOFF)
        & (pl.col("occurred_at") <= end)
    )["customer_id"]
    churned = (~np.isin(s.customer_id, future_buyers.to_numpy())).astype(int)
    p_silent = probability_no_purchase(params, s.x, s.t_x, s.T, HORIZON_DAYS)
    auc = roc_auc(churned, p_silent)
    print(f"slice: n={len(s)} churn rate={churned.mean():.3f} ROC-AUC P(no purchase)={auc:.4f}")
    assert auc > 0.75
    # 1 - P(alive) ranks this slice's one-time buyers backwards: worse than chance.
    assert roc_auc(churned, 1 - probability_alive(params, s.x, s.t_x, s.T)) < 0.5
