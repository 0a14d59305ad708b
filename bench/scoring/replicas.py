"""bench/scoring/replicas.py: the score route's request rate with two sharded replicas against
one replica holding everyone, in the same run (issue 18, item 4).

Run from the repository root:

    uv run python bench/scoring/replicas.py            # a few minutes on a 2-core machine

Set-up as `bench/scoring/run.py` (ingest's cleaning, a real bundle, every customer's vector on
an embedded Tansu broker, `ModelPublished`). Then, one after the other on the same broker:

1. **one replica** (the default, unsharded): `python -m retention_scoring`;
2. **two sharded replicas** (`RETENTION_SCORING_SHARDED=true`), each holding its share of the
   `customer-features` partitions; the load goes to both at random, as a k8s Service spreads
   it, so about half the requests land on a replica that forwards them to the owner.

Each is warmed with every customer's first score (reasons are computed then kept), then
measured with the same closed-loop load: two aiohttp client processes, `--connections` workers
in all, `GET /v1/customers/{id}/score` on uniformly random ids, `--rounds` runs each. Printed:
request rates and latencies, their ratio (two ÷ one), each replica's RSS and customers held.

This machine has 2 cores shared by the replicas, the broker and the clients: two replicas
cannot add CPU here, so the ratio shows what sharding and forwarding cost, not how it scales on
two machines (there each replica brings its own cores and memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.harness import data_file, load, resident_mib, table, work_dir  # noqa: E402
from bench.scoring.run import (  # noqa: E402
    API_KEY,
    TENANT,
    Load,
    aiohttp_load,
    feature_records,
    model_published,
    wait_first_score,
)
from retention_scoring.shards import customer_partition  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_shared.topics import Topics  # noqa: E402
from retention_trainer.pipeline import train_and_backtest  # noqa: E402
from retention_trainer.runs.candidate import headline_metrics  # noqa: E402
from tests.support.real_orders import order_stream, publish  # noqa: E402
from tests.support.scoring_service import store_bundle  # noqa: E402
from tests.support.stack import running_stack, url  # noqa: E402

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def run_load(bases: list[str], paths: list[str], connections: int, seconds: float) -> Load:
    """Closed-loop GETs, each to a random replica and a random customer."""
    return aiohttp_load(bases, "GET", paths, connections, seconds)


def warm(bases: list[str], paths: list[str]) -> None:
    """Every customer's first score (their reasons are computed then), through each replica."""

    async def go() -> None:
        async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
            queue = list(paths)

            async def worker() -> None:
                while queue:
                    path = queue.pop()
                    response = await client.get(random.choice(bases) + path)
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(16)))

    asyncio.run(go())


def wait_sharded(bases: list[str], partitions: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = [httpx.get(f"{b}/v1/replicas", headers=HEADERS).json() for b in bases]
        owned = [sorted(p for r in v["replicas"] for p in r["owns"]) for v in views]
        if (
            all(o == list(range(partitions)) for o in owned)
            and all(len(r["partitions"]) < partitions for r in views[0]["replicas"])
            and len(views[0]["replicas"]) == len(bases)
        ):
            return
        time.sleep(0.5)
    raise TimeoutError("the replicas did not split the partitions")


def held(base: str, customers: list[str], partitions: int) -> int:
    """Customers this replica materialized: those of the partitions it announces."""
    view = httpx.get(f"{base}/v1/replicas", headers=HEADERS).json()
    if not view["sharded"]:
        return len(customers)
    mine = next(r for r in view["replicas"] if r["replica_id"] == view["replica_id"])
    parts = {int(p) for p in mine["partitions"]}
    return sum(customer_partition(TENANT, c, partitions) in parts for c in customers)


def on_embedded_broker(name: str, partitions: int, run: Callable[[Path, Settings], int]) -> int:
    """`run(work, settings)` with an embedded broker of `partitions` per topic, in a fresh work
    directory and under a fresh topic prefix."""
    settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=partitions)
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs")
    with work_dir(name, False) as work:
        broker = EmbeddedBroker(settings).start()
        try:
            return run(work, broker.settings)
        finally:
            broker.stop()


def trained_tenant(data: Path, work: Path, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """Train a bundle on `data`, store it, publish every customer's vector and the champion's
    announcement: (the customers, the environment scoring replicas serve them with)."""
    topics = Topics.with_prefix(settings.topic_prefix)
    orders = order_stream(data, work / "ingest", tenant_id=TENANT).orders
    customers = sorted(orders["customer_id"].unique().to_list())
    print(f"{data.name}: {orders.height:,} orders, {len(customers):,} customers; training …")
    training = train_and_backtest(orders, rolling_origins=0)
    home = work / "bentoml"
    tag = store_bundle(training.bundle, home, work)
    asyncio.run(publish(settings, topics.customer_features, feature_records(orders)))
    announcement = model_published(tag, orders, headline_metrics(training.report))
    asyncio.run(
        publish(settings, topics.model_events, [(TENANT.encode(), announcement.to_bytes())])
    )
    env = {
        "BENTOML_HOME": str(home),
        "RETENTION_API_KEYS": f"{API_KEY}:{TENANT}:read",
        "RETENTION_LOG_LEVEL": "WARNING",
    }
    return customers, env


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, default=None)
    cli.add_argument("--rounds", type=int, default=3)
    cli.add_argument("--duration", type=float, default=6.0)
    cli.add_argument("--connections", type=int, default=16)
    cli.add_argument("--partitions", type=int, default=6)
    args = cli.parse_args()
    data = data_file(args.data)
    return on_embedded_broker(
        "scoring-replicas",
        args.partitions,
        lambda work, settings: run(args, data, work, settings),
    )


def run(args: argparse.Namespace, data: Path, work: Path, settings: Settings) -> int:
    customers, env = trained_tenant(data, work, settings)
    paths = [f"/v1/customers/{c}/score" for c in customers]
    results: dict[str, list[Load]] = {}
    memory: dict[str, list[tuple[float, int]]] = {}
    for name, replicas, sharded in (("one replica", 1, False), ("two sharded", 2, True)):
        extra = {"RETENTION_SCORING_SHARDED": "true"} if sharded else {}
        with ExitStack() as running:
            stacks = [
                running.enter_context(
                    running_stack(
                        settings, work / f"{name}-{i}.log", services=("scoring",), **env, **extra
                    )
                )
                for i in range(replicas)
            ]
            bases = [url(stack, "scoring") for stack in stacks]
            if sharded:
                wait_sharded(bases, args.partitions)
            for base in bases:
                wait_first_score(base, customers[0])
            warm(bases, paths)
            results[name] = []
            for round_number in range(1, args.rounds + 1):
                results[name].append(run_load(bases, paths, args.connections, args.duration))
                last = results[name][-1]
                print(
                    f"  {name} round {round_number}: {last.rps:,.0f} rps  "
                    f"p50 {last.p50_ms:.1f} ms  p99 {last.p99_ms:.1f} ms"
                    + (f"  FAILED {last.bad_status}" if last.bad_status else ""),
                    flush=True,
                )
            memory[name] = [
                (resident_mib(stack.running[0].process.pid), held(base, customers, args.partitions))
                for stack, base in zip(stacks, bases, strict=True)
            ]
    one = statistics.median(r.rps for r in results["one replica"])
    two = statistics.median(r.rps for r in results["two sharded"])
    failures = sum(r.bad_status for runs in results.values() for r in runs)
    rows = [
        (
            name,
            f"{statistics.median(r.rps for r in runs):,.0f} rps",
            f"p50 {statistics.median(r.p50_ms for r in runs):.1f} ms, "
            f"p99 {statistics.median(r.p99_ms for r in runs):.1f} ms; "
            + ", ".join(f"RSS {rss:,.0f} MiB holding {n:,}" for rss, n in memory[name]),
        )
        for name, runs in results.items()
    ]
    rows.append(("ratio two ÷ one", f"{two / one:.2f}", f"{os.cpu_count()} CPUs shared by all"))
    rows.append(("failed requests", str(failures), "every answer must be 2xx"))
    print(table(rows))
    print(f"load average at end: {load()}")
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
