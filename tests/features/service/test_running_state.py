"""The partition's in-memory running totals stay equal to a recompute from its SQLite file:
through duplicates, late orders, a rolled-back batch, reloads and evictions."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from retention_features.decoding import DecodedOrder
from retention_features.store import PartitionStore
from retention_features.totals_cache import RunningCustomers
from retention_features.vectors import clock_frame
from retention_shared.features import FEATURE_NAMES, compute_features
from retention_shared.features.running import running_orders
from tests.support.uci_orders import TEST_DATA, load_orders


@pytest.fixture(scope="module")
def decoded() -> list[DecodedOrder]:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet")
    return [DecodedOrder(t, c, order) for t, c, order in running_orders(orders)]


def apply_batch(
    store: PartitionStore, customers: RunningCustomers, batch: list[DecodedOrder], first: int
) -> list[bool]:
    store.begin()
    new = store.insert_rows([order.row(first + i) for i, order in enumerate(batch)])
    customers.apply(order for order, is_new in zip(batch, new, strict=True) if is_new)
    return new


def assert_equal_to_a_recompute(store: PartitionStore, customers: RunningCustomers) -> None:
    history = store.all_history()
    keys = history.select("tenant_id", "customer_id").unique().iter_rows()
    as_of = {key: 1_400_000_000_000_000 for key in keys}  # 2014: after every order
    served, unserved = customers.vectors(as_of)
    assert not unserved and served.keys() == as_of.keys()
    expected = compute_features(history, clock_frame(as_of))
    for row in expected.iter_rows(named=True):
        vector = served[(row["tenant_id"], row["customer_id"])]
        assert vector.features == {name: row[name] for name in FEATURE_NAMES}


@pytest.mark.parametrize("capacity", [100_000, 7])
def test_duplicates_late_orders_and_rollbacks_leave_the_totals_equal_to_the_store(
    decoded: list[DecodedOrder], tmp_path: Path, capacity: int
) -> None:
    store = PartitionStore(tmp_path / "p.sqlite")
    customers = RunningCustomers(store, empty=True, capacity=capacity)
    rng = random.Random(5)
    arrivals = decoded[:]
    rng.shuffle(arrivals)  # many orders arrive after a later one of the same customer
    arrivals += rng.sample(decoded, 300)  # and some arrive twice
    size, failing = 250, 2
    assert len(decoded) > (failing + 1) * size
    for start in range(0, len(arrivals), size):
        batch = arrivals[start : start + size]
        new = apply_batch(store, customers, batch, start)
        if start // size == failing:  # this one fails before its commit
            assert all(new)
            store.rollback()
            customers.forget()
            new = apply_batch(store, customers, batch, start)
        if start >= len(decoded):
            assert batch and not any(new)
        store.commit(start + len(batch))
    assert store.all_history().height == len(decoded)
    assert_equal_to_a_recompute(store, customers)
    reloaded = RunningCustomers(store)  # a restart: everyone is loaded from the file
    assert_equal_to_a_recompute(store, reloaded)
    store.close()


def test_insert_rows_says_which_orders_were_new(
    decoded: list[DecodedOrder], tmp_path: Path
) -> None:
    store = PartitionStore(tmp_path / "p.sqlite")
    rows = [order.row(offset) for offset, order in enumerate(decoded[:5])]
    store.begin()
    assert store.insert_rows(rows[:3]) == [True, True, True]
    # Records 5-8: a redelivery of record 1's order, two new ones, and one of them again.
    again = [decoded[1].row(5), decoded[3].row(6), decoded[4].row(7), decoded[4].row(8)]
    assert store.insert_rows(again) == [False, True, True, False]
    assert store.insert_rows([]) == []
    store.commit(5)
    assert store.all_history().height == 5
    store.close()


def test_a_state_file_of_an_earlier_release_loads_into_the_compact_totals(
    decoded: list[DecodedOrder], tmp_path: Path
) -> None:
    """The running totals are not stored: they are rebuilt from the partition's orders. A file
    written before versions and line counts (products as JSON text of the ids) still gives the
    same vectors, distinct products included, now counted from 8-byte hashes."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE orders (tenant_id TEXT NOT NULL, customer_id TEXT NOT NULL, order_id TEXT "
        "NOT NULL, kind TEXT NOT NULL, occurred_at_us INTEGER NOT NULL, total REAL NOT NULL, "
        "items REAL NOT NULL, products TEXT NOT NULL, source_offset INTEGER NOT NULL, "
        "PRIMARY KEY (tenant_id, order_id, kind)) WITHOUT ROWID"
    )
    rows = [order.row(offset)[:9] for offset, order in enumerate(decoded)]
    old.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    old.commit()
    distinct: dict[tuple[str, str], set[str]] = {}
    for tenant, customer, products in old.execute(
        "SELECT tenant_id, customer_id, products FROM orders WHERE kind = 'purchase'"
    ):
        distinct.setdefault((tenant, customer), set()).update(json.loads(products))
    old.close()

    store = PartitionStore(path)
    customers = RunningCustomers(store)
    assert_equal_to_a_recompute(store, customers)
    served, _ = customers.vectors({key: 1_400_000_000_000_000 for key in distinct})
    assert len(distinct) > 100 and max(map(len, distinct.values())) > 50
    for key, products in distinct.items():
        assert served[key].features["unique_products"] == len(products), key
    store.close()
