"""The one feature definition: per-customer features from an orders frame, as of a clock.

How it stays exact and point-in-time correct at any scale:

- Orders are put in one canonical order per customer, `(occurred_at, kind, order_id)`, and every
  quantity is a running total over that order (`cum_sum` within the customer). The state as of T
  is the running total at the customer's last order at or before T, found with an as-of join, so
  nothing after T can reach a feature at T, and many cutoffs cost one pass plus one join each.
- Money is summed in integer micro-units (1e-6 of the currency), so sums are exact: they do not
  depend on row order, on which other customers are in the frame, or on whether a window total is
  a difference of two running totals. Times are integer microseconds; days are `us / 86_400e6`.
  A customer whose money could pass 2**52 micro-units (int64 wraps at ~9.2e18, and an order may
  be 1e18) also gets exact high and low parts of each money total, and their money features are
  redone from Python integers, as the streaming totals (`running.py`) compute them.
- The only float running total (squared gap deviations) is a sequential sum within one customer
  in canonical order, so it is bit-identical for one customer alone or among millions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from retention_shared.features.orders import (
    CATEGORICAL_PRODUCTS,
    HISTORY_COLUMNS,
    ORDER_SCHEMA,
    conform_orders,
)
from retention_shared.features.registry import (
    CLOCK_FEATURES,
    DAY_SECONDS,
    FEATURE_NAMES,
    MIN_GAP_DAYS,
    Q4_MONTHS,
    SEASON_BY_MONTH,
    SEASON_DAYS,
    TREND_WINDOW_DAYS,
    WINDOWS_DAYS,
    YEAR_DAYS,
)

KEY = ["tenant_id", "customer_id"]
DAY_US = DAY_SECONDS * 1_000_000
MONEY_SCALE = 1_000_000
# Edges (days before the clock) at which running totals are looked up for window features.
_EDGES_DAYS = tuple(
    sorted(
        {
            *WINDOWS_DAYS,
            TREND_WINDOW_DAYS,
            2 * TREND_WINDOW_DAYS,
            YEAR_DAYS,
            YEAR_DAYS - SEASON_DAYS,
        }
    )
)
_EDGE_TOTALS = ("c_purchases", "c_net", "c_gross")
# Below this many micro-units (a customer's sum of |money|) every money total, window difference
# and ratio operand is an integer float64 holds exactly and int64 cannot wrap, so the vectorized
# arithmetic equals Python's on integers; 2**52 leaves a factor 2 for the float bound's error.
EXACT_MONEY_LIMIT = 2**52
# Exact money totals are carried as high and low int64 parts: total = high · 2**32 + low.
_LOW_BITS = 32
_PER_UNIT = 1 / MONEY_SCALE
HISTORY_DAYS = max(_EDGES_DAYS)

Orders = pl.DataFrame | pl.LazyFrame
# One instant for every tenant, a frame (tenant_id, as_of) giving each tenant its own clock, or a
# frame (tenant_id, customer_id, as_of) giving each customer one (the features service pins each
# customer to the clock at their latest event, so replays give the same vectors).
Clock = datetime | pl.DataFrame
Cutoffs = Sequence[datetime] | pl.Series | pl.DataFrame

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PURCHASE = pl.col("kind") == "purchase"


def compute_features(orders: Orders, as_of: Clock) -> pl.DataFrame:
    """Features of every customer with an order at or before their tenant's `as_of`.

    `orders` has the columns of `ORDER_SCHEMA`. Returns `tenant_id, customer_id, as_of` and the
    features in `FEATURE_NAMES` order (all Float64, never null or NaN), sorted by customer.
    """
    frame = conform_orders(orders)
    clocks = _clocks(frame, as_of, "as_of")
    state = _state_at(_timeline(frame), clocks)
    return _finish(_exact_money(_with_features(state)), "as_of")


def compute_features_at_cutoffs(
    orders: Orders, cutoffs: Cutoffs, outcome_days: Sequence[int] = ()
) -> pl.DataFrame:
    """Features of every customer at every cutoff: the same values as `compute_features` per cutoff.

    `cutoffs` is a sequence or Series of aware datetimes applying to every tenant, or a frame with
    `cutoff` and optionally `tenant_id`. Returns `tenant_id, customer_id, cutoff` and the
    features, sorted by customer then cutoff; a customer appears at a cutoff only if they have an
    order at or before it.

    For each of `outcome_days` (D) it adds what happened in the D days after the cutoff, from
    the same running totals: `orders_next_{D}d` (purchase orders in (cutoff, cutoff + D]) and
    `spend_next_{D}d` (net spend in that window). These are labels for training, never features.
    """
    if any(days <= 0 for days in outcome_days):
        raise ValueError("outcome_days must be positive")
    frame = conform_orders(orders)
    clocks = _cutoff_clocks(frame, cutoffs)
    state = _state_at(_timeline(frame), clocks, outcome_days)
    outcomes = {}
    for days in outcome_days:
        outcomes[f"orders_next_{days}d"] = pl.col(f"c_purchases_next_{days}d") - pl.col(
            "c_purchases"
        )
        outcomes[f"spend_next_{days}d"] = (
            pl.col(f"c_net_next_{days}d") - pl.col("c_net")
        ) / MONEY_SCALE
    return _finish(
        _exact_money(_with_features(state).with_columns(**outcomes), outcome_days),
        "cutoff",
        [*FEATURE_NAMES, *outcomes],
    )


def compact_history(orders: Orders, as_of: Clock) -> pl.DataFrame:
    """The least per-customer history that moves clock features from `as_of` to any later clock.

    Columns `HISTORY_COLUMNS` (`tenant_id, customer_id, occurred_at, kind, total`): every order in
    (as_of - 365d, as_of] (the longest window, which also covers the trend's 180 days), plus the
    customer's first and last purchase and first and last event if older. Everything else a clock
    feature needs (`gap_mean_days`) is itself a feature that does not move with the clock.
    """
    frame = conform_orders(orders, HISTORY_COLUMNS)
    clocks = _clocks(frame, as_of, "as_of")
    t = pl.col("occurred_at").dt.epoch("us")
    purchase_t = pl.when(_PURCHASE).then(t)
    kept = (
        frame.join(clocks, on=clock_keys(clocks))
        .filter(t <= pl.col("cutoff_us"))
        .filter(
            (t > pl.col("cutoff_us") - HISTORY_DAYS * DAY_US)
            | (t == t.min().over(KEY))
            | (t == t.max().over(KEY))
            | (_PURCHASE & (t == purchase_t.min().over(KEY)))
            | (_PURCHASE & (t == purchase_t.max().over(KEY)))
        )
    )
    # total breaks ties too, so same-instant orders come out in one order whatever the input order.
    return kept.select(HISTORY_COLUMNS).sort([*KEY, "occurred_at", "kind", "total"]).collect()


def recompute_clock_features(features: pl.DataFrame, history: Orders, as_of: Clock) -> pl.DataFrame:
    """Move `features` (a `compute_features` result) to a later clock, with no new orders.

    `history` is each customer's `compact_history` taken at the features' `as_of` (or any
    superset of it up to that time). The `CLOCK_FEATURES` and `as_of` are recomputed; the others
    are kept. The result equals `compute_features` on the full history at the new clock. Raises
    ValueError if a new clock is earlier than a row's `as_of`, or if `history` holds an order
    after it (the customer has new orders: recompute their features in full instead).
    """
    frame = conform_orders(history, HISTORY_COLUMNS).with_columns(
        order_id=pl.lit(""),
        items=pl.lit(0.0),
        products=pl.lit([], dtype=ORDER_SCHEMA["products"]),
    )
    clocks = _clocks(frame, as_of, "as_of")
    known = features.lazy().select(
        *KEY,
        old_as_of_us=pl.col("as_of").dt.epoch("us"),
        gap_mean_days=pl.col("gap_mean_days"),
    )
    state = _state_at(_timeline(frame), clocks).join(known, on=KEY, how="inner")
    problems = (
        state.select(
            earlier=(pl.col("cutoff_us") < pl.col("old_as_of_us")).sum(),
            newer_orders=(pl.col("t") > pl.col("old_as_of_us")).sum(),
        )
        .collect()
        .row(0, named=True)
    )
    if problems["earlier"]:
        raise ValueError(f"{problems['earlier']} customer(s) would move to an earlier clock")
    if problems["newer_orders"]:
        raise ValueError(
            f"{problems['newer_orders']} customer(s) have orders after their features' as_of; "
            "recompute their features from the full history"
        )
    moved = _finish(
        _exact_money(state.with_columns(**_clock_exprs())), "as_of", names=CLOCK_FEATURES
    )
    kept = features.drop("as_of", *CLOCK_FEATURES)
    columns = [*KEY, "as_of", *[n for n in features.columns if n not in (*KEY, "as_of")]]
    return moved.join(kept, on=KEY, how="inner").select(columns).sort(KEY)


# --- clocks ---------------------------------------------------------------------------------


def _int(value: object) -> int:
    """A whole-number column statistic (`Series.min()` and the like are typed as any value)."""
    assert isinstance(value, int), value
    return value


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"clock {moment.isoformat()} must be time-zone aware")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _clock_column(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(f"clock column {column} must be a time-zone-aware Datetime, not {dtype}")
    return pl.col(column).dt.epoch("us").alias("cutoff_us")


def _tenants(orders: pl.LazyFrame) -> pl.LazyFrame:
    return orders.select(pl.col("tenant_id").unique())


def _clocks(orders: pl.LazyFrame, as_of: Clock, column: str) -> pl.LazyFrame:
    """(tenant_id[, customer_id], cutoff_us): one clock per tenant, or per customer."""
    if isinstance(as_of, datetime):
        return _tenants(orders).with_columns(cutoff_us=pl.lit(_epoch_us(as_of), pl.Int64))
    if "tenant_id" not in as_of.columns or column not in as_of.columns:
        raise ValueError(f"a clock frame needs the columns tenant_id and {column}")
    keys = clock_keys(as_of)
    if as_of.select(keys).is_duplicated().any():
        raise ValueError(f"a clock frame must give each {' and '.join(keys)} one clock")
    return as_of.lazy().select(
        *(pl.col(k).cast(pl.String) for k in keys), _clock_column(as_of, column)
    )


def clock_keys(clocks: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The key a clock frame is joined on: tenant_id, and customer_id when it has one."""
    names = clocks.collect_schema().names()
    return [k for k in KEY if k in names]


def _cutoff_clocks(orders: pl.LazyFrame, cutoffs: Cutoffs) -> pl.LazyFrame:
    """(tenant_id, cutoff_us): any number of clocks per tenant."""
    if isinstance(cutoffs, pl.DataFrame):
        if "cutoff" not in cutoffs.columns:
            raise ValueError("a cutoffs frame needs the column cutoff (and optionally tenant_id)")
        if "tenant_id" in cutoffs.columns:
            clocks = cutoffs.lazy().select(
                pl.col("tenant_id").cast(pl.String), _clock_column(cutoffs, "cutoff")
            )
        else:
            moments = cutoffs.lazy().select(_clock_column(cutoffs, "cutoff"))
            clocks = _tenants(orders).join(moments, how="cross")
    else:
        moments = pl.LazyFrame(
            {"cutoff_us": [_epoch_us(c) for c in cutoffs]}, {"cutoff_us": pl.Int64}
        )
        clocks = _tenants(orders).join(moments, how="cross")
    return clocks.unique()


# --- running totals and look-ups --------------------------------------------------------------

# Largest customer × span key of a keyed as-of join (int64, with room to spare).
_KEY_LIMIT = 2**62


class _Segments:
    """Rows sorted by customer: each customer is a contiguous segment. Per-segment running values
    are whole-array numpy operations with a reset at each segment's first row (no grouping)."""

    def __init__(self, start: np.ndarray) -> None:
        self.first = np.flatnonzero(start)
        lengths = np.diff(np.append(self.first, len(start)))
        # The first row of each row's segment.
        self.first_of_row = np.repeat(self.first, lengths)
        self.lengths = lengths

    def running_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of integer `x` over the segment up to each row (exact: integers)."""
        total = np.cumsum(x, dtype=np.int64)
        running: np.ndarray = total - np.repeat((total - x)[self.first], self.lengths)
        return running

    def last_where(self, valid: np.ndarray) -> np.ndarray:
        """Per row: the index of the segment's latest row so far where `valid`, else -1."""
        latest = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
        return np.where(latest >= self.first_of_row, latest, -1)


def _nullable(values: np.ndarray, at: np.ndarray) -> pl.Series:
    """`values[at]`, null where `at` is -1."""
    return pl.Series(values[np.maximum(at, 0)]).scatter(np.flatnonzero(at < 0), None)


def _timeline(orders: pl.LazyFrame) -> pl.DataFrame:
    """Running totals per customer after each order; one row per (customer, instant), the last."""
    base = (
        orders.select(
            *KEY,
            "order_id",
            "kind",
            "items",
            "products",
            t=pl.col("occurred_at").dt.epoch("us"),
            month=_month(pl.col("occurred_at")),
            money=(pl.col("total") * MONEY_SCALE).round().cast(pl.Int64),
        )
        .sort([*KEY, "t", "kind", "order_id"])
        .with_row_index("row")
        .with_columns(
            start=pl.col("tenant_id")
            .ne_missing(pl.col("tenant_id").shift(1))
            .or_(pl.col("customer_id").ne_missing(pl.col("customer_id").shift(1)))
        )
        # An integer per customer, in key order: cheaper to group and join by than strings.
        .with_columns(cid=pl.col("start").cum_sum())
        .collect()
    )
    return _running_totals(base.with_columns(_new_products(base)))


def _running_totals(base: pl.DataFrame) -> pl.DataFrame:
    """The running totals after each row of `base` (sorted by customer, then canonical order),
    keeping the last row of each (customer, instant)."""
    column = base.get_column
    t, month, money = (column(c).to_numpy() for c in ("t", "month", "money"))
    purchase = (column("kind") == "purchase").to_numpy()
    start = column("start").to_numpy()
    segments = _Segments(start)
    c_purchases = segments.running_sum(purchase)
    last_purchase_at = segments.last_where(purchase)
    first_purchase_at = segments.last_where(purchase & (c_purchases == 1))
    # The latest purchase strictly before each row: a purchase at a new instant starts a new
    # purchase occasion, and the gap to it is one inter-purchase gap.
    prev_at = np.where(start, -1, np.roll(last_purchase_at, 1))
    has_prev = prev_at >= 0
    prev_t = np.where(has_prev, t[np.maximum(prev_at, 0)], 0)
    new_occasion = purchase & (~has_prev | (t > prev_t))
    new_month = purchase & (~has_prev | (month != month[np.maximum(prev_at, 0)]))
    # `month` is year·12 + month, so month % 12 is the calendar month with December as 0.
    in_q4 = purchase & np.isin(month % 12, [m % 12 for m in Q4_MONTHS])
    is_gap = purchase & has_prev & (t > prev_t)
    gap = np.where(is_gap, t - prev_t, 0)
    # Gaps are summed shifted by the customer's first gap (a sample of the same spread), so the
    # variance formula does not cancel catastrophically; all-equal gaps give exactly 0.
    first_gap_at = segments.last_where(is_gap & (segments.running_sum(is_gap) == 1))
    gap_dev = np.where(is_gap, gap - gap[np.maximum(first_gap_at, 0)], 0)
    amounts = {
        "c_net": money,
        "c_gross": np.where(purchase, money, 0),
        "c_cancelled": np.where(purchase, 0, -money),
        "c_q4_gross": np.where(in_q4, money, 0),
    }
    frame = base.select("cid", *KEY, "t").with_columns(
        first_event=pl.Series(t[segments.first_of_row]),
        first_purchase=_nullable(t, first_purchase_at),
        last_purchase=_nullable(t, last_purchase_at),
        c_purchases=pl.Series(c_purchases),
        **{name: pl.Series(segments.running_sum(x)) for name, x in amounts.items()},
        **_exact_money_totals(segments, money, amounts),
        c_products=pl.Series(segments.running_sum(column("new_products").to_numpy())),
        c_months=pl.Series(segments.running_sum(new_month)),
        c_occasions=pl.Series(segments.running_sum(new_occasion)),
        c_gap_dev_us=pl.Series(segments.running_sum(gap_dev)),
        # Float sums run within the customer (`over`), so one customer alone gives the same bits
        # as among millions; a whole-column sum minus an offset would not.
        c_items=pl.when(pl.Series(purchase)).then(column("items")).otherwise(0.0),
        # Times the reciprocal, as polars divides by a literal (and running.py): the same bits.
        c_gap_dev2=pl.Series(np.where(is_gap, (gap_dev * (1 / DAY_US)) ** 2, 0.0)),
    )
    # Orders sharing an instant are all in or all out of any window: keep their last row.
    last_of_instant = np.ones(len(t), dtype=bool)
    last_of_instant[:-1] = (t[1:] != t[:-1]) | start[1:]
    return (
        frame.lazy()
        .with_columns(pl.col("c_items", "c_gap_dev2").cum_sum().over("cid"))
        .filter(pl.Series(last_of_instant))
        .select(
            "cid",
            *KEY,
            "t",
            "first_event",
            "first_purchase",
            "last_purchase",
            *(c for c in _TOTALS),
            *(c for c in frame.columns if c == _BIG or c.endswith(_PARTS)),
        )
        .collect()
    )


# Flags the rows of customers whose money totals are also kept in exact parts (see below).
_BIG = "big_money"
_PARTS = ("_hi", "_lo")


def _exact_money_totals(
    segments: _Segments, money: np.ndarray, amounts: dict[str, np.ndarray]
) -> dict[str, pl.Series]:
    """For customers whose money may leave the exact range (`EXACT_MONEY_LIMIT`): each money
    running total in a high and a low int64 part, whose sums cannot wrap (an order is < 2**60,
    so a high part is < 2**28); nothing (no extra columns) when no customer needs them."""
    if not len(money):
        return {}
    # A float sum of |money| per customer bounds every total and difference of theirs.
    bound = np.add.reduceat(np.abs(money).astype(np.float64), segments.first)
    big = bound >= EXACT_MONEY_LIMIT
    if not big.any():
        return {}
    parts = {_BIG: pl.Series(np.repeat(big, segments.lengths))}
    for name, x in amounts.items():
        parts[f"{name}_hi"] = pl.Series(segments.running_sum(x >> _LOW_BITS))
        parts[f"{name}_lo"] = pl.Series(segments.running_sum(x & ((1 << _LOW_BITS) - 1)))
    return parts


def _new_products(base: pl.DataFrame) -> pl.Series:
    """Per row: products its purchase is the customer's first (canonical order) to contain."""
    # Products as integer codes, so each (customer, product) is one 64-bit key: hashing those is
    # far cheaper than string pairs. Strings get categories private to this call (freed with it).
    product = pl.col("product")
    if base.schema["products"] != CATEGORICAL_PRODUCTS:
        product = product.cast(pl.Categorical(pl.Categories.random()))
    code = product.to_physical()
    first_rows = (
        base.lazy()
        .filter(_PURCHASE)
        .select("cid", "row", product=pl.col("products"))
        .explode("product")
        .drop_nulls("product")
        .select("row", key=pl.col("cid").cast(pl.UInt64) * (1 << 32) + code.cast(pl.UInt64))
        .group_by("key")
        .agg(pl.col("row").min())
        .collect()
    )
    counts = np.bincount(first_rows.get_column("row").to_numpy(), minlength=base.height)
    return pl.Series("new_products", counts, dtype=pl.Int64)


_TOTALS = (
    "c_purchases",
    "c_net",
    "c_gross",
    "c_cancelled",
    "c_q4_gross",
    "c_items",
    "c_products",
    "c_months",
    "c_occasions",
    "c_gap_dev_us",
    "c_gap_dev2",
)
# What an outcome (a window after the clock) is measured from.
_OUTCOME_TOTALS = ("c_purchases", "c_net")


def _month(moment: pl.Expr) -> pl.Expr:
    return moment.dt.year().cast(pl.Int64) * 12 + moment.dt.month().cast(pl.Int64)


def _state_at(
    timeline: pl.DataFrame, clocks: pl.LazyFrame, outcome_days: Sequence[int] = ()
) -> pl.LazyFrame:
    """Each customer's running totals at each clock, at the window edges before it, and at
    `outcome_days` after it. Rows are sorted by customer (key order), then clock."""
    firsts = timeline.filter(pl.col("cid").ne_missing(pl.col("cid").shift(1)))
    probes = (
        firsts.lazy()
        .select("cid", *KEY, since_us="t")
        .join(clocks, on=clock_keys(clocks))
        .filter(pl.col("since_us") <= pl.col("cutoff_us"))
        .select("cid", *KEY, "cutoff_us")
        .sort("cid", "cutoff_us")
        .collect()
    )
    look_up = _LookUp(timeline, probes, max((HISTORY_DAYS, *outcome_days)))
    found = [look_up(0, [c for c in timeline.columns if c not in ("cid", *KEY)], "", None)]
    # The exact parts of money totals, where a customer needs them, go wherever the totals go.
    with_parts = {
        c: [c, *(f"{c}{p}" for p in _PARTS if f"{c}{p}" in timeline.columns)]
        for c in (*_EDGE_TOTALS, *_OUTCOME_TOTALS)
    }
    for days in _EDGES_DAYS:
        edges = [part for c in _EDGE_TOTALS for part in with_parts[c]]
        found.append(look_up(-days, edges, f"_{days}d", 0))
    for days in outcome_days:
        outcomes = [part for c in _OUTCOME_TOTALS for part in with_parts[c]]
        found.append(look_up(days, outcomes, f"_next_{days}d", None))
    return pl.concat([probes, *found], how="horizontal").lazy()


class _LookUp:
    """The timeline row each probe sees at an offset from its clock (the last at or before).

    An as-of join on one int64 key, customer × span + time, so that the key is sorted across
    customers and the join needs no `by` group (about 2.5x faster); a probe that lands before
    its customer's first row finds another customer's row and is treated as no row. When that
    key could overflow (very many customers over a very long span), a grouped join is used.
    """

    def __init__(self, timeline: pl.DataFrame, probes: pl.DataFrame, reach_days: int) -> None:
        self.probes = probes
        clocks = probes.get_column("cutoff_us")
        times = timeline.get_column("t")
        reach = reach_days * DAY_US
        if probes.is_empty():
            low, high = 0, 0
        else:
            low = min(_int(times.min()), _int(clocks.min()) - reach)
            high = max(_int(times.max()), _int(clocks.max()) + reach)
        self.low, self.span = low, high - low + 1
        customers = _int(timeline.get_column("cid").max() or 0)
        self.keyed = (customers + 1) * self.span < _KEY_LIMIT
        self.timeline = (
            timeline.with_columns(key=self._key(pl.col("t"))).set_sorted("key")
            if self.keyed
            else timeline
        )

    def _key(self, moment: pl.Expr) -> pl.Expr:
        return pl.col("cid").cast(pl.Int64) * self.span + (moment - self.low)

    def __call__(
        self, days: int, columns: Sequence[str], suffix: str, missing: int | None
    ) -> pl.DataFrame:
        moment = pl.col("cutoff_us") + days * DAY_US
        if self.keyed:
            joined = (
                self.probes.lazy()
                .select("cid", key=self._key(moment))
                .set_sorted("key")
                .join_asof(
                    self.timeline.lazy().select("key", pl.col("cid").alias("found"), *columns),
                    on="key",
                    strategy="backward",
                    check_sortedness=False,
                )
            )
        else:
            joined = (
                self.probes.lazy()
                .select("cid", at=moment)
                .join_asof(
                    self.timeline.lazy().select(
                        "cid", pl.col("t").alias("found_at"), *columns, pl.col("cid").alias("found")
                    ),
                    left_on="at",
                    right_on="found_at",
                    by="cid",
                    strategy="backward",
                    check_sortedness=False,
                )
            )
        hit = pl.col("found").eq_missing(pl.col("cid"))
        result = joined.select(
            "cid", *(pl.when(hit).then(pl.col(c)).alias(f"{c}{suffix}") for c in columns)
        ).collect()
        # An as-of join keeps the left rows in order: the columns line up with the probes'.
        if not result.get_column("cid").equals(self.probes.get_column("cid")):
            raise AssertionError("as-of join did not keep the probes' order")
        found = result.drop("cid")
        return found if missing is None else found.fill_null(missing)


# --- features from the state --------------------------------------------------------------------


def _history_exprs() -> dict[str, pl.Expr]:
    """Features fixed by the orders up to the clock; they move only when an order arrives."""
    purchases = pl.col("c_purchases")
    has_purchase = purchases > 0
    occasions = pl.col("c_occasions")
    gaps = (occasions - 1).cast(pl.Float64)
    gross, cancelled = pl.col("c_gross"), pl.col("c_cancelled").clip(lower_bound=0)
    monetary = pl.col("c_net") / MONEY_SCALE
    gap_mean = (pl.col("last_purchase") - pl.col("first_purchase")) / gaps / DAY_US
    dev_mean = pl.col("c_gap_dev_us") / gaps / DAY_US
    gap_var = (pl.col("c_gap_dev2") / gaps - dev_mean.pow(2)).clip(lower_bound=0.0)
    return {
        "frequency": purchases,
        "monetary": monetary,
        "avg_order_value": pl.when(has_purchase).then(monetary / purchases).otherwise(0.0),
        "avg_items_per_order": pl.when(has_purchase)
        .then(pl.col("c_items") / purchases)
        .otherwise(0.0),
        "gap_mean_days": pl.when(occasions >= 2).then(gap_mean).otherwise(0.0),
        "gap_std_days": pl.when(occasions >= 2).then(gap_var.sqrt()).otherwise(0.0),
        "unique_products": pl.col("c_products"),
        "cancellation_rate": pl.when(gross > 0)
        .then((cancelled / gross).clip(upper_bound=1.0))
        .when(cancelled > 0)
        .then(1.0)
        .otherwise(0.0),
        "active_months": pl.col("c_months"),
        "q4_spend_share": pl.when(gross > 0)
        .then((pl.col("c_q4_gross") / gross).clip(0.0, 1.0))
        .otherwise(0.0),
    }


def _clock_exprs() -> dict[str, pl.Expr]:
    """Features that move with the clock; need `gap_mean_days` computed already."""
    has_purchase = pl.col("c_purchases") > 0
    clock = pl.col("cutoff_us")
    # Without purchases the customer's events (cancellations) stand in for purchases.
    last = pl.when(has_purchase).then(pl.col("last_purchase")).otherwise(pl.col("t"))
    first = pl.when(has_purchase).then(pl.col("first_purchase")).otherwise(pl.col("first_event"))
    recency = (clock - last) / DAY_US
    exprs = {"recency_days": recency, "tenure_days": (clock - first) / DAY_US}
    for days in WINDOWS_DAYS:
        exprs[f"orders_{days}d"] = pl.col("c_purchases") - pl.col(f"c_purchases_{days}d")
        exprs[f"spend_{days}d"] = (pl.col("c_net") - pl.col(f"c_net_{days}d")) / MONEY_SCALE
    recent = pl.col("c_gross") - pl.col(f"c_gross_{TREND_WINDOW_DAYS}d")
    before = pl.col(f"c_gross_{TREND_WINDOW_DAYS}d") - pl.col(f"c_gross_{2 * TREND_WINDOW_DAYS}d")
    exprs["spend_trend"] = (
        pl.when(recent + before > 0).then((recent - before) / (recent + before)).otherwise(0.0)
    )
    gap_mean = pl.col("gap_mean_days")
    exprs["days_past_expected_order"] = recency - gap_mean
    exprs["recency_gap_ratio"] = recency / pl.max_horizontal(gap_mean, pl.lit(MIN_GAP_DAYS))
    exprs["orders_season_last_year"] = pl.col(f"c_purchases_{YEAR_DAYS - SEASON_DAYS}d") - pl.col(
        f"c_purchases_{YEAR_DAYS}d"
    )
    month = pl.from_epoch(clock, "us").dt.month()
    for i, name in enumerate(("season_sin", "season_cos")):
        table = {m: point[i] for m, point in SEASON_BY_MONTH.items()}
        exprs[name] = month.replace_strict(table, return_dtype=pl.Float64)
    return exprs


def _with_features(state: pl.LazyFrame) -> pl.LazyFrame:
    return state.with_columns(**_history_exprs()).with_columns(**_clock_exprs())


def _exact_money(state: pl.LazyFrame, outcome_days: Sequence[int] = ()) -> pl.LazyFrame:
    """The money features of customers with exact money parts (`_exact_money_totals`), redone
    from Python integers with `running.py`'s arithmetic: the vectorized values there may have
    wrapped (int64) or rounded an operand of a ratio (float64). Only those rows are touched."""
    if _BIG not in state.collect_schema().names():
        return state  # the usual case: every sum is exact already
    frame = state.collect()
    rows = np.flatnonzero(frame.get_column(_BIG).fill_null(False).to_numpy())
    if not len(rows):
        return frame.lazy()
    some = frame[rows]

    def exact(total: str, suffix: str = "") -> list[int | None]:
        high, low = (some.get_column(f"{total}{part}{suffix}").to_list() for part in _PARTS)
        return [
            None if h is None else (h << _LOW_BITS) + lo for h, lo in zip(high, low, strict=True)
        ]

    def found(total: str, suffix: str = "") -> list[int]:
        """A total that is never null: at the clock, or at an edge (0 when before the first)."""
        values = exact(total, suffix)
        if any(v is None for v in values):
            raise AssertionError(f"{total}{suffix} is null")
        return cast(list[int], values)

    net, gross = found("c_net"), found("c_gross")
    purchases = some.get_column("c_purchases").to_list()
    monetary = [n * _PER_UNIT for n in net]
    values: dict[str, list[float | None]] = {
        "monetary": list(monetary),
        "avg_order_value": [
            m / p if p > 0 else 0.0 for m, p in zip(monetary, purchases, strict=True)
        ],
        "cancellation_rate": [
            min(max(c, 0) / g, 1.0) if g > 0 else (1.0 if c > 0 else 0.0)
            for c, g in zip(found("c_cancelled"), gross, strict=True)
        ],
        "q4_spend_share": [
            min(max(q / g, 0.0), 1.0) if g > 0 else 0.0
            for q, g in zip(found("c_q4_gross"), gross, strict=True)
        ],
        "spend_trend": [
            _trend(g - half, half - whole)
            for g, half, whole in zip(
                gross,
                found("c_gross", f"_{TREND_WINDOW_DAYS}d"),
                found("c_gross", f"_{2 * TREND_WINDOW_DAYS}d"),
                strict=True,
            )
        ],
    }
    for days in WINDOWS_DAYS:
        values[f"spend_{days}d"] = [
            (n - before) * _PER_UNIT
            for n, before in zip(net, found("c_net", f"_{days}d"), strict=True)
        ]
    for days in outcome_days:
        values[f"spend_next_{days}d"] = [
            None if later is None else (later - n) * _PER_UNIT
            for n, later in zip(net, exact("c_net", f"_next_{days}d"), strict=True)
        ]
    fixed = []
    for name, column in values.items():
        if name in frame.columns:
            fixed.append(frame.get_column(name).cast(pl.Float64).scatter(rows, column))
    return frame.with_columns(fixed).lazy()


def _trend(recent: int, before: int) -> float:
    return (recent - before) / (recent + before) if recent + before > 0 else 0.0


def _finish(
    state: pl.LazyFrame, clock_name: str, names: Sequence[str] = FEATURE_NAMES
) -> pl.DataFrame:
    # `_state_at` rows are in key order, then clock: no sort needed.
    return state.select(
        *KEY,
        pl.from_epoch("cutoff_us", "us").dt.replace_time_zone("UTC").alias(clock_name),
        *(pl.col(n).cast(pl.Float64) for n in names),
    ).collect()
