"""One customer's running totals, advanced one order at a time: `compute_features` for a stream.

`compute_features` reads each customer's running totals (see `compute._timeline`) at their last
order at or before the clock. When none of the customer's orders is after the clock — always so
for the tenant clock, the latest event time seen — that is the state after their last order, so
a consumer can keep it per customer and add orders one by one instead of recomputing the whole
history. Each step does the vectorized code's arithmetic on the same integers and floats, so the
vectors are the same; a test compares them with `compute_features` on the real data.

Order independence: money is in integer micro-units, counts are integers, products (as 64-bit
hashes, `product_set`) and months are sets, and the gap sums are redone in time order from the purchase instants when a late
order lands between them. The one float running sum (items) is bit-identical in canonical order
`(occurred_at, kind, order_id)` and, out of it, exact only for whole numbers: a late order with a
fractional item count is refused (`can_add`), and the caller rebuilds the customer from the full
history (`RunningCustomer.from_orders`). Only the orders of the longest window, plus the first
and last purchase and event, are kept (as `compact_history` keeps them), so a clock too early for
them is refused too (`serves`); the caller uses `compute_features` for those.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

import polars as pl

from retention_shared.features.compute import DAY_US, HISTORY_DAYS, MONEY_SCALE
from retention_shared.features.product_set import ProductSet
from retention_shared.features.registry import (
    FEATURE_NAMES,
    MIN_GAP_DAYS,
    Q4_MONTHS,
    SEASON_BY_MONTH,
    SEASON_DAYS,
    TREND_WINDOW_DAYS,
    WINDOWS_DAYS,
    YEAR_DAYS,
)

PURCHASE = "purchase"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HISTORY_US = HISTORY_DAYS * DAY_US
_TREND_US = TREND_WINDOW_DAYS * DAY_US
_WINDOWS_US = tuple(days * DAY_US for days in WINDOWS_DAYS)
_YEAR_US, _SEASON_END_US = YEAR_DAYS * DAY_US, (YEAR_DAYS - SEASON_DAYS) * DAY_US
# polars divides by a literal as a product with its reciprocal: the same here, for the same bits.
_PER_DAY = 1 / DAY_US
_PER_UNIT = 1 / MONEY_SCALE
# Kept orders no clock needs any more are dropped in one rebuild once there are this many.
_PRUNE_AT_LEAST = 16


class RunningOrder(NamedTuple):
    """An order as `ORDER_SCHEMA` has it, the time in integer microseconds since the epoch.

    The first three fields are the canonical order (ties on all three cannot happen: an order is
    unique by tenant, order id and kind)."""

    occurred_at_us: int
    kind: str
    order_id: str
    total: float
    items: float
    products: Sequence[str]


def running_orders(orders: pl.DataFrame) -> list[tuple[str, str, RunningOrder]]:
    """An `ORDER_SCHEMA` frame as (tenant, customer, order) in frame order."""
    rows = orders.select(
        "tenant_id",
        "customer_id",
        pl.col("occurred_at").dt.epoch("us"),
        "kind",
        "order_id",
        "total",
        "items",
        "products",
    ).iter_rows()
    return [(tenant, customer, RunningOrder(*order)) for tenant, customer, *order in rows]


# One order of the compact history: (occurred_at_us, kind, total), `HISTORY_COLUMNS` without
# the customer key (a plain tuple: many are made per vector).
HistoryEntry = tuple[int, str, float]


@dataclass(frozen=True)
class RunningVector:
    """A customer's features at a clock, with the order-history summary a scorer needs."""

    as_of_us: int
    features: dict[str, float]
    first_purchase_us: int | None
    last_purchase_us: int | None
    last_event_us: int
    purchase_orders: int
    cancellations: int
    # `compact_history` at `as_of_us`, sorted by (occurred_at, kind, total) as it sorts.
    history: list[HistoryEntry]


def _month(moment_us: int) -> int:
    return _month_of_day(moment_us // DAY_US)


@lru_cache(maxsize=1 << 14)
def _month_of_day(day: int) -> int:
    moment = _EPOCH + timedelta(days=day)
    return moment.year * 12 + moment.month


def _calendar_month(moment_us: int) -> int:
    """1-12, UTC."""
    return (_month(moment_us) - 1) % 12 + 1


def _integral(value: float) -> bool:
    return value.is_integer() and abs(value) < 2**52


def _money(total: float) -> int:
    # Half to even, as polars' round: integer micro-units make every sum exact.
    return round(total * MONEY_SCALE)


class _KeptOrders:
    """The orders a vector may still need, sorted as `compact_history` sorts them, with running
    sums (money, purchase orders, gross purchase money) so a window total is two look-ups."""

    __slots__ = ("entries", "gross", "money", "orders", "times")

    def __init__(self) -> None:
        self.entries: list[HistoryEntry] = []
        self.times: list[int] = []
        # Sums over entries[:i] at index i (so one longer than entries).
        self.money, self.orders, self.gross = [0], [0], [0]

    def add(self, entry: HistoryEntry) -> None:
        entries = self.entries
        if not entries or entry >= entries[-1]:  # the usual case: orders arrive in time order
            entries.append(entry)
            self.times.append(entry[0])
            self._sum(entry)
            return
        at = bisect_right(entries, entry)
        entries.insert(at, entry)
        self.times.insert(at, entry[0])
        del self.money[at + 1 :], self.orders[at + 1 :], self.gross[at + 1 :]
        for later in entries[at:]:
            self._sum(later)

    def _sum(self, entry: HistoryEntry) -> None:
        money, purchase = _money(entry[2]), entry[1] == PURCHASE
        self.money.append(self.money[-1] + money)
        self.orders.append(self.orders[-1] + purchase)
        self.gross.append(self.gross[-1] + (money if purchase else 0))

    def first_after(self, moment_us: int) -> int:
        """The index of the first entry after `moment_us`."""
        return bisect_right(self.times, moment_us)

    def history(
        self, horizon_us: int, anchor: Callable[[HistoryEntry], bool]
    ) -> list[HistoryEntry]:
        """The entries after the horizon, and the anchors at or before it, in order."""
        at = self.first_after(horizon_us)
        return [e for e in self.entries[:at] if anchor(e)] + self.entries[at:]

    def prune(self, horizon_us: int, anchor: Callable[[HistoryEntry], bool]) -> bool:
        """Drop the entries at or before the horizon that are not anchors, once there are enough
        of them to be worth a rebuild; True if any were dropped."""
        at = self.first_after(horizon_us)
        if at < _PRUNE_AT_LEAST:
            return False
        kept = self.history(horizon_us, anchor)
        if len(self.entries) - len(kept) < _PRUNE_AT_LEAST:
            return False
        self.entries, self.times = [], []
        self.money, self.orders, self.gross = [0], [0], [0]
        for entry in kept:
            self.entries.append(entry)
            self.times.append(entry[0])
            self._sum(entry)
        return True


class RunningCustomer:
    """The running totals of one customer after all their orders so far."""

    __slots__ = (
        "_horizon_us",
        "_instants",
        "_integral_items",
        "_kept",
        "cancellations",
        "cancelled",
        "first_event",
        "first_gap",
        "gap_dev2",
        "gap_dev_us",
        "gross",
        "items",
        "last_key",
        "months",
        "net",
        "products",
        "purchases",
        "q4_gross",
    )

    def __init__(self) -> None:
        # The latest order in canonical order: (occurred_at_us, kind, order_id).
        self.last_key: tuple[int, str, str] | None = None
        self.first_event = 0
        self.purchases = 0
        self.cancellations = 0
        self.net = 0
        self.gross = 0
        self.cancelled = 0
        self.q4_gross = 0
        self.items = 0.0
        # 8 bytes per distinct product (hashes, see product_set), not a set of id strings.
        self.products = ProductSet()
        # Distinct purchase months (year * 12 + month), ascending: 4 bytes each, not a set.
        self.months = array("i")
        self.first_gap: int | None = None
        self.gap_dev_us = 0
        self.gap_dev2 = 0.0
        # The distinct purchase instants, ascending: the purchase occasions and their gaps
        # (an array: 8 bytes each instead of a list slot and an int object).
        self._instants = array("q")
        # Every item count so far is a whole number (sums exact in any order).
        self._integral_items = True
        # Orders at or before `_horizon_us` were dropped (or never kept) unless compact_history
        # keeps them whatever the clock (`_anchor`).
        self._kept = _KeptOrders()
        self._horizon_us: int | None = None

    @classmethod
    def from_orders(cls, orders: Iterable[RunningOrder]) -> RunningCustomer:
        """The state after all of a customer's orders (any order; sorted here)."""
        customer = cls()
        for order in sorted(orders, key=lambda o: (o[0], o[1], o[2])):
            customer.add(order)
        customer.products.compact()  # idle customers hold no pending list
        return customer

    @property
    def last_event(self) -> int:
        return self.last_key[0] if self.last_key is not None else 0

    @property
    def first_purchase(self) -> int | None:
        return self._instants[0] if self._instants else None

    @property
    def last_purchase(self) -> int | None:
        return self._instants[-1] if self._instants else None

    @property
    def occasions(self) -> int:
        return len(self._instants)

    def can_add(self, order: RunningOrder) -> bool:
        """True if `order` can be added exactly: it sorts after every order so far, or it is
        late but its sums do not depend on the order of addition (whole item counts)."""
        if self.last_key is None or (order[0], order[1], order[2]) > self.last_key:
            return True
        return self._integral_items and _integral(order.items)

    def add(self, order: RunningOrder) -> None:
        """Add one new order (not one added before: the caller dedupes); see `can_add`."""
        if not self.can_add(order):
            raise ValueError("a late order with fractional items: rebuild from the history")
        t, kind, order_id, total, items, products = order
        key = (t, kind, order_id)
        if self.last_key is None:
            self.first_event = t
            self.last_key = key
        elif key > self.last_key:
            self.last_key = key
        elif t < self.first_event:
            self.first_event = t
        money = _money(total)
        self.net += money
        purchase = kind == PURCHASE
        if purchase:
            self._add_instant(t)
            self._add_month(_month(t))
            self.purchases += 1
            self.gross += money
            if _calendar_month(t) in Q4_MONTHS:
                self.q4_gross += money
            # In canonical order this is the vectorized running sum, bit for bit; out of order
            # it is the same only for whole numbers (see can_add).
            self.items += items
            self._integral_items = (
                self._integral_items and _integral(items) and _integral(self.items)
            )
            self.products.update(products)
        else:
            self.cancellations += 1
            self.cancelled -= money
        entry = (t, kind, total)
        if self._horizon_us is None or t > self._horizon_us or self._anchor(entry):
            self._kept.add(entry)

    def _anchor(self, entry: HistoryEntry) -> bool:
        """An order `compact_history` keeps at any clock: at the first or last event, or a
        purchase at the first or last purchase (anchors only move outwards, so an order that is
        not one now never becomes one)."""
        t = entry[0]
        if t == self.first_event or t == self.last_event:
            return True
        instants = self._instants
        return entry[1] == PURCHASE and (t == instants[0] or t == instants[-1])

    def _add_month(self, month: int) -> None:
        months = self.months
        if not months or month > months[-1]:
            months.append(month)
            return
        at = bisect_left(months, month)
        if months[at] != month:
            months.insert(at, month)

    def _add_instant(self, t: int) -> None:
        instants = self._instants
        if not instants or t > instants[-1]:
            instants.append(t)
            if len(instants) > 1:
                self._add_gap(t - instants[-2])
            return
        at = bisect_left(instants, t)
        if instants[at] == t:
            return  # another purchase at a known instant: no new occasion
        instants.insert(at, t)
        # A gap split in the middle: sum the gaps again, in time order as the vectorized code.
        self.first_gap, self.gap_dev_us, self.gap_dev2 = None, 0, 0.0
        for previous, later in pairwise(instants):
            self._add_gap(later - previous)

    def _add_gap(self, gap: int) -> None:
        if self.first_gap is None:
            self.first_gap = gap
        # Shifted by the first gap, as the vectorized code sums them (no cancellation).
        deviation = gap - self.first_gap
        self.gap_dev_us += deviation
        scaled = deviation * _PER_DAY
        self.gap_dev2 += scaled * scaled

    def serves(self, as_of_us: int) -> bool:
        """True if the kept state gives the features at `as_of_us` (else: full recompute)."""
        if self.last_key is None or as_of_us < self.last_key[0]:
            return False
        return self._horizon_us is None or as_of_us - _HISTORY_US >= self._horizon_us

    def vector(self, as_of_us: int) -> RunningVector:
        """Features and history summary at `as_of_us`; drops the orders no later clock needs."""
        if not self.serves(as_of_us):
            raise ValueError("the clock is before the customer's latest order or kept history")
        horizon = as_of_us - _HISTORY_US
        kept = self._kept
        end = len(kept.entries)
        orders_in, money_in = [], []
        for window in _WINDOWS_US:
            at = kept.first_after(as_of_us - window)
            orders_in.append(kept.orders[end] - kept.orders[at])
            money_in.append(kept.money[end] - kept.money[at])
        recent_at = kept.first_after(as_of_us - _TREND_US)
        before_at = kept.first_after(as_of_us - 2 * _TREND_US)
        recent_gross = kept.gross[end] - kept.gross[recent_at]
        before_gross = kept.gross[recent_at] - kept.gross[before_at]
        season_last_year = (
            kept.orders[kept.first_after(as_of_us - _SEASON_END_US)]
            - kept.orders[kept.first_after(as_of_us - _YEAR_US)]
        )
        history = kept.history(horizon, self._anchor)
        if kept.prune(horizon, self._anchor):
            self._horizon_us = horizon
        return RunningVector(
            as_of_us=as_of_us,
            features=self._features(
                as_of_us, orders_in, money_in, recent_gross, before_gross, season_last_year
            ),
            first_purchase_us=self.first_purchase,
            last_purchase_us=self.last_purchase,
            last_event_us=self.last_event,
            purchase_orders=self.purchases,
            cancellations=self.cancellations,
            history=history,
        )

    def _features(
        self,
        as_of_us: int,
        orders_in: list[int],
        money_in: list[int],
        recent: int,
        before: int,
        season_last_year: int,
    ) -> dict[str, float]:
        # The arithmetic of compute._history_exprs / _clock_exprs, operand for operand.
        purchases = self.purchases
        has_purchase = purchases > 0
        if has_purchase:
            last, first = self.last_purchase, self.first_purchase
        else:
            last, first = self.last_event, self.first_event
        assert last is not None and first is not None
        recency = (as_of_us - last) * _PER_DAY
        monetary = self.net * _PER_UNIT
        gap_mean = gap_std = 0.0
        if self.occasions >= 2:
            assert self.last_purchase is not None and self.first_purchase is not None
            gaps = float(self.occasions - 1)
            gap_mean = (self.last_purchase - self.first_purchase) / gaps * _PER_DAY
            dev_mean = self.gap_dev_us / gaps * _PER_DAY
            gap_std = math.sqrt(max(self.gap_dev2 / gaps - dev_mean * dev_mean, 0.0))
        cancelled, gross = max(self.cancelled, 0), self.gross
        if gross > 0:
            cancellation_rate = min(cancelled / gross, 1.0)
        else:
            cancellation_rate = 1.0 if cancelled > 0 else 0.0
        values: dict[str, float] = {
            "recency_days": recency,
            "frequency": float(purchases),
            "monetary": monetary,
            "avg_order_value": monetary / purchases if has_purchase else 0.0,
            "avg_items_per_order": self.items / purchases if has_purchase else 0.0,
            "tenure_days": (as_of_us - first) * _PER_DAY,
        }
        for i, days in enumerate(WINDOWS_DAYS):
            values[f"orders_{days}d"] = float(orders_in[i])
            values[f"spend_{days}d"] = money_in[i] * _PER_UNIT
        values["spend_trend"] = (
            (recent - before) / (recent + before) if recent + before > 0 else 0.0
        )
        values["gap_mean_days"] = gap_mean
        values["gap_std_days"] = gap_std
        values["days_past_expected_order"] = recency - gap_mean
        values["recency_gap_ratio"] = recency / max(gap_mean, MIN_GAP_DAYS)
        values["unique_products"] = float(len(self.products))
        values["cancellation_rate"] = float(cancellation_rate)
        values["active_months"] = float(len(self.months))
        values["q4_spend_share"] = min(max(self.q4_gross / gross, 0.0), 1.0) if gross > 0 else 0.0
        values["orders_season_last_year"] = float(season_last_year)
        values["season_sin"], values["season_cos"] = SEASON_BY_MONTH[_calendar_month(as_of_us)]
        return {name: values[name] for name in FEATURE_NAMES}
