"""What features and scoring hold per customer, and what the broker holds per order, in-process.

    uv run python bench/scale/holdings.py            # online_retail_II, about a minute
    uv run python bench/scale/holdings.py --k 4      # its k-copy file (bench/scale/copies.py)

The same code the services run, on the cleaned orders of the file, without Kafka or HTTP, each
structure measured on its own: Python objects and numpy arrays with tracemalloc (numpy reports
its buffers to it), polars frames with `estimated_size()` (polars allocates outside Python's
allocator, so tracemalloc does not see it). Per structure, bytes per customer (or per order):
what bench/scale/run.py's "idle − floor" of each service is made of.

1. the payloads on `transactions` (`order_event_payloads`) and on `customer-features`
   (`running_payload`): what the in-memory broker keeps per order and per vector;
2. features: every customer's `RunningCustomer` (the consumer's running totals, kept up to
   `running.DEFAULT_CAPACITY` customers per partition);
3. scoring: the `FeatureStore` filled with every customer's decoded `CustomerFeatures`; the
   scored population (`compute_population`: the frames at the clock and the scores); every
   customer's reasons (`Population.explanations`, kept with the population); the
   `CustomerScore` bytes `ScoreHistory` keeps per customer.

A model is trained for step 3 with the pipeline's defaults but no rolling origins and 20
bootstrap resamples (the bundle is what matters here, not its report).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# As the trainer sets it: spinning OpenMP threads make XGBoost 10x slower on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from bench.harness import data_file, load  # noqa: E402
from bench.scale.copies import write_copies  # noqa: E402
from retention_features.vectors import batch_time, running_payload  # noqa: E402
from retention_ingest.file_ingest import ingest_file  # noqa: E402
from retention_ingest.order_events import order_event_payloads  # noqa: E402
from retention_scoring.champions import LoadedChampion  # noqa: E402
from retention_scoring.population import compute_population, snapshot  # noqa: E402
from retention_scoring.score_events import event_reasons  # noqa: E402
from retention_scoring.store import FeatureStore  # noqa: E402
from retention_shared.events import (  # noqa: E402
    CustomerFeatures,
    CustomerScore,
    ModelPublished,
    RiskBand,
    TimeWindow,
    ValueTier,
    decode_events,
)
from retention_shared.features import orders_from_event_columns  # noqa: E402
from retention_shared.features.running import RunningCustomer, running_orders  # noqa: E402
from retention_trainer.pipeline import train_and_backtest  # noqa: E402

TENANT = "default"


def traced(build: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    """`build(*args)` and the bytes it left allocated (tracemalloc: Python objects, numpy)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    value = build(*args)
    gc.collect()
    return value, tracemalloc.get_traced_memory()[0] - before


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, default=None)
    cli.add_argument("--k", type=int, default=1, help="k copies of the file (bench/scale)")
    args = cli.parse_args()
    print(f"load average: {load()}")
    work = Path(tempfile.mkdtemp(prefix="bench-holdings-"))
    source = data_file(args.data)
    data = source if args.k == 1 else write_copies(source, args.k, work / "k.parquet").path
    started = time.perf_counter()
    cleaned = ingest_file(data, tenant_id=TENANT, source="bench", work_dir=work / "ingest")
    events = cleaned.events().collect()
    orders = orders_from_event_columns(events.lazy())
    customers = orders["customer_id"].n_unique()
    print(
        f"{orders.height:,} orders of {customers:,} customers ({time.perf_counter() - started:.0f} s)"
    )
    rows: list[tuple[str, float, str]] = []

    def per(what: str, total: float, count: int, unit: str) -> None:
        rows.append((what, total / count, unit))

    # 1. what the broker keeps
    payloads = order_event_payloads(events)
    per("transactions: OrderEvent JSON", sum(map(len, payloads)), len(payloads), "B/order")
    del payloads

    # 2. features' running totals
    tracemalloc.start()
    by_customer: dict[tuple[str, str], list] = defaultdict(list)
    for tenant, customer, order in running_orders(orders):
        by_customer[(tenant, customer)].append(order)
    running, size = traced(_running, by_customer)
    per("features: RunningCustomer", size, len(running), "B/customer")
    del by_customer
    clock = int(orders["occurred_at"].max().timestamp() * 1e6)
    computed_at = batch_time()
    vectors = [
        running_payload(t, c, customer.vector(clock), (0, 0), computed_at)
        for (t, c), customer in running.items()
    ]
    per(
        "customer-features: CustomerFeatures JSON",
        sum(len(v) for _, v in vectors),
        len(vectors),
        "B/vector",
    )
    del running

    # 3. scoring
    decoded = decode_events(CustomerFeatures, [value for _, value in vectors])
    store, size = traced(_filled, decoded)
    per("scoring: FeatureStore (vectors + compact histories)", size, customers, "B/customer")
    del decoded
    table = store.table(TENANT)
    assert table is not None
    history_entries = sum(int(n) for n in table.history_length[: len(table)])
    print(f"compact history: {history_entries / customers:.1f} orders per customer")

    tracemalloc.stop()  # training is not measured, and is much faster without it
    started = time.perf_counter()
    training = train_and_backtest(orders, tenant=TENANT, rolling_origins=0, resamples=20)
    print(f"trained in {time.perf_counter() - started:.0f} s (for the bundle)")
    champion = LoadedChampion(
        tenant_id=TENANT,
        tag="retention-default:bench",
        version="bench",
        bundle=training.bundle,
        published=ModelPublished(
            tenant_id=TENANT,
            model_tag="retention-default:bench",
            model_version="bench",
            run_id="bench",
            training_window=TimeWindow(start=datetime.now(UTC), end=datetime.now(UTC)),
        ),
        trained_at=datetime.now(UTC),
        loaded_at=datetime.now(UTC),
    )
    tracemalloc.start()
    snap = snapshot(table, champion, table.clock_us)
    frames = snap.features.estimated_size() + snap.history.estimated_size()
    per("scoring: snapshot frames (polars) per population", frames, customers, "B/customer")
    started = time.perf_counter()
    population, size = traced(compute_population, champion, snap)
    seconds = time.perf_counter() - started
    polars_bytes = population.features.estimated_size() + population.scores.estimated_size()
    per("scoring: population, polars frames", polars_bytes, customers, "B/customer")
    per("scoring: population, Python (index, arrays)", size, customers, "B/customer")
    print(f"population computed in {seconds:.2f} s")
    started = time.perf_counter()
    explanations, size = traced(population.explanations, np.arange(len(population)))
    seconds = time.perf_counter() - started
    per("scoring: reasons of every customer (cached)", size, customers, "B/customer")
    print(f"reasons of every customer in {seconds:.1f} s ({seconds / customers * 1e3:.2f} ms each)")
    tracemalloc.stop()
    scores = [
        _score_event(row, explanation).to_bytes()
        for row, explanation in zip(population.scores.to_dicts(), explanations, strict=True)
    ]
    per(
        "customer-scores: CustomerScore JSON (ScoreHistory keeps each)",
        sum(map(len, scores)),
        len(scores),
        "B/score",
    )
    print(f"\nwhat each structure holds ({args.k}x, load average now {load()}):")
    width = max(len(name) for name, _, _ in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>9,.0f} {unit}")
    return 0


def _score_event(row: dict[str, Any], explanation: Any) -> CustomerScore:
    """A first `CustomerScore` as `ScoreEvents` publishes it (all three fields changed)."""
    return CustomerScore(
        event_id="0" * 32,
        tenant_id=TENANT,
        customer_id=row["customer_id"],
        churn_probability=row["churn_probability"],
        risk_band=RiskBand(row["risk_band"]),
        churn_horizon_days=90,
        predicted_ltv=row["predicted_ltv"],
        ltv_low=row["ltv_low"],
        ltv_high=row["ltv_high"],
        ltv_horizon_days=180,
        value_tier=ValueTier(row["value_tier"]),
        segment=row["segment"],
        action=row["action"],
        revenue_at_risk=row["revenue_at_risk"],
        reasons=event_reasons(explanation),
        drivers=explanation.structured(),
        changed=["risk_band", "value_tier", "segment"],
        model_version="bench",
        features_as_of=row["as_of"],
    )


def _running(by_customer: dict[tuple[str, str], list]) -> dict[tuple[str, str], RunningCustomer]:
    return {key: RunningCustomer.from_orders(found) for key, found in by_customer.items()}


def _filled(decoded: list) -> FeatureStore:
    store = FeatureStore()
    store.apply((event, 0) for event in decoded)
    return store


if __name__ == "__main__":
    sys.exit(main())
