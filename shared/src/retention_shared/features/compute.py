"""The one feature definition: per-customer features from an orders frame, as of a clock.

How it stays exact and point-in-time correct at any scale:

- Orders are put in one canonical order per customer, `(occurred_at, kind, order_id)`, and every
  quantity is a running total over that order (`cum_sum` within the customer). The state as of T
  is the running total at the customer's last order at or before T, found with an as-of join, so
  nothing after T can reach a feature at T, and many cutoffs cost one pass plus one join each.
- Money is summed in integer micro-units (1e-6 of the currency), so sums are exact: they do not
  depend on row order, on which other customers are in the frame, or on whether a window total is
  a difference of two running totals. Times are integer microseconds; days are `us / 86_400e6`.
- The only float running total (squared gap deviations) is a sequential sum within one customer
  in canonical order, so it is bit-identical for one customer alone or among millions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from retention_shared.features.orders import HISTORY_COLUMNS, ORDER_SCHEMA, conform_orders
from retention_shared.features.registry import (
    CLOCK_FEATURES,
    DAY_SECONDS,
    FEATURE_NAMES,
    MIN_GAP_DAYS,
    TREND_WINDOW_DAYS,
    WINDOWS_DAYS,
)

KEY = ["tenant_id", "customer_id"]
DAY_US = DAY_SECONDS * 1_000_000
MONEY_SCALE = 1_000_000
# Edges (days before the clock) at which running totals are looked up for window features.
_EDGES_DAYS = tuple(sorted({*WINDOWS_DAYS, TREND_WINDOW_DAYS, 2 * TREND_WINDOW_DAYS}))
_EDGE_TOTALS = ("c_purchases", "c_net", "c_gross")
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
    return _finish(_with_features(state), "as_of")


def compute_features_at_cutoffs(orders: Orders, cutoffs: Cutoffs) -> pl.DataFrame:
    """Features of every customer at every cutoff: the same values as `compute_features` per cutoff.

    `cutoffs` is a sequence or Series of aware datetimes applying to every tenant, or a frame with
    `cutoff` and optionally `tenant_id`. Returns `tenant_id, customer_id, cutoff` and the
    features; a customer appears at a cutoff only if they have an order at or before it.
    """
    frame = conform_orders(orders)
    clocks = _cutoff_clocks(frame, cutoffs)
    state = _state_at(_timeline(frame), clocks)
    return _finish(_with_features(state), "cutoff")


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
    moved = _finish(state.with_columns(**_clock_exprs()), "as_of", names=CLOCK_FEATURES)
    kept = features.drop("as_of", *CLOCK_FEATURES)
    columns = [*KEY, "as_of", *[n for n in features.columns if n not in (*KEY, "as_of")]]
    return moved.join(kept, on=KEY, how="inner").select(columns).sort(KEY)


# --- clocks ---------------------------------------------------------------------------------


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


def _timeline(orders: pl.LazyFrame) -> pl.LazyFrame:
    """Running totals per customer after each order; one row per (customer, instant), the last."""
    t = pl.col("t")
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
        # An integer per customer (rows are sorted by customer): cheaper to group by than strings.
        .with_columns(
            cid=(pl.col("tenant_id").ne_missing(pl.col("tenant_id").shift(1)))
            .or_(pl.col("customer_id").ne_missing(pl.col("customer_id").shift(1)))
            .cum_sum()
        )
    )
    # A product counts at the first purchase (in canonical order) that contains it.
    first_sightings = (
        base.filter(_PURCHASE)
        .select("cid", "row", product=pl.col("products"))
        .explode("product")
        .drop_nulls("product")
        .group_by("cid", "product")
        .agg(pl.col("row").min())
        .group_by("row")
        .agg(new_products=pl.len().cast(pl.Int64))
    )
    purchase_t = pl.when(_PURCHASE).then(t)
    prev = pl.col("prev_purchase")
    gap = pl.col("gap_us")
    return (
        base.join(first_sightings, on="row", how="left", maintain_order="left")
        .with_columns(
            last_purchase=purchase_t.forward_fill().over("cid"),
            first_purchase=purchase_t.cum_min().forward_fill().over("cid"),
            first_event=t.first().over("cid"),
        )
        # The latest purchase strictly before this row: a purchase at a new instant starts a new
        # purchase occasion, and the gap to it is one inter-purchase gap.
        .with_columns(prev_purchase=pl.col("last_purchase").shift(1).over("cid"))
        .with_columns(
            new_occasion=_PURCHASE & (prev.is_null() | (t > prev)),
            new_month=_PURCHASE
            & (prev.is_null() | (pl.col("month") != _month(pl.from_epoch(prev, "us")))),
            gap_us=pl.when(_PURCHASE & prev.is_not_null() & (t > prev)).then(t - prev),
        )
        # Gaps are summed shifted by the customer's first gap (a sample of the same spread), so
        # the variance formula does not cancel catastrophically; all-equal gaps give exactly 0.
        .with_columns(gap_dev_us=gap - gap.drop_nulls().first().over("cid"))
        .with_columns(
            c_purchases=_PURCHASE.cast(pl.Int64).cum_sum().over("cid"),
            c_net=pl.col("money").cum_sum().over("cid"),
            c_gross=pl.when(_PURCHASE).then(pl.col("money")).otherwise(0).cum_sum().over("cid"),
            c_cancelled=pl.when(_PURCHASE)
            .then(0)
            .otherwise(-pl.col("money"))
            .cum_sum()
            .over("cid"),
            c_items=pl.when(_PURCHASE).then(pl.col("items")).otherwise(0.0).cum_sum().over("cid"),
            c_products=pl.col("new_products").fill_null(0).cum_sum().over("cid"),
            c_months=pl.col("new_month").cast(pl.Int64).cum_sum().over("cid"),
            c_occasions=pl.col("new_occasion").cast(pl.Int64).cum_sum().over("cid"),
            c_gap_dev_us=pl.col("gap_dev_us").fill_null(0).cum_sum().over("cid"),
            c_gap_dev2=(pl.col("gap_dev_us") / DAY_US).pow(2).fill_null(0.0).cum_sum().over("cid"),
        )
        # Orders sharing an instant are all in or all out of any window: keep their last row.
        .filter(t.shift(-1).over("cid").ne_missing(t))
        .select(
            "cid",
            *KEY,
            "t",
            "first_event",
            "first_purchase",
            "last_purchase",
            *(c for c in _TOTALS),
        )
    )


_TOTALS = (
    "c_purchases",
    "c_net",
    "c_gross",
    "c_cancelled",
    "c_items",
    "c_products",
    "c_months",
    "c_occasions",
    "c_gap_dev_us",
    "c_gap_dev2",
)


def _month(moment: pl.Expr) -> pl.Expr:
    return moment.dt.year().cast(pl.Int64) * 12 + moment.dt.month().cast(pl.Int64)


def _state_at(timeline: pl.LazyFrame, clocks: pl.LazyFrame) -> pl.LazyFrame:
    """Each customer's running totals at each clock, and at the window edges before it."""
    # Materialized once, sorted by customer then time: every look-up below reads it.
    timeline = timeline.collect().lazy()
    customers = timeline.group_by("cid").agg(
        *(pl.col(k).first() for k in KEY), since_us=pl.col("t").min()
    )
    probes = (
        customers.join(clocks, on=clock_keys(clocks))
        .filter(pl.col("since_us") <= pl.col("cutoff_us"))
        .select("cid", *KEY, "cutoff_us")
        .sort("cid", "cutoff_us")
        .collect()
    )
    # One as-of join per look-up time, all on the same left rows in the same order (an as-of join
    # keeps the left order), so the results line up column by column without a key join.
    found = [_look_up(probes, timeline, 0, timeline.collect_schema().names())]
    edge_totals = timeline.select("cid", "t", *_EDGE_TOTALS)
    for days in _EDGES_DAYS:
        at_edge = _look_up(probes, edge_totals, days, _EDGE_TOTALS)
        found.append(
            at_edge.select(pl.col(c).fill_null(0).alias(f"{c}_{days}d") for c in _EDGE_TOTALS)
        )
    return pl.concat([probes, *found], how="horizontal").lazy()


def _look_up(
    probes: pl.DataFrame, timeline: pl.LazyFrame, days: int, columns: Sequence[str]
) -> pl.DataFrame:
    """The timeline row each probe sees at `days` before its clock (the last one at or before)."""
    wanted = [c for c in columns if c not in ("cid", *KEY)]
    joined = (
        probes.lazy()
        .select("cid", "cutoff_us", probe_us=pl.col("cutoff_us") - days * DAY_US)
        .join_asof(
            timeline.select("cid", "t", *(c for c in wanted if c != "t")),
            left_on="probe_us",
            right_on="t",
            by="cid",
            strategy="backward",
            # Both sides are sorted by time within each customer, which is what `by` needs.
            check_sortedness=False,
            coalesce=False,
        )
        .collect()
    )
    if not joined.get_column("cid").equals(probes.get_column("cid")) or not joined.get_column(
        "cutoff_us"
    ).equals(probes.get_column("cutoff_us")):
        raise AssertionError("as-of join did not keep the probes' order")
    return joined.select(wanted)


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
    return exprs


def _with_features(state: pl.LazyFrame) -> pl.LazyFrame:
    return state.with_columns(**_history_exprs()).with_columns(**_clock_exprs())


def _finish(
    state: pl.LazyFrame, clock_name: str, names: Sequence[str] = FEATURE_NAMES
) -> pl.DataFrame:
    return (
        state.select(
            *KEY,
            pl.from_epoch("cutoff_us", "us").dt.replace_time_zone("UTC").alias(clock_name),
            *(pl.col(n).cast(pl.Float64) for n in names),
        )
        .sort([*KEY, clock_name])
        .collect()
    )
