"""The compact distinct-product set behind `unique_products`: a count of distinct ids that keeps
8-byte hashes instead of the id strings."""

from __future__ import annotations

import random
import subprocess
import sys

from retention_shared.features.product_set import ProductSet, product_hash
from retention_shared.features.running import RunningCustomer, RunningOrder


def test_duplicates_within_and_across_updates_count_once() -> None:
    products = ProductSet(["85123A", "85123A", "22423"])
    products.update(["22423", "POST"])
    products.update([])
    products.update(["85123A"])
    assert len(products) == 3
    assert "POST" in products and "22423" in products and "85123A" in products
    assert "84029G" not in products and 85123 not in products


def test_the_order_of_ids_and_of_updates_does_not_matter() -> None:
    ids = [f"{n:05d}{letter}" for n in range(300) for letter in "AB"] * 2
    counts, members = set(), set()
    for seed in range(5):
        shuffled = ids[:]
        random.Random(seed).shuffle(shuffled)
        products = ProductSet()
        for start in range(0, len(shuffled), 1 + seed * 37):  # batches of several sizes
            products.update(shuffled[start : start + 1 + seed * 37])
        counts.add(len(products))
        members.add(all(i in products for i in ids))
    assert counts == {600} and members == {True}


def test_many_products_past_the_merge_threshold_are_each_counted() -> None:
    products = ProductSet()
    for n in range(50_000):
        products.update([f"SKU-{n}", f"SKU-{n // 2}"])  # half of them seen twice
    assert len(products) == 50_000
    assert f"SKU-{49_999}" in products and "SKU-50000" not in products


def test_the_hash_is_the_same_in_every_process() -> None:
    """A pinned BLAKE2b value, checked in a fresh interpreter too: not Python's salted `hash`."""
    assert product_hash("85123A") == 3141760557156334012
    script = (
        "from retention_shared.features.product_set import product_hash\n"
        "print(product_hash('85123A'), product_hash('é-ü'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["3141760557156334012", str(product_hash("é-ü"))]


def test_running_totals_count_distinct_products_over_late_and_repeated_orders() -> None:
    day = 86_400_000_000
    orders = [
        RunningOrder(10 * day, "purchase", "o1", 5.0, 2.0, ["A", "B"]),
        RunningOrder(30 * day, "purchase", "o3", 5.0, 2.0, ["B", "C"]),
        RunningOrder(20 * day, "purchase", "o2", 5.0, 1.0, ["A"]),  # late
        RunningOrder(40 * day, "cancellation", "o3", -5.0, -2.0, ["D"]),  # not a purchase
    ]
    customer = RunningCustomer()
    for order in orders:
        customer.add(order)
    assert customer.vector(50 * day).features["unique_products"] == 3.0
    rebuilt = RunningCustomer.from_orders(reversed(orders))
    assert rebuilt.vector(50 * day).features["unique_products"] == 3.0
