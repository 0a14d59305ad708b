"""Timing of `compute_features_at_cutoffs` on the whole of online_retail_II (not a test).

uv run python bench/features/cutoffs.py [--cutoffs 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from retention_shared.features import compute_features, compute_features_at_cutoffs  # noqa: E402
from tests.support.uci_orders import SHARED_DATA, load_orders  # noqa: E402

DATA = SHARED_DATA / "online_retail_II.parquet"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cutoffs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--copies", type=int, default=1, help="stack N copies as separate tenants (scale test)"
    )
    args = parser.parse_args()

    orders = load_orders(args.data)
    orders = pl.concat(
        [orders.with_columns(tenant_id=pl.lit(f"tenant-{k}")) for k in range(args.copies)]
    )
    last = orders.get_column("occurred_at").max()
    # Monthly cutoffs: the first of each of the last N months up to the last order.
    months = [last.year * 12 + last.month - 1 - k for k in range(args.cutoffs)]
    cutoffs = [datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC) for m in reversed(months)]
    customers = orders.select("tenant_id", "customer_id").n_unique()
    print(
        f"{orders.height} orders, {customers} customers, "
        f"{len(cutoffs)} monthly cutoffs {cutoffs[0]:%Y-%m-%d}..{cutoffs[-1]:%Y-%m-%d}"
    )
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        frame = compute_features_at_cutoffs(orders, cutoffs)
        runs.append(time.perf_counter() - started)
    print(
        f"compute_features_at_cutoffs: {frame.height} rows; "
        f"median {statistics.median(runs):.3f}s, min {min(runs):.3f}s over {len(runs)} runs"
    )
    if args.copies == 1:
        started = time.perf_counter()
        for cutoff in cutoffs:
            compute_features(orders, cutoff)
        print(f"compute_features once per cutoff: {time.perf_counter() - started:.3f}s in total")
    one = orders.filter(pl.col("customer_id") == orders.get_column("customer_id")[0])
    started = time.perf_counter()
    for _ in range(100):
        compute_features(one, last)
    print(f"compute_features for one customer: {(time.perf_counter() - started) * 10:.2f} ms")


if __name__ == "__main__":
    main()
