"""bench/analytics: the trainer's analytics endpoints, cold and warm, against bare polars.

Run from the repository root:

    uv run python bench/analytics/run.py                  # about 1 minute on a 2-core machine
    uv run python bench/analytics/run.py --cases migration

Set-up, not timed:

1. Cleans `online_retail_II` with ingest's own pipeline (`ingest_file`) and appends the events to
   a local transaction lake in the trainer's data directory, as its lake consumer would (one part
   per month).
2. Starts an embedded Tansu broker and the trainer as its own process on that data directory.
3. If a case needs a champion: `POST /v1/retrain` and waits until the run is published (a real
   training run in the service, ~20 s on this file).

Then per case (`case.py` says what a case brings), in the same run:

- first: the case's first cold request (it may also load what the service keeps across answers);
- cold: --cold-runs requests the service has not answered yet, median;
- warm: the same request --warm-runs times after it was answered once, median;
- bare: the warm request's answer computed with bare polars on the lake's part files, median of
  --cold-runs, and whether it agrees with the service's.

Latencies are measured in this process around each HTTP call (keep-alive client), so they include
~1 ms of HTTP.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` and `tests` are folders at the repo root
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.analytics.case import Bench, Case  # noqa: E402
from bench.analytics.cohorts import COHORTS  # noqa: E402
from bench.analytics.migration import MIGRATION  # noqa: E402
from bench.harness import data_file, load, parser, table, verdict, work_dir  # noqa: E402
from retention_ingest.file_ingest import ingest_file  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_trainer.lake import TransactionLake  # noqa: E402
from tests.support.stack import running_stack, url  # noqa: E402

TENANT = "default"
API_KEY = "bench-analytics-key"
CASES: dict[str, Case] = {"cohorts": COHORTS, "migration": MIGRATION}


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    cli.add_argument("--cold-runs", type=int, default=7)
    cli.add_argument("--warm-runs", type=int, default=50)
    return cli.parse_args()


def main() -> int:
    args = parse_args()
    cases = [CASES[name] for name in args.cases.split(",")]
    data = data_file(args.data)
    print(f"data: {data}")
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs")
    with work_dir("analytics", args.keep) as work:
        settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", data_dir=work / "data")
        print("cleaning with ingest's pipeline and filling the lake …", flush=True)
        events = ingest_file(data, tenant_id=TENANT, source="bench", work_dir=work / "ingest")
        lake = TransactionLake(work / "data" / "lake")
        lake.append(events.events().collect())
        parts = [work / "data" / "lake" / o.key for o in lake.store.list(f"tenant={TENANT}/")]
        orders = lake.orders(TENANT)
        print(f"  {orders.height:,} orders, {orders['customer_id'].n_unique():,} customers")
        broker = EmbeddedBroker(settings).start()
        try:
            with running_stack(
                broker.settings,
                work / "trainer.log",
                services=("trainer",),
                BENTOML_HOME=str(work / "bentoml"),
                RETENTION_API_KEYS=f"{API_KEY}:{TENANT}:admin",
                RETENTION_RETRAIN_EVERY_HOURS="0",
                RETENTION_LOG_LEVEL="WARNING",
            ) as stack:
                bench = Bench(
                    base=url(stack, "trainer"),
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    tenant=TENANT,
                    parts=parts,
                    bentoml_home=work / "bentoml",
                    model_version=None,
                )
                if any(case.needs_champion for case in cases):
                    bench = train_champion(bench)
                rows = [row for case in cases for row in measure(case, bench, args)]
        finally:
            broker.stop()
    print(table(rows))
    print(f"load average at end: {load()}")
    return 0


def train_champion(bench: Bench) -> Bench:
    print("training a champion in the service (POST /v1/retrain) …", flush=True)
    started = time.monotonic()
    httpx.post(f"{bench.base}/v1/retrain", headers=bench.headers).raise_for_status()
    while time.monotonic() - started < 600:
        runs = httpx.get(f"{bench.base}/v1/runs", headers=bench.headers).json()["runs"]
        if runs and runs[0]["status"] not in ("queued", "running"):
            run = runs[0]
            if run["status"] != "published":
                raise RuntimeError(f"the training run ended {run['status']}: {run['message']}")
            print(f"  {run['model_tag']} in {time.monotonic() - started:.0f} s", flush=True)
            version = run["model_tag"].split(":", 1)[1]
            return Bench(**{**vars(bench), "model_version": version})
        time.sleep(1.0)
    raise TimeoutError("no published run within 10 minutes")


def measure(case: Case, bench: Bench, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    print(f"measuring {case.name} …", flush=True)
    with httpx.Client(base_url=bench.base, headers=bench.headers, timeout=60) as client:

        def timed(path: str) -> tuple[float, dict]:
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        cold = [timed(path)[0] for path in case.cold_requests(bench, args.cold_runs + 1)]
        first, cold = cold[0], cold[1:]
        warm_path = case.warm_request(bench)
        timed(warm_path)
        answers = [timed(warm_path) for _ in range(args.warm_runs)]
    bare_ms = []
    for _ in range(args.cold_runs):
        started = time.perf_counter()
        bare = case.bare(bench)
        bare_ms.append((time.perf_counter() - started) * 1000)
    cold_ms = statistics.median(cold)
    warm_ms = statistics.median(ms for ms, _ in answers)
    bare_median = statistics.median(bare_ms)
    agrees = case.agrees(bench, answers[-1][1], bare)
    return [
        (f"{case.name} first", f"{first:.0f} ms", "first cold request"),
        (
            f"{case.name} cold",
            f"{cold_ms:.0f} ms",
            f"median of {len(cold)}, range {min(cold):.0f}–{max(cold):.0f}; "
            + verdict(cold_ms < case.cold_target_ms, f"< {case.cold_target_ms:.0f} ms"),
        ),
        (
            f"{case.name} warm",
            f"{warm_ms:.1f} ms",
            f"median of {len(answers)}, p90 {statistics.quantiles([a for a, _ in answers], n=10)[-1]:.1f}; "
            + verdict(warm_ms < case.warm_target_ms, f"< {case.warm_target_ms:.0f} ms"),
        ),
        (
            f"{case.name} bare polars",
            f"{bare_median:.0f} ms",
            f"median of {len(bare_ms)}; cold/bare {cold_ms / bare_median:.1f}x; "
            f"same answer: {'yes' if agrees else 'NO'}",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
