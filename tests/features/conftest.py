"""Orders frames built from the raw UCI slices with a small inline cleaning (ARCHITECTURE.md,
"Data rules"), independent of the ingest service so these tests pin the feature definition only.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from retention_shared.features import ORDER_SCHEMA

DATA = Path(__file__).parent.parent / "data"
TENANT = "uci"

# The two UCI layouts' column names → canonical names.
LAYOUTS = {
    "online_retail_slice.parquet": {
        "InvoiceNo": "invoice",
        "StockCode": "product",
        "Quantity": "quantity",
        "InvoiceDate": "at",
        "UnitPrice": "price",
        "CustomerID": "customer",
    },
    "online_retail_II_slice.parquet": {
        "Invoice": "invoice",
        "StockCode": "product",
        "Quantity": "quantity",
        "InvoiceDate": "at",
        "Price": "price",
        "Customer ID": "customer",
    },
}


def clean_orders(raw: pl.DataFrame, columns: dict[str, str], tenant: str = TENANT) -> pl.DataFrame:
    lines = (
        raw.unique(maintain_order=True)  # exact duplicate rows
        .rename(columns)
        .select(columns.values())
        .filter(
            pl.col("customer").is_not_null(),
            pl.col("price") > 0,
            pl.col("quantity") != 0,
        )
        .with_columns(
            customer=pl.col("customer").cast(pl.Int64).cast(pl.String),
            kind=pl.when(pl.col("invoice").str.starts_with("C") | (pl.col("quantity") < 0))
            .then(pl.lit("cancellation"))
            .otherwise(pl.lit("purchase")),
            at=pl.col("at")
            .dt.replace_time_zone("Europe/London", ambiguous="earliest")
            .dt.convert_time_zone("UTC"),
        )
    )
    return (
        lines.group_by("customer", "invoice", "kind")
        .agg(
            occurred_at=pl.col("at").min(),
            total=(pl.col("quantity") * pl.col("price")).sum(),
            items=pl.col("quantity").abs().sum().cast(pl.Float64),
            products=pl.col("product").unique().sort(),
        )
        .select(
            tenant_id=pl.lit(tenant),
            customer_id="customer",
            order_id="invoice",
            occurred_at="occurred_at",
            kind="kind",
            total="total",
            items="items",
            products="products",
        )
        .cast(ORDER_SCHEMA)
        .sort("occurred_at", "order_id", "kind")
    )


def load_orders(name: str, tenant: str = TENANT) -> pl.DataFrame:
    return clean_orders(pl.read_parquet(DATA / name), LAYOUTS[name], tenant)


@pytest.fixture(scope="session")
def orders_i() -> pl.DataFrame:
    return load_orders("online_retail_slice.parquet")


@pytest.fixture(scope="session")
def orders_ii() -> pl.DataFrame:
    return load_orders("online_retail_II_slice.parquet")
