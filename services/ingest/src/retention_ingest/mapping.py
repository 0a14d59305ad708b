"""Column mapping: which column of a retailer's file holds each canonical field.

A mapping is a JSON object from canonical names to the file's column names, e.g.
`{"customer_id": "Cust", "order_id": "Bon", "order_datetime": "Datum", "product_id": "Artikel",
"quantity": "Menge", "unit_price": "Preis", "date_format": "%d.%m.%Y %H:%M"}`.

Rules (ARCHITECTURE.md, "Data rules"):
- `customer_id` and `order_datetime` are always required.
- Line-level files map `order_id`, `product_id`, `quantity` and `unit_price`.
- Order-level files map `order_total` instead of `unit_price` (`product_id` and `quantity` are then
  optional; see `cleaning` for the one synthetic line per order). Without `order_id`, such a
  file's orders are one per customer per local day, as in CDNOW.
- `currency` and `country` are optional; `date_format` (a strftime pattern) overrides detection.

The public layouts (UCI Online Retail I and II, CDNOW) are recognized without a mapping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from retention_ingest.errors import IngestError, IngestErrorCode
from retention_shared.safe_text import id_problem

ID_FIELDS = ("customer_id", "order_id", "product_id")
NUMBER_FIELDS = ("quantity", "unit_price", "order_total")
TEXT_FIELDS = ("currency", "country")
CANONICAL_FIELDS = (
    "customer_id",
    "order_id",
    "order_datetime",
    "product_id",
    "quantity",
    "unit_price",
    "order_total",
    "currency",
    "country",
)


_SAMPLE = datetime(2011, 12, 9, 12, 50, 7, tzinfo=UTC)


def _reads_dates(pattern: str) -> bool:
    """Whether a date written with `pattern` reads back as that date, as `dates` reads columns:
    `%Q`, a lone `%`, or a pattern without day, month and year (`%H:%M`, `dd/mm/yyyy`) would
    read nothing, and an upload mapped with it fail only once read."""
    sample = pl.Series([_SAMPLE])
    try:
        written = sample.dt.strftime(pattern)
        read = written.str.to_datetime(pattern, strict=False, time_unit="us")
    except pl.exceptions.PolarsError:
        return False
    return read.dt.date().to_list() == [_SAMPLE.date()]


class ColumnMapping(BaseModel):
    """Canonical field name -> the file's column name (None: not in the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str | None = None
    order_id: str | None = None
    order_datetime: str | None = None
    product_id: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    order_total: str | None = None
    currency: str | None = None
    country: str | None = None
    date_format: str | None = None

    @field_validator("*")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        # Column names and formats are stored and echoed: printable text of sensible length.
        if value is not None and (problem := id_problem(value)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("date_format")
    @classmethod
    def _strftime_pattern(cls, value: str | None) -> str | None:
        if value is not None and not _reads_dates(value):
            raise ValueError(f"{value!r} is not a strftime pattern of a date like %d/%m/%Y %H:%M")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ColumnMapping:
        missing = [name for name in ("customer_id", "order_datetime") if not getattr(self, name)]
        if self.unit_price and self.order_total:
            raise ValueError("map either unit_price or order_total, not both")
        if not self.order_total:
            missing += [
                name
                for name in ("order_id", "product_id", "quantity", "unit_price")
                if not getattr(self, name)
            ]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)} (map unit_price with order_id, product_id and "
                "quantity, or map order_total)"
            )
        return self

    @property
    def uses_order_total(self) -> bool:
        return self.order_total is not None

    def columns(self) -> dict[str, str]:
        """The mapped canonical fields and their file columns, in canonical order."""
        return {name: getattr(self, name) for name in CANONICAL_FIELDS if getattr(self, name)}

    @classmethod
    def parse(cls, raw: str | bytes | dict[str, Any]) -> ColumnMapping:
        """Read a mapping from its JSON text (or decoded object); raises `invalid_mapping`."""
        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError as exc:
            raise IngestError(
                IngestErrorCode.INVALID_MAPPING, f"mapping is not JSON: {exc}", "mapping"
            ) from None
        if not isinstance(data, dict):
            raise IngestError(
                IngestErrorCode.INVALID_MAPPING, "mapping must be a JSON object", "mapping"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "mapping"
            problem = (
                f"unknown canonical name {field!r}; use {', '.join(CANONICAL_FIELDS)} or date_format"
                if error["type"] == "extra_forbidden"
                else error["msg"].removeprefix("Value error, ")
            )
            raise IngestError(IngestErrorCode.INVALID_MAPPING, problem, field) from None


class Layout(StrEnum):
    """Where a file's mapping came from."""

    UCI_ONLINE_RETAIL = "uci_online_retail"
    UCI_ONLINE_RETAIL_II = "uci_online_retail_ii"
    CDNOW = "cdnow"
    MAPPING = "mapping"


KNOWN_LAYOUTS: dict[Layout, ColumnMapping] = {
    Layout.UCI_ONLINE_RETAIL: ColumnMapping(
        customer_id="CustomerID",
        order_id="InvoiceNo",
        order_datetime="InvoiceDate",
        product_id="StockCode",
        quantity="Quantity",
        unit_price="UnitPrice",
        country="Country",
    ),
    Layout.UCI_ONLINE_RETAIL_II: ColumnMapping(
        customer_id="Customer ID",
        order_id="Invoice",
        order_datetime="InvoiceDate",
        product_id="StockCode",
        quantity="Quantity",
        unit_price="Price",
        country="Country",
    ),
    # Column names given by `readers` to CDNOW's headerless `customer date quantity value` text;
    # `value` is the dollar total of the day's purchase.
    Layout.CDNOW: ColumnMapping(
        customer_id="customer_id",
        order_datetime="date",
        quantity="quantity",
        order_total="value",
        date_format="%Y%m%d",
    ),
}


def _folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def _find_column(columns: list[str], wanted: str) -> str | None:
    """The file column named `wanted`: exactly, else the only one equal ignoring case and spacing."""
    if wanted in columns:
        return wanted
    matches = [column for column in columns if _folded(column) == _folded(wanted)]
    return matches[0] if len(matches) == 1 else None


def recognize_layout(columns: list[str]) -> Layout | None:
    """The known public layout whose columns the file has (ignoring case and spacing), if any."""
    for layout in (Layout.UCI_ONLINE_RETAIL, Layout.UCI_ONLINE_RETAIL_II):
        if all(_find_column(columns, c) for c in KNOWN_LAYOUTS[layout].columns().values()):
            return layout
    return None


def resolve_mapping(
    columns: list[str], mapping: ColumnMapping | None, layout_hint: Layout | None = None
) -> tuple[Layout, ColumnMapping]:
    """The mapping to apply to a file with `columns`, naming the file's exact column names.

    A given mapping wins over recognition; raises `missing_column` (naming the canonical field and
    the column) or `unknown_layout` (listing the file's columns).
    """
    if mapping is None:
        layout = layout_hint or recognize_layout(columns)
        if layout is None:
            raise IngestError(
                IngestErrorCode.UNKNOWN_LAYOUT,
                "the columns match no known layout (UCI Online Retail I/II, CDNOW); send a "
                f"mapping for the file's columns: {', '.join(repr(c) for c in columns)}",
                "mapping",
            )
        mapping = KNOWN_LAYOUTS[layout]
    else:
        layout = Layout.MAPPING
    resolved: dict[str, str] = {}
    for name, wanted in mapping.columns().items():
        found = _find_column(columns, wanted)
        if found is None:
            raise IngestError(
                IngestErrorCode.MISSING_COLUMN,
                f"mapping.{name} names column {wanted!r}, which the file does not have; its "
                f"columns are {', '.join(repr(c) for c in columns)}",
                name,
            )
        resolved[name] = found
    return layout, ColumnMapping(**resolved, date_format=mapping.date_format)
