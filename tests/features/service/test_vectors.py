"""The features service's CustomerFeatures payloads (polars-encoded, and string-built from the
running totals) equal the contract's own objects."""

from datetime import UTC, datetime

import polars as pl

from retention_features.vectors import batch_time, clock_frame, feature_payloads, running_payload
from retention_shared.events import CustomerFeatures, decode_event
from retention_shared.features import FEATURE_NAMES, compute_features, history_summaries
from retention_shared.features.running import RunningCustomer, running_orders
from tests.support.uci_orders import TEST_DATA, load_orders


def test_payloads_decode_to_the_vectors_and_histories_of_the_definition() -> None:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    customers = orders.select("tenant_id", "customer_id").unique().sort("customer_id").head(120)
    history = orders.join(customers, on=["tenant_id", "customer_id"])
    # Different clocks per customer, some before a customer's later orders (point in time).
    moments = [datetime(2010, 6, 1, tzinfo=UTC), datetime(2011, 12, 31, tzinfo=UTC)]
    as_of = {
        (t, c): int(moments[i % 2].timestamp() * 1_000_000)
        for i, (t, c) in enumerate(customers.iter_rows())
    }
    offsets = {key: (3, i) for i, key in enumerate(as_of) if i % 3}
    payloads = dict(feature_payloads(history, as_of, offsets))

    clocks = clock_frame(as_of)
    expected_vectors = compute_features(history, clocks)
    expected_histories = history_summaries(history, clocks)
    assert (
        len(payloads) == expected_vectors.height > 50
    )  # customers without orders by then drop out
    for row in expected_vectors.iter_rows(named=True):
        key = (row["tenant_id"], row["customer_id"])
        decoded = decode_event(CustomerFeatures, payloads[f"{key[0]}:{key[1]}".encode()])
        assert decoded.as_of == row["as_of"]
        assert decoded.features == {name: row[name] for name in FEATURE_NAMES}
        assert decoded.history == expected_histories[key]
        source = offsets.get(key)
        assert (
            None if decoded.source is None else (decoded.source.partition, decoded.source.offset)
        ) == source


def test_customers_with_only_cancellations_have_no_purchase_times() -> None:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet")
    cancellers = (
        orders.group_by("tenant_id", "customer_id")
        .agg((pl.col("kind") == "purchase").sum().alias("purchases"))
        .filter(pl.col("purchases") == 0)
    )
    assert cancellers.height > 0
    key = tuple(cancellers.row(0)[:2])
    history = orders.join(cancellers.head(1).drop("purchases"), on=["tenant_id", "customer_id"])
    ((_, payload),) = feature_payloads(history, {key: 1_400_000_000_000_000}, {})
    decoded = decode_event(CustomerFeatures, payload)
    assert decoded.history.first_purchase_at is None and decoded.history.purchase_orders == 0
    assert decoded.history.cancellations == history.height


def test_running_payloads_are_the_documents_feature_payloads_writes() -> None:
    """The consumer's hot path (running totals, string-built JSON) and the vectorized path give
    the same `CustomerFeatures` for the same customers and clocks."""
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    customers: dict[tuple[str, str], RunningCustomer] = {}
    for tenant, customer, order in running_orders(orders):
        customers.setdefault((tenant, customer), RunningCustomer()).add(order)
    last = {key: customer.last_event for key, customer in customers.items()}
    # Each customer at their last order, or a year and a bit later (windows and recency move).
    as_of = {key: t + (i % 2) * 400 * 86_400_000_000 for i, (key, t) in enumerate(last.items())}
    sources = {key: (1, i) for i, key in enumerate(as_of) if i % 3}
    expected = dict(feature_payloads(orders, as_of, sources))
    computed_at = batch_time()
    assert len(expected) == len(customers) > 100
    for key, customer in customers.items():
        _, payload = running_payload(
            *key, customer.vector(as_of[key]), sources.get(key), computed_at
        )
        got = decode_event(CustomerFeatures, payload).model_dump(exclude={"computed_at"})
        want = decode_event(CustomerFeatures, expected[f"{key[0]}:{key[1]}".encode()])
        assert got == want.model_dump(exclude={"computed_at"}), key
