"""Orders frames from the raw UCI Online Retail exports, cleaned by the README's "Cleaning rules".

A small faithful cleaning for the feature and trainer tests, so they do not depend on the ingest
service: drop rows without a customer id, with unit price <= 0 or quantity == 0, and exact
duplicate rows; a cancellation is an invoice starting with "C" or a negative quantity; customer
ids become integer text; naive UK timestamps become UTC; lines group into one order per
(invoice, customer, kind) with total = sum(quantity * price), items = sum(|quantity|) and the
distinct stock codes as products.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from retention_shared.features import ORDER_SCHEMA
from tests.support.paths import REPO, TEST_DATA

__all__ = ["LAYOUTS", "REPO_DATA", "SHARED_DATA", "TEST_DATA", "clean_orders", "load_orders"]

REPO_DATA = REPO / "data"
SHARED_DATA = REPO.parent / "shared" / "data"
TENANT = "uci"

_ONLINE_RETAIL = {
    "InvoiceNo": "invoice",
    "StockCode": "product",
    "Quantity": "quantity",
    "InvoiceDate": "at",
    "UnitPrice": "price",
    "CustomerID": "customer",
}
_ONLINE_RETAIL_II = {
    "Invoice": "invoice",
    "StockCode": "product",
    "Quantity": "quantity",
    "InvoiceDate": "at",
    "Price": "price",
    "Customer ID": "customer",
}
LAYOUTS = {"online_retail": _ONLINE_RETAIL, "online_retail_II": _ONLINE_RETAIL_II}


def clean_orders(raw: pl.DataFrame, columns: dict[str, str], tenant: str = TENANT) -> pl.DataFrame:
    lines = (
        raw.unique(maintain_order=True)
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
            .dt.replace_time_zone("Europe/London", ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"),
        )
        .drop_nulls("at")
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


def load_orders(path: Path, tenant: str = TENANT) -> pl.DataFrame:
    """Clean orders of a UCI export or slice; the layout is told by the file's columns."""
    raw = pl.read_parquet(path)
    layout = _ONLINE_RETAIL if "InvoiceNo" in raw.columns else _ONLINE_RETAIL_II
    return clean_orders(raw, layout, tenant)
