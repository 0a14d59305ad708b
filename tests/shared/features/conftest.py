"""Orders frames built from the raw UCI slices with a small inline cleaning (README,
"Cleaning rules"), independent of the ingest service so these tests pin the feature definition only.
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.support.uci_orders import TENANT, TEST_DATA
from tests.support.uci_orders import load_orders as load_uci_orders


def load_orders(name: str, tenant: str = TENANT) -> pl.DataFrame:
    return load_uci_orders(TEST_DATA / name, tenant)


@pytest.fixture(scope="session")
def orders_i() -> pl.DataFrame:
    return load_orders("online_retail_slice.parquet")


@pytest.fixture(scope="session")
def orders_ii() -> pl.DataFrame:
    return load_orders("online_retail_II_slice.parquet")
