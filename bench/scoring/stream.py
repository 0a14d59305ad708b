"""bench/scoring/stream.py: scoring's CPU per streamed order, whole pass against patch, in process.

Run from the repository root:

    uv run python bench/scoring/stream.py              # k = 1 and 16, a few minutes
    uv run python bench/scoring/stream.py --ks 1 --orders 400

Per k (k copies of online_retail_II as one tenant, customer ids shifted per copy as
`bench/scale/copies.py` does): the last `--orders` orders of the history are the stream; the
feature store holds every customer's vector before them. The stream goes in batches of
`--batch` orders: each batch's customers get their vectors after it (the shared
`compute_features`, not timed), and the population is brought up to date, timed in process CPU
seconds (worker threads included):

- **whole** (before this change): every batch moves the tenant clock, so the whole population
  is moved and scored again (`compute_population`), as `Populations.get` did for each batch;
- **patch** (after): `Populations.get` with the daily clock: the batch's customers scored
  against the cached population, a whole pass only when the clock crosses a UTC day.

With `--redate` the streamed orders are dated one second apart after the history's last order,
as `bench/scale/stream.py` sends them (one day crossed at most); without, they keep their dates
(the last 1,000 orders of online_retail_II span 9 days: 8 whole passes).

At k = 16 the whole pass is measured on the first `--whole-batches` batches only (each takes
seconds). Prints CPU ms per streamed order for both and their ratio. The bundle is the test
slice's (`tests/support/scoring_service.train_bundle`): its cost is the model's predict, which
is the same for any bundle of this pipeline.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests` and `bench` are folders at the repo root
    sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from bench.harness import data_file, load, parser  # noqa: E402
from retention_scoring import telemetry  # noqa: E402
from retention_scoring.champions import LoadedChampion  # noqa: E402
from retention_scoring.population import Populations, compute_population, snapshot  # noqa: E402
from retention_scoring.store import FeatureStore, TenantTable  # noqa: E402
from tests.support.scoring_service import feature_events, model_published, train_bundle  # noqa: E402
from tests.support.uci_orders import load_orders  # noqa: E402

CUSTOMER_STRIDE = 100_000  # bench/scale/copies.py


def copies(orders: pl.DataFrame, k: int) -> pl.DataFrame:
    return pl.concat(
        orders.with_columns(
            customer_id=(pl.col("customer_id").cast(pl.Int64) + c * CUSTOMER_STRIDE).cast(
                pl.String
            ),
            order_id=pl.col("order_id") + f"-{c}",
        )
        for c in range(k)
    ).sort("occurred_at")


def cpu() -> float:
    return time.process_time()


async def measure(
    orders: pl.DataFrame,
    champion: LoadedChampion,
    count: int,
    batch: int,
    whole_batches: int,
    redate: bool,
) -> dict[str, float]:
    stream = orders.tail(count)
    history = orders.head(orders.height - count)
    if redate:  # one second apart after the history, as bench/scale/stream.py: all one day
        last = history["occurred_at"].max()
        seconds = pl.Series(range(1, count + 1)) * 1_000_000
        stream = stream.with_columns(occurred_at=pl.lit(last) + pl.duration(microseconds=seconds))
        orders = pl.concat([history, stream])
    store = FeatureStore()
    store.apply((event, 0) for event in feature_events(history))
    table = store.table("default")
    assert isinstance(table, TenantTable)
    populations = Populations(lambda t: t.clock_us, settle_seconds=float("inf"))
    await populations.get(table, champion)  # the population before the stream
    whole_cpu = patch_cpu = 0.0
    whole_orders = patch_orders = 0
    scored = Counter[str]()
    before = {r: telemetry.CUSTOMERS_SCORED.labels("default", r)._value.get() for r in REASONS}
    for first in range(0, stream.height, batch):
        part = stream.slice(first, batch)
        touched = part["customer_id"].unique()
        upto = orders.filter(
            pl.col("customer_id").is_in(touched.implode())
            & (pl.col("occurred_at") <= part["occurred_at"].max())
        )
        store.apply((event, 0) for event in feature_events(upto))
        if first // batch < whole_batches:
            start = cpu()
            snap = snapshot(table, champion, table.clock_us)
            await asyncio.to_thread(compute_population, champion, snap)
            whole_cpu += cpu() - start
            whole_orders += part.height
        start = cpu()
        await populations.get(table, champion)
        patch_cpu += cpu() - start
        patch_orders += part.height
    for r in REASONS:
        scored[r] = int(telemetry.CUSTOMERS_SCORED.labels("default", r)._value.get() - before[r])
    return {
        "customers": len(table),
        "whole_ms_per_order": 1000 * whole_cpu / max(whole_orders, 1),
        "patch_ms_per_order": 1000 * patch_cpu / max(patch_orders, 1),
        "whole_orders": whole_orders,
        "patch_orders": patch_orders,
        "days": len({d for d in stream["occurred_at"].dt.date().to_list()}),
        **{f"scored_{r}": float(n) for r, n in scored.items()},
    }


REASONS = ("changed", "day", "settle")


def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--ks", default="1,16", help="comma-separated copy counts")
    cli.add_argument("--orders", type=int, default=1000, help="orders streamed")
    cli.add_argument("--batch", type=int, default=20, help="orders per batch")
    cli.add_argument("--whole-batches", type=int, default=10, help="whole passes measured at k>1")
    cli.add_argument(
        "--redate", action="store_true", help="stream one second apart after the history"
    )
    args = cli.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    source = data_file(args.data)
    print(f"data: {source}\n{load()}")
    orders = load_orders(source, tenant="default")
    print("training a bundle on the test slice …")
    bundle = train_bundle()
    now = datetime.now(UTC)
    tag = "retention-default:bench"
    champion = LoadedChampion(
        "default", tag, "bench", bundle, model_published("default", tag), now, now
    )
    print(
        "| k | customers | orders streamed (days) | whole pass per batch, ms/order | patch + daily pass, ms/order | ratio | customers scored: changed / day |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in [int(k) for k in args.ks.split(",")]:
        whole = args.orders // args.batch if k == 1 else args.whole_batches
        r = asyncio.run(
            measure(copies(orders, k), champion, args.orders, args.batch, whole, args.redate)
        )
        print(
            f"| {k} | {r['customers']:,} | {r['patch_orders']:,} ({r['days']}) "
            f"| {r['whole_ms_per_order']:.2f} | {r['patch_ms_per_order']:.2f} "
            f"| {r['patch_ms_per_order'] / r['whole_ms_per_order']:.3f} "
            f"| {r['scored_changed']:,.0f} / {r['scored_day']:,.0f} |",
            flush=True,
        )
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
