"""The bundled UCI Online Retail export as the order messages an upstream shop would send.

Each invoice of `data/online_retail.parquet` becomes one `POST /v1/orders` order in the canonical
shape (`order_id, customer_id, order_datetime, lines[...]`), raw: rows without a customer,
zero-priced lines and duplicates are sent as they are, and ingest's cleaning answers for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["BUNDLED_DATA", "DemoOrder", "demo_orders"]

BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail.parquet"


@dataclass(frozen=True)
class DemoOrder:
    occurred_at: datetime  # naive shop time, as in the export
    body: dict[str, Any]


def demo_orders(path: Path = BUNDLED_DATA) -> list[DemoOrder]:
    """One order per (invoice, customer), in time order (file order breaks ties)."""
    rows = pl.read_parquet(path).with_row_index("row")
    customer = (
        pl.when(pl.col("CustomerID").is_null())
        .then(None)
        .otherwise(pl.col("CustomerID").cast(pl.Int64).cast(pl.String))
    )
    invoices = (
        rows.with_columns(customer=customer)
        .group_by("InvoiceNo", "customer", maintain_order=True)
        .agg(
            first_row=pl.col("row").min(),
            at=pl.col("InvoiceDate").min(),
            country=pl.col("Country").first(),
            lines=pl.struct(
                product_id=pl.col("StockCode"),
                quantity=pl.col("Quantity"),
                unit_price=pl.col("UnitPrice"),
            ),
        )
        .sort("at", "first_row")
    )
    return [
        DemoOrder(
            occurred_at=row["at"],
            body={
                "order_id": row["InvoiceNo"],
                "customer_id": row["customer"],
                "order_datetime": row["at"].isoformat(),
                "country": row["country"],
                "lines": row["lines"],
            },
        )
        for row in invoices.iter_rows(named=True)
    ]
