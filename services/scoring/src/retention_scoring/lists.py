"""Action lists over a scored population (no I/O).

Lists are filtered, sorted (largest first for the scores, customer id as the tie-break and for
`sort=customer_id`) and paged with a keyset cursor: the cursor carries the last row's sort value
and customer id, so the next page starts strictly after it. Pages stay stable while scores are
recomputed between requests: a customer whose score did not change is never skipped or repeated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import polars as pl

from retention_scoring.scoring import SCORE_COLUMNS

__all__ = [
    "CursorError",
    "Filters",
    "ListPage",
    "ListQuery",
    "SortKey",
    "decode_cursor",
    "encode_cursor",
    "filter_scores",
    "list_page",
    "range_problems",
]

LIST_COLUMNS = ("customer_id", *SCORE_COLUMNS, "features_as_of")


class SortKey(StrEnum):
    REVENUE_AT_RISK = "revenue_at_risk"
    CHURN_PROBABILITY = "churn_probability"
    PREDICTED_LTV = "predicted_ltv"
    EXPECTED_ORDERS = "expected_orders"
    CUSTOMER_ID = "customer_id"


class CursorError(ValueError):
    pass


@dataclass(frozen=True)
class Filters:
    # Any of these segments, bands and tiers (None: all).
    segments: tuple[str, ...] | None = None
    risk_bands: tuple[str, ...] | None = None
    value_tiers: tuple[str, ...] | None = None
    # Closed ranges: a bound matches the customer exactly on it (None: unbounded).
    min_ltv: float | None = None
    max_ltv: float | None = None
    min_churn: float | None = None
    max_churn: float | None = None
    min_orders: float | None = None
    max_orders: float | None = None
    # Customers whose next-order date is on or after / on or before these days (one without a
    # date matches neither bound).
    next_order_from: date | None = None
    next_order_to: date | None = None

    def fingerprint(self, sort: SortKey) -> str:
        """What a cursor carries of its query: `segment=A,B` and `B,A` are one list, so sets
        are sorted; any other segment, band, tier, bound or sort makes another fingerprint."""
        text = json.dumps(
            [
                _sorted(self.segments),
                _sorted(self.risk_bands),
                _sorted(self.value_tiers),
                self.min_ltv,
                self.max_ltv,
                self.min_churn,
                self.max_churn,
                sort.value,
                *self._order_bounds(),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def _order_bounds(self) -> list[float | str | None]:
        """The expected-orders bounds, only when one is set: cursors of lists without them keep
        the fingerprint they had before these filters."""
        bounds = [
            self.min_orders,
            self.max_orders,
            None if self.next_order_from is None else self.next_order_from.isoformat(),
            None if self.next_order_to is None else self.next_order_to.isoformat(),
        ]
        return bounds if any(b is not None for b in bounds) else []


def _sorted(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def range_problems(filters: Filters) -> list[tuple[str, str]]:
    """(field, problem) for each range whose bounds leave nothing between them (min above max):
    such a list would always be empty, which reads as "nobody" rather than as a typo."""
    problems = []
    for name, low, high in (
        ("ltv", filters.min_ltv, filters.max_ltv),
        ("churn", filters.min_churn, filters.max_churn),
        ("orders", filters.min_orders, filters.max_orders),
    ):
        if low is not None and high is not None and low > high:
            problems.append((f"max_{name}", f"{high:g} is below min_{name} {low:g}"))
    start, end = filters.next_order_from, filters.next_order_to
    if start is not None and end is not None and start > end:
        problems.append(("next_order_to", f"{end} is before next_order_from {start}"))
    return problems


@dataclass(frozen=True)
class ListQuery:
    filters: Filters
    sort: SortKey = SortKey.REVENUE_AT_RISK
    limit: int = 100
    after: tuple[float | str, str] | None = None  # (sort value, customer id) of the last row seen


@dataclass(frozen=True)
class ListPage:
    rows: pl.DataFrame
    total: int  # rows matching the filters, over all pages
    next_after: tuple[float | str, str] | None


def filter_scores(scores: pl.DataFrame, filters: Filters) -> pl.DataFrame:
    conditions = []
    if filters.segments is not None:
        conditions.append(pl.col("segment").is_in(filters.segments))
    if filters.risk_bands is not None:
        conditions.append(pl.col("risk_band").is_in(filters.risk_bands))
    if filters.value_tiers is not None:
        conditions.append(pl.col("value_tier").is_in(filters.value_tiers))
    if filters.min_ltv is not None:
        conditions.append(pl.col("predicted_ltv") >= filters.min_ltv)
    if filters.max_ltv is not None:
        conditions.append(pl.col("predicted_ltv") <= filters.max_ltv)
    if filters.min_churn is not None:
        conditions.append(pl.col("churn_probability") >= filters.min_churn)
    if filters.max_churn is not None:
        conditions.append(pl.col("churn_probability") <= filters.max_churn)
    if filters.min_orders is not None:
        conditions.append(pl.col("expected_orders") >= filters.min_orders)
    if filters.max_orders is not None:
        conditions.append(pl.col("expected_orders") <= filters.max_orders)
    if filters.next_order_from is not None:
        conditions.append(pl.col("next_order_by") >= filters.next_order_from)
    if filters.next_order_to is not None:
        conditions.append(pl.col("next_order_by") <= filters.next_order_to)
    return scores.filter(*conditions) if conditions else scores


def list_page(scores: pl.DataFrame, query: ListQuery) -> ListPage:
    """One page of the list (`scores` has `LIST_COLUMNS`' sources: a population's scores)."""
    matching = filter_scores(scores, query.filters)
    sort = query.sort.value
    if query.sort is SortKey.CUSTOMER_ID:
        ordered = matching.sort("customer_id")
        if query.after is not None:
            ordered = ordered.filter(pl.col("customer_id") > query.after[1])
    else:
        ordered = matching.sort([sort, "customer_id"], descending=[True, False])
        if query.after is not None:
            value, customer = query.after
            ordered = ordered.filter(
                (pl.col(sort) < value)
                | ((pl.col(sort) == value) & (pl.col("customer_id") > customer))
            )
    page = ordered.head(query.limit)
    next_after = None
    if ordered.height > query.limit:
        last = page.row(-1, named=True)
        next_after = (last[sort], last["customer_id"])
    rows = page.rename({"as_of": "features_as_of"}).select(LIST_COLUMNS)
    return ListPage(rows=rows, total=matching.height, next_after=next_after)


def encode_cursor(after: tuple[float | str, str], query: ListQuery) -> str:
    payload = {"v": after[0], "c": after[1], "q": query.filters.fingerprint(query.sort)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters, sort: SortKey) -> tuple[float | str, str]:
    """The (sort value, customer id) a cursor continues after; CursorError if it is not one of
    ours or was made for other filters or another sort order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value, customer, fingerprint = payload["v"], payload["c"], payload["q"]
    except (ValueError, KeyError, TypeError):
        raise CursorError("not a cursor this service issued") from None
    if fingerprint != filters.fingerprint(sort):
        raise CursorError("was issued for other filters or another sort order")
    if not isinstance(customer, str):
        raise CursorError("not a cursor this service issued")
    return _sort_value(value, sort), customer


def _sort_value(value: object, sort: SortKey) -> float | str:
    """A cursor's sort value as the column compares it; CursorError for one no page could end
    on (a client can forge a cursor: text against a number column, 1e999, 10**400)."""
    if sort is SortKey.CUSTOMER_ID:
        if isinstance(value, str):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise CursorError("not a cursor this service issued")
