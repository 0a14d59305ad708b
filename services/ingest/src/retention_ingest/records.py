"""Orders that arrive one by one (HTTP JSON, `orders.raw`) → events, through the same cleaning.

Each record is one order: order-level fields plus its lines. Records are flattened to one row per
line, cleaned by `clean_rows` exactly as file rows are, grouped by `build_order_events`, and each
record gets an outcome: accepted (with its event ids and any lines dropped, each with a reason) or
rejected (no line survived).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from retention_ingest.cleaning import CleaningPlan, clean_rows
from retention_ingest.mapping import ColumnMapping
from retention_ingest.order_events import (
    EVENT_SCHEMA,
    build_order_events,
    conflicting_orders,
    flag_file_level_rejects,
)

__all__ = [
    "CANONICAL_MAPPING",
    "LineReject",
    "RecordOutcome",
    "RecordsResult",
    "as_text",
    "clean_records",
    "flatten_record",
]

# The canonical field a reason code is about (None: the line as a whole).
REASON_FIELD: dict[str, str | None] = {
    "missing_customer_id": "customer_id",
    "invalid_customer_id": "customer_id",
    "missing_order_id": "order_id",
    "invalid_order_id": "order_id",
    "missing_order_datetime": "order_datetime",
    "unparseable_order_datetime": "order_datetime",
    "order_datetime_too_old": "order_datetime",
    "future_order_datetime": "order_datetime",
    "missing_product_id": "product_id",
    "invalid_product_id": "product_id",
    "invalid_currency": "currency",
    "invalid_country": "country",
    "missing_quantity": "quantity",
    "unparseable_quantity": "quantity",
    "missing_unit_price": "unit_price",
    "unparseable_unit_price": "unit_price",
    "missing_order_total": "order_total",
    "unparseable_order_total": "order_total",
    "non_positive_price": "unit_price",
    "zero_quantity": "quantity",
    "quantity_out_of_range": "quantity",
    "unit_price_out_of_range": "unit_price",
    "duplicate_line": None,
    "conflicting_customer_id": "customer_id",
    # The order's lines taken together (a row's own total, for `order_total` mappings).
    "order_total_out_of_range": "lines",
}
ORDER_LEVEL = {"customer_id", "order_id", "order_datetime", "currency", "country", "lines"}
# Replaces a lone surrogate (JSON allows "\ud800"; UTF-8 and so polars cannot hold it) and a
# nested value: ASCII's SUB, an unprintable character, so an id holding one is rejected as
# invalid (and a number or date as unparseable), naming its field.
SUBSTITUTE = "\x1a"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class LineReject:
    line: int  # index of the line within its record
    reason: str
    field: str | None


@dataclass
class RecordOutcome:
    index: int
    order_id: str | None
    event_ids: list[str] = field(default_factory=list)
    rejected_lines: list[LineReject] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return bool(self.event_ids)


@dataclass
class RecordsResult:
    events: pl.DataFrame  # EVENT_SCHEMA
    outcomes: list[RecordOutcome]
    rows: int
    rejected_by_reason: Counter[str]

    @property
    def accepted_rows(self) -> int:
        return self.rows - sum(self.rejected_by_reason.values())


def flatten_record(record: Mapping[str, Any], lines_key: str = "lines") -> list[dict[str, Any]]:
    """One row per line: the record's own fields plus each line's (a record without `lines` is
    itself one line)."""
    lines = record.get(lines_key)
    header = {k: v for k, v in record.items() if k != lines_key}
    if not isinstance(lines, list):
        return [header]
    return [{**header, **line} if isinstance(line, Mapping) else header for line in lines]


def clean_records(
    records: Sequence[Sequence[Mapping[str, Any]]],
    plan: CleaningPlan,
    *,
    tenant_id: str,
    source: str,
    order_ids: Sequence[str | None] | None = None,
) -> RecordsResult:
    """Clean records given as their line rows (see `flatten_record`), in the plan's columns."""
    columns = list(plan.mapping.columns().values())
    rows, owners = [], []
    for index, lines in enumerate(records):
        for line_number, line in enumerate(lines):
            rows.append({c: as_text(line.get(c)) for c in columns})
            owners.append((index, line_number))
    outcomes = [
        RecordOutcome(index, None if order_ids is None else as_text(order_ids[index]))
        for index in range(len(records))
    ]
    if not rows:
        return RecordsResult(pl.DataFrame(schema=EVENT_SCHEMA), outcomes, 0, Counter())

    frame = pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")
    cleaned = clean_rows(frame, plan, first_row=0)
    lines = cleaned.lines.lazy()
    flagged = flag_file_level_rejects(
        lines, conflicting_orders(lines), plan.bounds.max_order_total
    ).collect()
    total_field = "order_total" if plan.mapping.uses_order_total else "lines"
    good = flagged.filter(pl.col("reason").is_null())
    rejects = pl.concat(
        [
            cleaned.rejects.select("row", "reason"),
            flagged.filter(pl.col("reason").is_not_null()).select("row", "reason"),
        ]
    )
    reasons: Counter[str] = Counter()
    for row, reason in rejects.iter_rows():
        index, line = owners[row]
        reasons[reason] += 1
        field = total_field if reason == "order_total_out_of_range" else REASON_FIELD.get(reason)
        outcomes[index].rejected_lines.append(LineReject(line, reason, field))

    events = build_order_events(
        good.lazy(),
        tenant_id=tenant_id,
        source=source,
        synthetic_line=plan.mapping.uses_order_total,
    )
    event_of = {
        (customer, order, kind): event_id
        for event_id, customer, order, kind in events.select(
            "event_id", "customer_id", "order_id", "kind"
        ).iter_rows()
    }
    for row, customer, order, kind in good.select(
        "row", "customer_id", "order_id", "kind"
    ).iter_rows():
        outcome = outcomes[owners[row][0]]
        outcome.order_id = outcome.order_id or order
        event_id = event_of[(customer, order, kind)]
        if event_id not in outcome.event_ids:
            outcome.event_ids.append(event_id)
    return RecordsResult(events, outcomes, len(rows), reasons)


def as_text(value: Any) -> str | None:
    """A record's value as the text cleaning reads. NaN or infinity (JSON parsers accept them) is
    missing, as in a typed file's column; an object or a list (no id, number or date) and a lone
    surrogate become `SUBSTITUTE`, so the value is rejected as invalid or unparseable."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool):  # True is not a quantity
        return str(value).lower()
    if isinstance(value, Mapping | list | tuple):
        return SUBSTITUTE
    text = value if isinstance(value, str) else str(value)
    if _SURROGATE.search(text) is not None:
        return _SURROGATE.sub(SUBSTITUTE, text)
    return text


# Canonical JSON orders name their fields canonically: the identity mapping.
CANONICAL_MAPPING = ColumnMapping(
    customer_id="customer_id",
    order_id="order_id",
    order_datetime="order_datetime",
    product_id="product_id",
    quantity="quantity",
    unit_price="unit_price",
    currency="currency",
    country="country",
)
