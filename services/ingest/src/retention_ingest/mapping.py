"""Column mapping: which column of a retailer's file holds each canonical field.

A mapping is a JSON object from canonical names to the file's column names, e.g.
`{"customer_id": "Cust", "order_id": "Bon", "order_datetime": "Datum", "product_id": "Artikel",
"quantity": "Menge", "unit_price": "Preis", "date_format": "%d.%m.%Y %H:%M"}`.

Rules (README, "Cleaning rules"):
- `customer_id` and `order_datetime` are always required.
- Line-level files map `order_id`, `product_id`, `quantity` and `unit_price`.
- Order-level files map `order_total` instead of `unit_price` (`product_id` and `quantity` are then
  optional; see `cleaning` for the one synthetic line per order). Without `order_id`, such a
  file's orders are one per customer per local day, as in CDNOW.
- `currency` and `country` are optional; `date_format` overrides detection: a strftime pattern,
  or `day_first` / `month_first` when only that is in question (`dates.DATE_ORDERS`).

The public layouts (UCI Online Retail I and II, CDNOW) are recognized without a mapping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from retention_ingest.dates import DATE_ORDERS
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
REQUIRED_FIELDS = ("customer_id", "order_datetime")
# Required unless the file is order-level (maps `order_total`).
LINE_FIELDS = ("order_id", "product_id", "quantity", "unit_price")
# What each canonical field is, for forms that build a mapping (the upload preview lists them).
FIELD_DESCRIPTIONS = {
    "customer_id": "The customer's id.",
    "order_id": "The order or invoice number; one starting with C and a digit is a cancellation. "
    "Order-level files may leave it out: an order is then a customer's purchases of one day.",
    "order_datetime": "When the order was placed; times without an offset are read in the "
    "timezone. Day-first or month-first is detected; mapping.date_format (day_first, "
    "month_first or a strftime pattern) decides it.",
    "product_id": "The product (stock code) of the line; optional for order-level files.",
    "quantity": "Units of the line; negative for a cancellation or return.",
    "unit_price": "Price of one unit; order-level files map order_total instead.",
    "order_total": "The amount of the row, for order-level files (instead of unit_price).",
    "currency": "Currency code of the amounts (optional).",
    "country": "The customer's country (optional).",
}


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


class PartialMapping(BaseModel):
    """Canonical field name -> the file's column name (None: not in the file), each value
    checked but the whole not required to be complete: a mapping form being filled in."""

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
        if value is not None and value not in DATE_ORDERS and not _reads_dates(value):
            raise ValueError(
                f"{value!r} is not a strftime pattern of a date like %d/%m/%Y %H:%M, nor "
                f"{' or '.join(DATE_ORDERS)}"
            )
        return value

    def columns(self) -> dict[str, str]:
        """The mapped canonical fields and their file columns, in canonical order."""
        return {name: getattr(self, name) for name in CANONICAL_FIELDS if getattr(self, name)}

    @classmethod
    def parse(cls, raw: str | bytes | dict[str, Any]) -> Self:
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


def missing_fields(mapping: PartialMapping) -> list[str]:
    """The required fields `mapping` leaves out: `customer_id` and `order_datetime`, and unless
    it maps `order_total`, `order_id`, `product_id`, `quantity` and `unit_price`."""
    missing = [name for name in REQUIRED_FIELDS if not getattr(mapping, name)]
    if not mapping.order_total:
        missing += [name for name in LINE_FIELDS if not getattr(mapping, name)]
    return missing


class ColumnMapping(PartialMapping):
    """A complete mapping: what a file is read with."""

    @model_validator(mode="after")
    def _complete(self) -> ColumnMapping:
        if self.unit_price and self.order_total:
            raise ValueError("map either unit_price or order_total, not both")
        if missing := missing_fields(self):
            raise ValueError(
                f"missing {', '.join(missing)} (map unit_price with order_id, product_id and "
                "quantity, or map order_total)"
            )
        return self

    @property
    def uses_order_total(self) -> bool:
        return self.order_total is not None


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


def find_column(columns: list[str], wanted: str) -> str | None:
    """The file column named `wanted`: exactly, else the only one equal ignoring case and spacing."""
    if wanted in columns:
        return wanted
    matches = [column for column in columns if _folded(column) == _folded(wanted)]
    return matches[0] if len(matches) == 1 else None


def recognize_layout(columns: list[str]) -> Layout | None:
    """The known public layout whose columns the file has (ignoring case and spacing), if any."""
    for layout in (Layout.UCI_ONLINE_RETAIL, Layout.UCI_ONLINE_RETAIL_II):
        if all(find_column(columns, c) for c in KNOWN_LAYOUTS[layout].columns().values()):
            return layout
    return None


def resolve_columns(
    columns: list[str], mapping: PartialMapping
) -> tuple[dict[str, str], dict[str, str]]:
    """(found, missing): the file column of each mapped field (`find_column`), and the fields
    whose column the file does not have, with the name the mapping gave."""
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name, wanted in mapping.columns().items():
        column = find_column(columns, wanted)
        if column is None:
            missing[name] = wanted
        else:
            found[name] = column
    return found, missing


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
    found, missing = resolve_columns(columns, mapping)
    if missing:
        name, wanted = next(iter(missing.items()))  # the first, in canonical order
        raise IngestError(
            IngestErrorCode.MISSING_COLUMN,
            f"mapping.{name} names column {wanted!r}, which the file does not have; its "
            f"columns are {', '.join(repr(c) for c in columns)}",
            name,
        )
    return layout, ColumnMapping(**found, date_format=mapping.date_format)
