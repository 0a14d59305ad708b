"""Shared fixtures of the trainer tests: the CDNOW sample summary (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def cdnow() -> pl.DataFrame:
    """CDNOW sample, 2,357 customers: x, t_x, T in weeks and zbar (mean repeat spend, $)."""
    return pl.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")
