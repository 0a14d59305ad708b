"""The columnar feature store and the clock move, on real orders."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retention_scoring.scoring import at_clock
from retention_scoring.store import FeatureStore, to_microseconds
from retention_shared.features import FEATURE_NAMES, compute_features
from tests.support.scoring_service import feature_events
from tests.support.uci_orders import TEST_DATA, load_orders


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="acme")


def test_vectors_moved_to_the_tenant_clock_equal_the_offline_features(orders: pl.DataFrame) -> None:
    store = FeatureStore()
    store.apply((event, 0) for event in feature_events(orders))
    table = store.table("acme")
    assert table is not None and len(table) == orders["customer_id"].n_unique()
    clock = orders["occurred_at"].max()
    assert table.clock_us == to_microseconds(clock)
    moved = at_clock(table.features_frame(), table.history_frame(), table.clock_us)
    offline = compute_features(orders, clock)
    moved, offline = moved.sort("customer_id"), offline.sort("customer_id")
    assert moved["as_of"].to_list() == offline["as_of"].to_list()
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(moved[name], offline[name], rtol=1e-9, atol=1e-9, err_msg=name)


def test_an_update_replaces_the_row_and_its_history(orders: pl.DataFrame) -> None:
    """Replaying every customer's vectors at each of their orders leaves exactly the last ones."""
    store = FeatureStore()
    cut = orders.sort("occurred_at")
    halves = [cut.head(cut.height // 2), cut]
    generations = []
    for part in halves:
        store.apply((event, 1) for event in feature_events(part))
        generations.append(store.table("acme").generation)
    table = store.table("acme")
    only_last = FeatureStore()
    only_last.apply((event, 1) for event in feature_events(cut))
    expected = only_last.table("acme")
    assert generations[0] < generations[1]
    assert sorted(table.ids) == sorted(expected.ids)
    order = [table.index[c] for c in expected.ids]
    np.testing.assert_array_equal(table.values[order], expected.values[: len(expected)])
    history = table.history_frame().sort("customer_id", "occurred_at", "kind", "total")
    want = expected.history_frame().sort("customer_id", "occurred_at", "kind", "total")
    assert history.equals(want)
    one = table.rows_of([expected.ids[3]])
    assert table.history_frame(one)["customer_id"].unique().to_list() == [expected.ids[3]]


def test_tenants_are_kept_apart(orders: pl.DataFrame) -> None:
    store = FeatureStore()
    other = orders.with_columns(tenant_id=pl.lit("other")).head(50)
    touched = store.apply((e, 0) for e in feature_events(pl.concat([orders, other])))
    assert set(touched) == {"acme", "other"}
    assert len(store.table("other")) == other["customer_id"].n_unique()
    assert store.table("nobody") is None


def test_removing_customers_leaves_the_table_of_the_others(orders: pl.DataFrame) -> None:
    """An erasure: the rest of the table (rows, vectors, histories) equals one built without the
    removed customers, through enough removals to compact the histories."""
    events = feature_events(orders)
    store = FeatureStore()
    store.apply((event, 2) for event in events)
    ids = sorted({event.customer_id for event in events})
    # Nine in ten of them (so many dead history entries that they are swept) and the last.
    gone = (set(ids) - set(ids[::10])) | {ids[-1]}
    entries, generation = store.table("acme")._history.size, store.table("acme").generation
    assert all(store.remove("acme", customer) for customer in sorted(gone))
    assert store.table("acme")._history.size < entries  # compacted on the way
    assert not store.remove("acme", ids[1])  # removed already
    assert not store.remove("other", ids[0])  # another tenant's customer is never touched
    table = store.table("acme")
    assert table.generation > generation
    expected = FeatureStore()
    expected.apply((event, 2) for event in events if event.customer_id not in gone)
    want = expected.table("acme")
    assert sorted(table.ids) == sorted(want.ids) and len(table) == len(want)
    assert set(table.index) == set(want.index) and gone.isdisjoint(table.index)
    order = [table.index[c] for c in want.ids]
    np.testing.assert_array_equal(table.values[order], want.values[: len(want)])
    np.testing.assert_array_equal(table.as_of_us[order], want.as_of_us[: len(want)])
    history = table.history_frame().sort("customer_id", "occurred_at", "kind", "total")
    assert history.equals(want.history_frame().sort("customer_id", "occurred_at", "kind", "total"))
    one = table.rows_of([want.ids[0]])
    assert table.history_frame(one).equals(want.history_frame(want.rows_of([want.ids[0]])))
