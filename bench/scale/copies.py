"""k copies of a UCI Online Retail export as one tenant's history, written as Parquet.

Copy 0 is the file as it is. Copy c (1 ≤ c < k) is the same rows with new customers and new
orders: `Customer ID` + c × CUSTOMER_STRIDE (missing ids stay missing, so they are rejected
k times, as in k real exports), and each invoice number gets the copy's two digits between its
letter prefix and its digits (`C489434` → `C03489434`), so cancellations (`C…`) and adjustments
(`A…`) keep their meaning and no two copies share an order. Dates, quantities, prices, products
are unchanged, so every copy cleans to the same counts and the k-file's counts are exactly k
times the file's — `check` holds the written file to that.

Unchanged dates are the point: the tenant's history spans the same two years at every k and
only its width (customers, orders per day) grows, which is what a larger shop is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

# Larger than any customer id of either UCI file (12346..18287), so copies never collide.
CUSTOMER_STRIDE = 100_000
MAX_COPIES = 100  # two digits in the invoice numbers


@dataclass(frozen=True)
class Copies:
    k: int
    path: Path
    rows: int
    customers: int  # distinct non-missing customer ids
    invoices: int
    bytes: int


def customer_column(frame: pl.DataFrame) -> str:
    """`Customer ID` (Online Retail II) or `CustomerID` (Online Retail I)."""
    return "Customer ID" if "Customer ID" in frame.columns else "CustomerID"


def invoice_column(frame: pl.DataFrame) -> str:
    return "Invoice" if "Invoice" in frame.columns else "InvoiceNo"


def copy_of(frame: pl.DataFrame, c: int) -> pl.DataFrame:
    """Copy `c` of `frame`: customers and invoices renamed as the module says."""
    if c == 0:
        return frame
    customer, invoice = customer_column(frame), invoice_column(frame)
    return frame.with_columns(
        (pl.col(customer) + c * CUSTOMER_STRIDE).alias(customer),
        pl.concat_str(
            pl.col(invoice).str.extract(r"^([A-Za-z]*)", 1),
            pl.lit(f"{c:02d}"),
            pl.col(invoice).str.extract(r"^[A-Za-z]*(.*)$", 1),
        ).alias(invoice),
    )


def write_copies(source: Path, k: int, destination: Path) -> Copies:
    """`k` copies of `source` in one Parquet file at `destination` (row groups of one copy, so
    ingest streams it chunk by chunk as it would a real export), checked by `check`."""
    if not 1 <= k <= MAX_COPIES:
        raise ValueError(f"k must be 1..{MAX_COPIES}, not {k}")
    frame = pl.read_parquet(source)
    destination.parent.mkdir(parents=True, exist_ok=True)
    schema = frame.to_arrow().schema
    with pq.ParquetWriter(destination, schema, compression="zstd") as writer:
        for c in range(k):
            writer.write_table(copy_of(frame, c).to_arrow(), row_group_size=frame.height)
    return check(source, k, destination)


def check(source: Path, k: int, written: Path) -> Copies:
    """The written file holds k times the source's rows, customers and invoices, and copy 0 is
    the source itself; raises AssertionError otherwise."""
    original = pl.read_parquet(source)
    customer, invoice = customer_column(original), invoice_column(original)
    copies = pl.scan_parquet(written)
    counts = copies.select(
        pl.len().alias("rows"),
        pl.col(customer).drop_nulls().n_unique().alias("customers"),
        pl.col(invoice).n_unique().alias("invoices"),
        pl.col(customer).null_count().alias("missing"),
    ).collect()
    rows, customers, invoices, missing = counts.row(0)
    want = (
        original.height,
        original[customer].drop_nulls().n_unique(),
        original[invoice].n_unique(),
        original[customer].null_count(),
    )
    got = (rows, customers, invoices, missing)
    assert got == tuple(k * n for n in want), f"{written}: {got} is not {k} x {want}"
    first = copies.head(original.height).collect()
    assert first.equals(original), f"{written}: copy 0 differs from {source}"
    return Copies(k, written, rows, customers, invoices, written.stat().st_size)
