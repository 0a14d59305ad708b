"""bench/scale's own pieces on a slice of the real data: the k-copy file and the growth math."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from bench.scale.copies import CUSTOMER_STRIDE, check, copy_of, write_copies
from bench.scale.report import exponent, windows
from tests.support.paths import REPO

SLICE = REPO / "tests" / "data" / "online_retail_II_slice.parquet"


def test_k_copies_hold_k_times_the_rows_customers_and_invoices(tmp_path: Path) -> None:
    copies = write_copies(SLICE, 3, tmp_path / "k3.parquet")
    original = pl.read_parquet(SLICE)
    assert copies.rows == 3 * original.height
    assert copies.customers == 3 * original["Customer ID"].drop_nulls().n_unique()
    written = pl.read_parquet(copies.path)
    third = written.slice(2 * original.height, original.height)
    # Copy 2: customers moved by two strides, invoices keep their letter and get "02".
    assert third["Customer ID"].drop_nulls().min() >= 2 * CUSTOMER_STRIDE
    cancelled = original.filter(pl.col("Invoice").str.starts_with("C"))["Invoice"]
    if len(cancelled):
        assert copy_of(original, 2).filter(pl.col("Invoice").str.starts_with("C02")).height == len(
            cancelled
        )
    assert written.select(pl.exclude("Customer ID", "Invoice")).equals(
        pl.concat([original.select(pl.exclude("Customer ID", "Invoice"))] * 3)
    )


def test_check_refuses_a_file_that_is_not_k_copies(tmp_path: Path) -> None:
    copies = write_copies(SLICE, 2, tmp_path / "k2.parquet")
    with pytest.raises(AssertionError):
        check(SLICE, 3, copies.path)


def test_growth_exponent_and_stage_windows() -> None:
    assert exponent(4, 10.0, 16, 40.0) == pytest.approx(1.0)
    assert exponent(1, 10.0, 4, 160.0) == pytest.approx(2.0)
    assert math.isnan(exponent(1, 0.0, 4, 1.0))
    spans = windows(0.0, {"b": 5.0, "a": 2.0})
    assert spans == [("a", 0.0, 2.0), ("b", 2.0, 5.0)]
