"""An independent, deliberately plain-Python reading of the cleaning rules (README, "Cleaning rules").

Tests compare the vectorized pipeline with this row-by-row version: a different computation of
the same rules, sharing no code with `retention_ingest`. Precedence of reasons is the one
documented in `retention_ingest.cleaning`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

UCI_I = {
    "customer_id": "CustomerID",
    "order_id": "InvoiceNo",
    "order_datetime": "InvoiceDate",
    "product_id": "StockCode",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
    "country": "Country",
}
UCI_II = {**UCI_I, "customer_id": "Customer ID", "order_id": "Invoice", "unit_price": "Price"}


@dataclass
class ExpectedEvent:
    total: float = 0.0
    lines: list[tuple[str, float, float]] = field(default_factory=list)
    occurred_at: datetime | None = None
    country: str | None = None


@dataclass
class Expected:
    rows_read: int = 0
    reason_by_row: dict[int, str] = field(default_factory=dict)
    events: dict[tuple[str, str, str], ExpectedEvent] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.rows_read - len(self.reason_by_row)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(self.reason_by_row.values())

    @property
    def customers(self) -> int:
        return len({customer for _, customer, _ in self.events})


def _blank(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _id(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def expected_from_rows(
    rows: list[dict[str, object]], columns: dict[str, str], timezone: str = "Europe/London"
) -> Expected:
    zone = ZoneInfo(timezone)
    expected = Expected(rows_read=len(rows))
    seen: set[tuple[object, ...]] = set()
    for number, row in enumerate(rows, start=1):
        customer, order = row[columns["customer_id"]], row[columns["order_id"]]
        moment, product = row[columns["order_datetime"]], row[columns["product_id"]]
        quantity, price = row[columns["quantity"]], row[columns["unit_price"]]
        if _blank(customer):
            reason = "missing_customer_id"
        elif _blank(order):
            reason = "missing_order_id"
        elif moment is None:
            reason = "missing_order_datetime"
        elif _blank(product):
            reason = "missing_product_id"
        elif _blank(quantity):
            reason = "missing_quantity"
        elif _blank(price):
            reason = "missing_unit_price"
        elif float(price) <= 0:  # type: ignore[arg-type]
            reason = "non_positive_price"
        elif float(quantity) == 0:  # type: ignore[arg-type]
            reason = "zero_quantity"
        elif tuple(row.values()) in seen:
            reason = "duplicate_line"
        else:
            reason = None
        if reason is not None:
            expected.reason_by_row[number] = reason
            continue
        seen.add(tuple(row.values()))
        order_text = _id(order)
        q, p = float(quantity), float(price)  # type: ignore[arg-type]
        cancelled = (order_text[:1] == "C" and order_text[1:2].isdigit()) or q < 0
        q = -abs(q) if cancelled else q
        key = (order_text, _id(customer), "cancellation" if cancelled else "purchase")
        event = expected.events.setdefault(key, ExpectedEvent())
        event.total += q * p
        event.lines.append((_id(product), q, p))
        assert isinstance(moment, datetime)
        utc = moment.replace(tzinfo=zone).astimezone(UTC)
        event.occurred_at = min(event.occurred_at or utc, utc)
        event.country = event.country or row.get(columns.get("country", ""))  # type: ignore[assignment]
    return expected


def expected_from_parquet(path: Path, columns: dict[str, str]) -> Expected:
    return expected_from_rows(pq.read_table(path).to_pylist(), columns)
