"""Moving clock features to a later clock from the compact history (what the scorer does), and
building the orders frame from `OrderEvent`s (what the features service does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_shared.events import (
    CustomerFeatures,
    OrderEvent,
    OrderKind,
    OrderLine,
    decode_event,
    order_event_id,
)
from retention_shared.features import (
    CLOCK_FEATURES,
    FEATURE_NAMES,
    HISTORY_DAYS,
    ORDER_SCHEMA,
    compact_history,
    compute_features,
    features_frame,
    history_frame,
    history_summaries,
    orders_frame,
    recompute_clock_features,
)

# Late in the II slice (from 2009-12), so part of every long history is older than a year.
T = datetime(2011, 2, 1, tzinfo=UTC)
LATER = [T + timedelta(days=d, hours=5) for d in (1, 45, 100, 200, 400)]


def quiet_customers(orders: pl.DataFrame, start: datetime, end: datetime) -> pl.Series:
    """Customers with an order by `start` and none in (start, end]: their vectors only age."""
    active = orders.filter(pl.col("occurred_at").is_between(start, end, closed="right"))
    return (
        orders.filter(pl.col("occurred_at") <= start)
        .filter(~pl.col("customer_id").is_in(active["customer_id"].implode()))
        .get_column("customer_id")
        .unique()
    )


@pytest.mark.parametrize("later", LATER)
def test_recomputed_clock_features_equal_a_full_recompute(
    orders_ii: pl.DataFrame, later: datetime
) -> None:
    quiet = quiet_customers(orders_ii, T, later)
    assert quiet.len() > 100
    orders = orders_ii.filter(pl.col("customer_id").is_in(quiet.implode()))
    at_t = compute_features(orders, T)
    history = compact_history(orders, T)
    assert history.height < orders.filter(pl.col("occurred_at") <= T).height

    moved = recompute_clock_features(at_t, history, later)
    assert_frame_equal(moved, compute_features(orders.filter(pl.col("occurred_at") <= T), later))
    # And they did move: without recomputing, the scorer would serve stale windows.
    changed = [n for n in CLOCK_FEATURES if not moved[n].equals(at_t[n])]
    assert "recency_days" in changed


def test_compact_history_is_the_longest_window_plus_the_ends(orders_ii: pl.DataFrame) -> None:
    as_of = datetime(2011, 6, 1, tzinfo=UTC)
    start = as_of - timedelta(days=HISTORY_DAYS)
    history = compact_history(orders_ii, as_of)
    assert history.columns == ["tenant_id", "customer_id", "occurred_at", "kind", "total"]

    expected = set()
    by_customer: dict[str, list[dict]] = {}
    for row in orders_ii.filter(pl.col("occurred_at") <= as_of).iter_rows(named=True):
        by_customer.setdefault(row["customer_id"], []).append(row)
    for rows in by_customer.values():
        times = [r["occurred_at"] for r in rows]
        bought = [r["occurred_at"] for r in rows if r["kind"] == "purchase"]
        ends = {min(times), max(times), *((min(bought), max(bought)) if bought else ())}
        expected |= {
            (r["customer_id"], r["occurred_at"], r["kind"], r["total"])
            for r in rows
            if r["occurred_at"] > start or r["occurred_at"] in ends
        }
    kept = set(history.select("customer_id", "occurred_at", "kind", "total").iter_rows())
    assert kept == expected
    assert history.filter(pl.col("occurred_at") <= start).height > 0  # old ends are kept
    assert history.height < orders_ii.filter(pl.col("occurred_at") <= as_of).height


def test_through_the_customer_features_event(orders_ii: pl.DataFrame) -> None:
    """Features service → CustomerFeatures JSON → scorer recompute, equal to a full recompute."""
    later = T + timedelta(days=60)
    quiet = quiet_customers(orders_ii, T, later)
    orders = orders_ii.filter(pl.col("customer_id").is_in(quiet.implode()))
    features = compute_features(orders, T)
    summaries = history_summaries(orders, T)
    events = [
        decode_event(
            CustomerFeatures,
            CustomerFeatures(
                tenant_id=row["tenant_id"],
                customer_id=row["customer_id"],
                as_of=row["as_of"],
                features={n: row[n] for n in FEATURE_NAMES},
                history=summaries[(row["tenant_id"], row["customer_id"])],
            ).to_bytes(),
        )
        for row in features.iter_rows(named=True)
    ]
    one = events[0].history
    assert one.purchase_orders + one.cancellations >= len({o.occurred_at for o in one.orders}) > 0
    moved = recompute_clock_features(features_frame(events), history_frame(events), later)
    assert_frame_equal(moved, compute_features(orders, later))


def test_recompute_refuses_an_earlier_clock_or_newer_orders(orders_i: pl.DataFrame) -> None:
    features = compute_features(orders_i, T)
    with pytest.raises(ValueError, match="earlier"):
        recompute_clock_features(features, compact_history(orders_i, T), T - timedelta(days=1))
    newer = compact_history(orders_i, T + timedelta(days=30))
    with pytest.raises(ValueError, match="after their features' as_of"):
        recompute_clock_features(features, newer, T + timedelta(days=30))


def test_orders_frame_from_order_events() -> None:
    def event(order: str, at: datetime, kind: OrderKind, lines: list[tuple[str, float, float]]):
        return OrderEvent(
            event_id=order_event_id("t", order, kind),
            tenant_id="t",
            order_id=order,
            customer_id="17850",
            occurred_at=at,
            kind=kind,
            lines=[OrderLine(product_id=p, quantity=q, unit_price=u) for p, q, u in lines],
            total=sum(q * u for _, q, u in lines),
            source="http",
        )

    at = datetime(2011, 1, 1, 9, tzinfo=UTC)
    events = [
        event(
            "536365",
            at,
            OrderKind.PURCHASE,
            [("85123A", 6, 2.55), ("71053", 6, 3.39), ("85123A", 2, 2.55)],
        ),
        event("C536379", at + timedelta(days=3), OrderKind.CANCELLATION, [("71053", -2, 3.39)]),
    ]
    orders = orders_frame(events)
    assert orders.schema == pl.Schema(ORDER_SCHEMA)
    assert orders["items"].to_list() == [14.0, 2.0]
    assert orders["products"].to_list() == [["71053", "85123A"], ["71053"]]
    row = compute_features(orders, at + timedelta(days=10)).row(0, named=True)
    assert row["frequency"] == 1.0 and row["unique_products"] == 2.0
    assert row["monetary"] == pytest.approx(8 * 2.55 + 6 * 3.39 - 2 * 3.39, abs=1e-9)
    assert row["cancellation_rate"] == pytest.approx(2 * 3.39 / (8 * 2.55 + 6 * 3.39), rel=1e-12)
    assert row["recency_days"] == 10.0


def test_compact_history_does_not_depend_on_input_order(orders_ii: pl.DataFrame) -> None:
    """Same-instant orders are common (several invoices per minute); replays must publish the
    same history whatever order the store returns them in."""
    as_of = datetime(2011, 12, 31, tzinfo=UTC)
    shuffled = orders_ii.sample(fraction=1.0, shuffle=True, seed=11)
    assert_frame_equal(compact_history(orders_ii, as_of), compact_history(shuffled, as_of))


def test_orders_from_event_columns_equal_orders_from_event_objects(tmp_path) -> None:
    """Ingest's event columns (and the lake's) become the same orders frame as the events do."""
    from retention_ingest.file_ingest import ingest_file
    from retention_ingest.order_events import order_event_payloads
    from retention_shared.events import OrderEvent, decode_event
    from retention_shared.features import orders_frame, orders_from_event_columns
    from tests.support.uci_orders import TEST_DATA

    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet", tenant_id="t", source="test", work_dir=tmp_path
    )
    events = result.events().collect()
    decoded = [decode_event(OrderEvent, p) for p in order_event_payloads(events)]
    key = ["customer_id", "order_id", "kind"]
    assert_frame_equal(orders_from_event_columns(events).sort(key), orders_frame(decoded).sort(key))
