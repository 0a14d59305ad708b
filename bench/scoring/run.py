"""bench/scoring: score route throughput and latency against the app's own no-op floor.

Run from the repository root:

    uv run python bench/scoring/run.py             # about 3 minutes on a 2-core machine

Set-up, not timed:

1. Cleans `online_retail_II` with ingest's own pipeline (tests/support/real_orders.py): the orders frame
   the features service builds from those events.
2. Trains a real bundle on those orders (`train_and_backtest`, no rolling origins: the model is
   only scored here) and saves it with `save_bundle` into a temporary BentoML store.
3. On an embedded Tansu broker: every customer's `CustomerFeatures` on `customer-features`, made
   by the features service's own `feature_payloads` (the shared `compute_features`, each customer
   at the clock of their last event, as after a replay), then `ModelPublished` on `model-events`.
4. Starts the scoring service as its own process (`python -m retention_scoring`, RETENTION_* env,
   the store's `BENTOML_HOME`), waits for `/readyz` and a first 200 score.

Cold pass (httpx in this process, informative only): `GET /v1/customers/{id}/score` over every
known id once, in random order — each customer's first score computes its reasons (XGBoost
contributions for one row). Then the measured load, from a separate process (wrk if on PATH, else
two aiohttp client processes), closed loop, same connections and duration for both routes:

- rounds, interleaved (floor, score, floor, score, …): the floor `GET /v1/ping` (the same app,
  middleware and key check, no state) and the score route over uniformly random known ids;
- batches: `POST /v1/score` with 1,000 random known ids per request (reasons included).

Targets (issue 6): score throughput ≥ 60% of the floor's; score p99 < 3x the floor's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests` is a package at the repo root, not an installed one
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import polars as pl  # noqa: E402

from bench.harness import (  # noqa: E402
    cpu_seconds,
    data_file,
    load,
    parser,
    percentile,
    resident_mib,
    table,
    verdict,
    work_dir,
)
from retention_features.vectors import feature_payloads  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_shared.events import ModelPublished, TimeWindow  # noqa: E402
from retention_shared.topics import Topics  # noqa: E402
from retention_trainer.pipeline import train_and_backtest  # noqa: E402
from retention_trainer.runs.candidate import headline_metrics  # noqa: E402
from tests.support.real_orders import order_stream, publish  # noqa: E402
from tests.support.scoring_service import store_bundle  # noqa: E402
from tests.support.stack import running_stack, url  # noqa: E402

TENANT = "default"
API_KEY = "bench-scoring-key"
THROUGHPUT_TARGET = 0.6
P99_TARGET = 3.0
BATCH = 1_000
# Closed-loop load keeps the one-process service busy; less CPU than this means it was starved.
STARVED = 0.85

# Random paths (or bodies) from a file, one per line; prints the results as one JSON line.
WRK_SCRIPT = """
local items = {}
local method = "GET"
local seeds = 0
setup = function(thread)
  seeds = seeds + 1
  thread:set("seed", seeds)
end
init = function(args)
  method = args[1]
  for line in io.lines(args[2]) do items[#items + 1] = line end
  math.randomseed(tonumber(args[3]) * 1000 + seed)
end
request = function()
  local item = items[math.random(#items)]
  if method == "GET" then return wrk.format("GET", item) end
  return wrk.format("POST", nil, nil, item)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%f,"p50_ms":%f,"p99_ms":%f,"errors":%d,"bad_status":%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Load:
    """One load run: requests completed in `seconds`, latency quantiles, failures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write errors and timeouts
    bad_status: int  # answers other than 2xx/3xx
    wall: float = math.nan  # seconds of the whole run, start-up of the client included
    server_cpu: float = math.nan  # the service's CPU over `wall`, 1.0 = one core
    client_cpu: float = math.nan
    server_rss_mib: float = math.nan  # after the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        """The service's CPU per request: what the service costs, whatever else ran."""
        return self.server_cpu * self.wall / max(self.requests, 1) * 1e3


# ---------------------------------------------------------------------------------------------
# load generators


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Generator:
    """Closed-loop load from outside this process, so it never shares the server's GIL."""

    name = ""

    def __init__(self, base: str, work: Path, connections: int, server_pid: int) -> None:
        self.base, self.work, self.connections, self.server_pid = (
            base,
            work,
            connections,
            server_pid,
        )
        self.runs = 0

    def run(self, method: str, items: list[str], seconds: float) -> Load:
        """`method` on random `items` (paths for GET, JSON bodies for POST to /v1/score)."""
        self.runs += 1
        items_file = self.work / f"load-{self.runs}.txt"
        items_file.write_text("\n".join(items) + "\n")
        server, client, began = cpu_seconds(self.server_pid), children_cpu(), time.monotonic()
        load = self._run(method, items_file, seconds)
        # Over the whole call, client start-up included: CPU per request stays exact.
        load.wall = time.monotonic() - began
        load.server_cpu = (cpu_seconds(self.server_pid) - server) / load.wall
        load.client_cpu = (children_cpu() - client) / load.wall
        load.server_rss_mib = resident_mib(self.server_pid)
        return load

    def _run(self, method: str, items_file: Path, seconds: float) -> Load:
        raise NotImplementedError


class Wrk(Generator):
    name = "wrk"

    def _run(self, method: str, items_file: Path, seconds: float) -> Load:
        script = self.work / "random.lua"
        script.write_text(WRK_SCRIPT)
        command = ["wrk", "-t1", f"-c{self.connections}", f"-d{seconds:g}s", "--timeout", "30s"]
        command += ["-H", f"Authorization: Bearer {API_KEY}"]
        target = self.base + ("/v1/score" if method == "POST" else "/")
        if method == "POST":
            command += ["-H", "Content-Type: application/json"]
        command += ["-s", str(script), target, "--", method, str(items_file), str(self.runs)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        line = [row for row in done.stdout.splitlines() if row.startswith("{")][-1]
        return Load(**json.loads(line))


def _client_process(
    bases: list[str], method: str, items: list[str], connections: int, seconds: float, out: object
) -> None:
    """One client process: `connections` closed-loop workers on one aiohttp session, each
    request to a random one of `bases` (the replicas) with a random item."""
    import aiohttp  # in the locked environment (a dependency of a dependency), only needed here

    async def main() -> None:
        latencies: list[float] = []
        failures = {"errors": 0, "bad_status": 0}
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < stop:
                    item, base = random.choice(items), random.choice(bases)
                    started = time.perf_counter()
                    try:
                        if method == "GET":
                            response = await session.get(base + item)
                        else:
                            response = await session.post(base + "/v1/score", data=item)
                        await response.read()
                    except aiohttp.ClientError:
                        failures["errors"] += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    if response.status >= 400:
                        failures["bad_status"] += 1

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            out.put((latencies, time.perf_counter() - began, failures))  # type: ignore[attr-defined]

    asyncio.run(main())


class AiohttpClients(Generator):
    """The fallback without wrk: two client processes (the machine has 2 cores), asyncio each."""

    name = "aiohttp (2 processes)"
    processes = 2

    def _run(self, method: str, items_file: Path, seconds: float) -> Load:
        items = items_file.read_text().splitlines()
        return aiohttp_load([self.base], method, items, self.connections, seconds, self.processes)


def aiohttp_load(
    bases: list[str],
    method: str,
    items: list[str],
    connections: int,
    seconds: float,
    processes: int = 2,
) -> Load:
    """`connections` closed-loop workers over `processes` client processes for `seconds`:
    `GET base + item`, or `POST base/v1/score` with `item` as the body."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    shares = [connections // processes] * processes
    shares[0] += connections - sum(shares)
    children = [
        context.Process(target=_client_process, args=(bases, method, items, share, seconds, out))
        for share in shares
        if share
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=seconds + 60) for _ in children]
    for child in children:
        child.join()
    latencies = sorted(value for result in results for value in result[0])
    return Load(
        requests=len(latencies),
        seconds=max(result[1] for result in results),
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        errors=sum(result[2]["errors"] for result in results),
        bad_status=sum(result[2]["bad_status"] for result in results),
    )


# ---------------------------------------------------------------------------------------------
# set-up


def feature_records(orders: pl.DataFrame) -> list[tuple[bytes, bytes]]:
    """`CustomerFeatures` as the features service publishes them after a replay of `orders`."""
    clocks = orders.group_by("tenant_id", "customer_id").agg(pl.col("occurred_at").max())
    as_of = {
        (tenant, customer): int(moment.timestamp() * 1_000_000)
        for tenant, customer, moment in clocks.iter_rows()
    }
    return feature_payloads(orders, as_of, {})


def model_published(tag: str, orders: pl.DataFrame, metrics: dict) -> ModelPublished:
    return ModelPublished(
        tenant_id=TENANT,
        model_tag=tag,
        model_version=tag.split(":", 1)[1],
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        training_window=TimeWindow(
            start=orders["occurred_at"].min(), end=orders["occurred_at"].max()
        ),
        metrics=metrics,
    )


def wait_first_score(base: str, customer_id: str, timeout: float = 120.0) -> float:
    """Seconds until the score route answers 200 (the champion loaded, the population scored)."""
    began = time.monotonic()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(timeout=30) as client:
        while True:
            response = client.get(f"{base}/v1/customers/{customer_id}/score", headers=headers)
            if response.status_code == 200:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise RuntimeError(
                    f"no score after {timeout}s: {response.status_code} {response.text}"
                )
            time.sleep(0.3)


# ---------------------------------------------------------------------------------------------
# the run


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument("--rounds", type=int, default=5, help="floor/score pairs")
    cli.add_argument("--duration", type=float, default=6.0, help="seconds per load run")
    cli.add_argument("--connections", type=int, default=16, help="concurrent connections")
    cli.add_argument("--batch-connections", type=int, default=2)
    cli.add_argument("--batch-runs", type=int, default=3, help="POST /v1/score runs")
    cli.add_argument("--partitions", type=int, default=6, help="partitions of the topics")
    cli.add_argument(
        "--client", choices=("auto", "wrk", "aiohttp"), default="auto", help="load generator"
    )
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    cli.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="py-spy binary: record the service during the score rounds (implies --keep)",
    )
    return cli.parse_args()


def main() -> int:
    args = parse_args()
    args.keep = args.keep or args.py_spy is not None
    began = time.monotonic()
    data = data_file(args.data)
    settings = Settings(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=args.partitions
    )
    with work_dir("scoring", args.keep) as work:
        broker = EmbeddedBroker(settings).start()
        try:
            return run(args, data, work, broker, began)
        finally:
            broker.stop()


def run(
    args: argparse.Namespace, data: Path, work: Path, broker: EmbeddedBroker, began: float
) -> int:
    settings = broker.settings
    topics = Topics.with_prefix(settings.topic_prefix)
    print(f"data: {data}")
    print(
        f"load average at start: {load()} on {os.cpu_count()} CPUs (other work skews the numbers)"
    )
    print("cleaning with ingest's pipeline …", flush=True)
    orders = order_stream(data, work / "ingest", tenant_id=TENANT).orders
    customers = sorted(orders["customer_id"].unique().to_list())
    print(f"  {orders.height:,} orders, {len(customers):,} customers")

    print("training a bundle (train_and_backtest, no rolling origins) …", flush=True)
    started = time.monotonic()
    training = train_and_backtest(orders, rolling_origins=0)
    home = work / "bentoml"
    tag = store_bundle(training.bundle, home, work)
    print(f"  {tag} in {time.monotonic() - started:.0f} s")

    print(f"publishing {len(customers):,} CustomerFeatures and ModelPublished …", flush=True)
    asyncio.run(publish(settings, topics.customer_features, feature_records(orders)))
    announcement = model_published(tag, orders, headline_metrics(training.report))
    asyncio.run(
        publish(settings, topics.model_events, [(TENANT.encode(), announcement.to_bytes())])
    )

    print("starting the scoring service …", flush=True)
    log_path = work / "scoring.log"
    with running_stack(
        settings,
        log_path,
        services=("scoring",),
        BENTOML_HOME=str(home),
        RETENTION_API_KEYS=f"{API_KEY}:{TENANT}:read",
        RETENTION_LOG_LEVEL="WARNING",
    ) as stack:
        base = url(stack, "scoring")
        server_pid = stack.running[0].process.pid
        first = wait_first_score(base, customers[0])
        print(f"  ready; first score after another {first:.2f} s", flush=True)
        return measure(args, data, work, base, server_pid, customers, orders, began)


def measure(
    args: argparse.Namespace,
    data: Path,
    work: Path,
    base: str,
    server_pid: int,
    customers: list[str],
    orders: pl.DataFrame,
    began: float,
) -> int:
    wrk = shutil.which("wrk")
    kind: type[Generator] = AiohttpClients
    if args.client == "wrk" or (args.client == "auto" and wrk is not None):
        kind = Wrk
    generator = kind(base, work, args.connections, server_pid)
    print(f"load generator: {generator.name}, {args.connections} connections, closed loop")

    score_paths = [f"/v1/customers/{c}/score" for c in customers]
    shuffled = random.Random(1).sample(score_paths, len(score_paths))

    # Cold: every id once — reasons are computed on a customer's first score, then kept.
    cold = cold_pass(base, shuffled, args.connections)
    print(
        f"cold pass: {len(shuffled):,} first scores in {cold['seconds']:.1f} s "
        f"({len(shuffled) / cold['seconds']:,.0f}/s, p50 {cold['p50_ms']:.1f} ms "
        f"p99 {cold['p99_ms']:.1f} ms)",
        flush=True,
    )

    floors: list[Load] = []
    scores: list[Load] = []
    for round_number in range(1, args.rounds + 1):
        with recording(args.py_spy, server_pid, work / f"py-spy-floor-{round_number}.txt"):
            floors.append(generator.run("GET", ["/v1/ping"], args.duration))
        with recording(args.py_spy, server_pid, work / f"py-spy-score-{round_number}.txt"):
            scores.append(generator.run("GET", score_paths, args.duration))
        print(f"  round {round_number}: floor {describe(floors[-1])}")
        print(f"  round {round_number}: score {describe(scores[-1])}", flush=True)

    rng = random.Random(2)
    bodies = [json.dumps({"customer_ids": rng.sample(customers, BATCH)}) for _ in range(50)]
    batch_generator = kind(base, work, args.batch_connections, server_pid)
    batch_generator.runs = generator.runs
    batch_generator.run("POST", bodies, 3.0)  # warm: reasons of the sampled customers
    batches = [batch_generator.run("POST", bodies, args.duration) for _ in range(args.batch_runs)]
    failures = sum(r.errors + r.bad_status for r in (*floors, *scores, *batches))
    throughput = [s.rps / f.rps for f, s in zip(floors, scores, strict=True)]
    tail = [s.p99_ms / f.p99_ms for f, s in zip(floors, scores, strict=True)]
    floor_rps = statistics.median(f.rps for f in floors)
    score_rps = statistics.median(s.rps for s in scores)
    throughput_ratio = statistics.median(throughput)
    tail_ratio = statistics.median(tail)
    batch_rows = [b.rps * BATCH for b in batches]
    floor_cpu = statistics.median(f.cpu_ms for f in floors)
    score_cpu = statistics.median(s.cpu_ms for s in scores)

    rows = [
        ("data", data.name, f"{orders.height:,} orders, {len(customers):,} customers"),
        (
            "load generator",
            generator.name,
            f"{args.connections} connections, {args.duration:g} s runs",
        ),
        ("floor GET /v1/ping", f"{floor_rps:,.0f} rps", spread(floors)),
        ("score GET /v1/customers/{id}/score", f"{score_rps:,.0f} rps", spread(scores)),
        (
            "throughput score / floor",
            f"{throughput_ratio:.2f}",
            f"median of rounds {', '.join(f'{r:.2f}' for r in throughput)} "
            f"(of medians {score_rps / floor_rps:.2f}); "
            + verdict(throughput_ratio >= THROUGHPUT_TARGET, "≥ 0.60"),
        ),
        (
            "p99 score / floor",
            f"{tail_ratio:.2f}",
            f"median of rounds {', '.join(f'{r:.2f}' for r in tail)}; "
            + verdict(tail_ratio < P99_TARGET, "< 3x"),
        ),
        (
            "service CPU per request",
            f"{floor_cpu:.2f} / {score_cpu:.2f} ms",
            f"floor / score (medians): {floor_cpu / score_cpu:.2f}, the throughput ratio a "
            "CPU-bound service has with the cores to itself",
        ),
        (
            f"POST /v1/score ({BATCH:,} ids)",
            f"{statistics.median(batch_rows):,.0f} rows/s",
            f"{args.batch_connections} connections; {statistics.median(b.cpu_ms for b in batches):.0f}"
            " ms service CPU per batch; " + spread(batches),
        ),
        ("failed requests", f"{failures}", "errors and non-2xx answers over every run"),
    ]
    starved = [r for r in (*floors, *scores) if r.server_cpu < STARVED]
    print()
    print(table(rows))
    if starved:
        print(
            f"\n{len(starved)} of {len(floors) + len(scores)} runs had the service below "
            f"{STARVED:.0%} of a core under saturating load: other processes took its CPU, "
            "so their numbers measure the machine more than the service"
        )
    print(f"\nwhole benchmark: {time.monotonic() - began:.0f} s; load average now: {load()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "data": str(data),
                    "generator": generator.name,
                    "connections": args.connections,
                    "cold": cold,
                    "floor": [asdict(f) for f in floors],
                    "score": [asdict(s) for s in scores],
                    "batch": [asdict(b) for b in batches],
                    "throughput_ratio": throughput_ratio,
                    "p99_ratio": tail_ratio,
                    "cpu_ms_per_request": {"floor": floor_cpu, "score": score_cpu},
                    "batch_rows_per_s": statistics.median(batch_rows),
                },
                indent=2,
            )
        )
    return 0 if failures == 0 else 1


@contextlib.contextmanager
def recording(py_spy: Path | None, pid: int, output: Path) -> Iterator[None]:
    """py-spy attached to the service for one run (--py-spy): raw collapsed stacks at `output`."""
    if py_spy is None:
        yield
        return
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
    process = subprocess.Popen(
        [*command, "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        print(f"  profile: {output}")


def cold_pass(base: str, paths: list[str], connections: int) -> dict[str, float]:
    """Each path once, `connections` at a time (httpx, in this process: a set-up step whose
    numbers are informative only)."""

    async def go() -> dict[str, float]:
        latencies: list[float] = []
        queue = list(reversed(paths))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

            async def worker() -> None:
                while queue:
                    path = queue.pop()
                    started = time.perf_counter()
                    response = await client.get(path, timeout=60)
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            seconds = time.perf_counter() - began
        latencies.sort()
        return {
            "seconds": seconds,
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
        }

    return asyncio.run(go())


def describe(result: Load) -> str:
    return (
        f"{result.rps:8,.0f} rps  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
        f"CPU service {result.server_cpu:.0%} client {result.client_cpu:.0%}  "
        f"{result.cpu_ms:.2f} ms/req  "
        f"RSS {result.server_rss_mib:,.0f} MiB"
        + (
            f"  FAILED {result.errors + result.bad_status}"
            if result.errors + result.bad_status
            else ""
        )
    )


def spread(results: list[Load]) -> str:
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    low, high = min(r.rps for r in results), max(r.rps for r in results)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (medians); rps {low:,.0f}–{high:,.0f}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
