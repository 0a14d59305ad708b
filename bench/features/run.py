"""bench/features: replay throughput and steady-stream freshness of the features service.

Run from the repository root:

    uv run python bench/features/run.py            # about 2 minutes on a 2-core machine

What it does, on one embedded Tansu broker (or --bootstrap), in one run:

1. Cleans `online_retail_II` with ingest's own pipeline (tests/support/real_orders.py) and publishes every
   order event to `transactions` under a fresh topic prefix. Not timed.
2. Baseline: a bare aiokafka consumer with *manual assignment* of every partition (no group, so
   no join time), `getmany(max_records=<service max batch>)` from the beginning until it has
   received every published record. Nothing is decoded. Repeated (--baseline-runs), median kept.
   Two informational runs decode too: every payload into an `OrderEvent` model, and each batch
   with the service's own `decode_orders` (the least the service does per order).
3. Replay: starts the features service as a real process (tests/support/features_service.py) on
   an empty state directory, so every partition is rebuilt from offset 0. The timed span is from
   the service's *first partition assignment* (its "rebuilding partition" log line) to the
   *last CustomerFeatures published* (the largest record timestamp on `customer-features`, which
   the service's producer stamps at send time). The end is detected when every partition's
   `retention_features_consumer_lag` is 0 (the service commits a batch only after the broker
   acknowledged its vectors, so nothing is still in flight then). Startup (process start →
   connected) and the consumer-group join (connected → first assignment) are reported apart.
4. Freshness: with the service caught up, a paced producer sends --rate orders/s for --duration
   seconds. The orders are the II events in file order, re-keyed with fresh order and event ids
   (same tenant and customers, so each is a new order on an existing history). The producing
   time of each order is the wall clock just before `send`; its (partition, offset) comes from
   the send result. A downstream consumer follows `customer-features` and stamps each vector
   when it arrives. Reported:
   - per vector: arrival − producing time of the order at the vector's `source.offset` (the
     customer's last order in the service's batch) — the measure issue 4 names;
   - per order: arrival of the first vector covering the order (same customer, source.offset ≥
     the order's offset) − the order's producing time — the customer's wait, a bit stricter;
   - the same per vector with the vector's record timestamp (service send time) instead of
     arrival, i.e. without the broker hop and the downstream fetch;
   - the service's own `retention_features_freshness_seconds` histogram, the difference of two
     /metrics scrapes around the phase, quantiles interpolated within buckets as Prometheus'
     histogram_quantile does.

Targets (issue 4): service replay rate ≥ 1/3 of the bare consume rate; p99 freshness < 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests` is a package at the repo root, not an installed one
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402

from bench.harness import cpu_seconds, data_file, load, parser, percentile, table, verdict, work_dir  # noqa: E402
from retention_features.consumers.transactions import MAX_PARTITION_FETCH_BYTES  # noqa: E402
from retention_features.decoding import decode_orders  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_shared.events import OrderEvent, decode_event  # noqa: E402
from retention_shared.kafka.clients import aiokafka_options, ensure_topics  # noqa: E402
from retention_shared.kafka.watermarks import topic_partitions  # noqa: E402
from retention_shared.topics import Topics  # noqa: E402
from tests.support.features_service import (  # noqa: E402
    FeaturesProcess,
    read_to_end,
    wait_caught_up,
)
from tests.support.real_orders import order_stream, publish  # noqa: E402

RATIO_TARGET = 1 / 3
P99_TARGET = 0.5
FRESHNESS_METRIC = "retention_features_freshness_seconds"

Records = list[tuple[bytes, bytes]]


# ---------------------------------------------------------------------------------------------
# small helpers


def log_times(log_path: Path) -> dict[str, float]:
    """Wall times (epoch seconds) of the service's first 'connected' and assignment log lines."""
    found: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message", "")
        moment = datetime.fromisoformat(entry["ts"]).timestamp() if "ts" in entry else None
        if moment is None:
            continue
        if message == "connected to broker":
            found.setdefault("connected", moment)
        elif message == "rebuilding partition from the beginning":
            found.setdefault("assigned", moment)
    return found


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of an unlabelled Prometheus histogram."""
    buckets = {}
    for le, value in re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
        buckets[math.inf if le == "+Inf" else float(le)] = float(value)
    return buckets


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return lower  # beyond the largest finite bucket: its bound is all we know
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


@dataclass
class Usage:
    """CPU used by the service and the broker over a wall-clock window."""

    pids: dict[str, int | None]
    wall: float = field(default_factory=time.monotonic)
    cpu: dict[str, float | None] = field(init=False)

    def __post_init__(self) -> None:
        self.cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def since(self) -> str:
        wall = time.monotonic() - self.wall
        parts = []
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self.cpu[name]
            if now is not None and then is not None:
                parts.append(f"{name} {(now - then) / wall:.0%}")
        return f"CPU over {wall:.1f} s: " + ", ".join(parts) + " (100% = one core)"


class Profiler:
    """py-spy attached to the service for one phase (--py-spy): collapsed stacks in the work dir."""

    def __init__(self, py_spy: Path | None, pid: int, output: Path) -> None:
        self.process = None
        self.output = output
        if py_spy is not None:
            command = [str(py_spy), "record", "--pid", str(pid), "--rate", "100"]
            command += ["--nonblocking", "--format", "raw", "--output", str(output)]
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
            print(f"  profile: {self.output}")


def scrape(process: FeaturesProcess) -> str:
    return httpx.get(f"http://127.0.0.1:{process.port}/metrics", timeout=5).text


def each_event(payloads: list[bytes]) -> None:
    for payload in payloads:
        decode_event(OrderEvent, payload)


def rekeyed(records: Records, count: int) -> Records:
    """`count` orders made from the stream's events (cyclically) with fresh order and event ids."""
    out: Records = []
    run = uuid.uuid4().hex[:6]
    for i in range(count):
        key, value = records[i % len(records)]
        payload = json.loads(value)
        payload["order_id"] = f"bench{run}-{i}-{payload['order_id']}"
        payload["event_id"] = uuid.uuid4().hex
        out.append((key, json.dumps(payload, separators=(",", ":")).encode()))
    return out


# ---------------------------------------------------------------------------------------------
# 2. the bare consumer


async def bare_consume(
    settings: Settings,
    topic: str,
    expected: int,
    max_records: int,
    decode: Callable[[list[bytes]], object] | None = None,
) -> float:
    """Seconds for a manually assigned consumer to receive `expected` records from the start
    (and, with `decode`, to decode each partition's batch of payloads with it)."""
    # The service's fetch size: a replay is a stream of full fetches for both.
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        **aiokafka_options(settings),
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        started = time.perf_counter()
        await consumer.seek_to_beginning(*tps)
        received = 0
        while received < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            for batch in batches.values():
                received += len(batch)
                if decode is not None:
                    decode([record.value for record in batch])
        return time.perf_counter() - started
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------------------
# 4. the steady stream


@dataclass
class SteadyStream:
    sent: list[tuple[float, int, int, bytes]] = field(default_factory=list)  # t, part, offset, key
    observed: list[tuple[float, int, bytes, bytes]] = field(default_factory=list)  # t, ts, key, v
    produce_seconds: float = 0.0
    drain_seconds: float = 0.0


async def steady_stream(
    settings: Settings,
    topics: Topics,
    orders: Records,
    rate: float,
    features_from: dict[int, int],
    process: FeaturesProcess,
    partitions: int,
) -> SteadyStream:
    result = SteadyStream()
    # A live-like producer: no linger, each send goes out as soon as the previous request allows.
    producer = AIOKafkaProducer(acks="all", **aiokafka_options(settings))
    # A short fetch wait: on Tansu a consumer at the end of the log gets new data only with a
    # delay that follows fetch_max_wait_ms (see bench/README.md); the default 500 ms would be
    # measured as freshness.
    follower = AIOKafkaConsumer(
        enable_auto_commit=False, fetch_max_wait_ms=20, **aiokafka_options(settings)
    )
    await producer.start()
    await follower.start()
    stop = asyncio.Event()

    async def follow() -> None:
        tps = [TopicPartition(topics.customer_features, p) for p in range(partitions)]
        follower.assign(tps)
        for tp in tps:
            follower.seek(tp, features_from.get(tp.partition, 0))
        while not stop.is_set():
            batches = await follower.getmany(timeout_ms=100)
            arrived = time.time()
            for batch in batches.values():
                result.observed.extend((arrived, r.timestamp, r.key, r.value) for r in batch)

    following = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.5)  # the follower is assigned and positioned before the first order
        pending = []
        started = time.monotonic()
        sent = 0
        while sent < len(orders):
            due = min(len(orders), int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                key, value = orders[sent]
                moment = time.time()
                pending.append(
                    (moment, key, await producer.send(topics.transactions, value, key=key))
                )
                sent += 1
            await asyncio.sleep(0.002)
        result.produce_seconds = time.monotonic() - started
        for moment, key, future in pending:
            metadata = await future
            result.sent.append((moment, metadata.partition, metadata.offset, key))
        drained = time.monotonic()
        await asyncio.to_thread(wait_caught_up, [process], partitions, 120, 0.5)
        result.drain_seconds = time.monotonic() - drained
        await asyncio.sleep(1.0)  # the last vectors reach the follower
    finally:
        stop.set()
        await following
        await follower.stop()
        await producer.stop()
    return result


@dataclass
class Freshness:
    per_vector: list[float]
    per_order: list[float]
    per_vector_published: list[float]
    uncovered: int


def freshness(stream: SteadyStream) -> Freshness:
    sent_at = {(p, o): t for t, p, o, _ in stream.sent}
    per_vector, per_vector_published = [], []
    covering: dict[bytes, list[tuple[int, int, float]]] = {}  # key → (partition, offset, arrival)
    for arrived, timestamp, key, value in stream.observed:
        source = json.loads(value).get("source")
        if not source:
            continue
        where = (source["partition"], source["offset"])
        produced = sent_at.get(where)
        if produced is None:
            continue  # a vector of the replay published late, not of this phase
        per_vector.append(arrived - produced)
        per_vector_published.append(timestamp / 1000 - produced)
        covering.setdefault(key, []).append((*where, arrived))
    for vectors in covering.values():
        vectors.sort()
    per_order, uncovered = [], 0
    for produced, partition, offset, key in stream.sent:
        vectors = covering.get(key, [])
        at = bisect.bisect_left(vectors, (partition, offset, -math.inf))
        if at == len(vectors):
            uncovered += 1
            continue
        per_order.append(vectors[at][2] - produced)
    return Freshness(per_vector, per_order, per_vector_published, uncovered)


# ---------------------------------------------------------------------------------------------
# the run


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument("--rate", type=float, default=1000.0, help="steady orders/s")
    cli.add_argument("--duration", type=float, default=20.0, help="steady stream seconds")
    cli.add_argument(
        "--max-batch",
        type=int,
        default=Settings().features_max_batch,
        help="RETENTION_FEATURES_MAX_BATCH (default: the service's own)",
    )
    cli.add_argument("--partitions", type=int, default=6, help="partitions of the topics")
    cli.add_argument("--baseline-runs", type=int, default=3)
    cli.add_argument("--bootstrap", default=None, help="use this broker instead of Tansu")
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    cli.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="py-spy binary: profile the service (implies --keep)",
    )
    return cli.parse_args()


def main() -> int:
    args = parse_args()
    args.keep = args.keep or args.py_spy is not None
    began = time.monotonic()
    data = data_file(args.data)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = Settings(topic_prefix=prefix, topic_partitions=args.partitions)
    with work_dir("features", args.keep) as work:
        broker = None
        if args.bootstrap:
            settings = settings.model_copy(update={"kafka_bootstrap": args.bootstrap})
            asyncio.run(ensure_topics(settings))
        else:
            broker = EmbeddedBroker(settings).start()
            settings = broker.settings
        topics = Topics.with_prefix(prefix)
        process = FeaturesProcess(settings, work / "data", work / "features.log", args.max_batch)
        try:
            broker_pid = broker.process.pid if broker is not None and broker.process else None
            return run(args, data, work, settings, topics, process, broker_pid, began)
        finally:
            process.stop()
            if broker is not None:
                broker.stop()


def run(
    args: argparse.Namespace,
    data: Path,
    work: Path,
    settings: Settings,
    topics: Topics,
    process: FeaturesProcess,
    broker_pid: int | None,
    began: float,
) -> int:
    print(f"data: {data}")
    print(
        f"load average at start: {load()} on {os.cpu_count()} CPUs (other work skews the numbers)"
    )
    print("cleaning with ingest's pipeline …", flush=True)
    stream = order_stream(data, work / "ingest")
    records = stream.records
    orders = len(records)
    customers = stream.orders.select("tenant_id", "customer_id").n_unique()
    print(f"  {orders:,} order events, {customers:,} customers", flush=True)

    print(f"publishing them to {topics.transactions} ({args.partitions} partitions) …", flush=True)
    asyncio.run(publish(settings, topics.transactions, records))

    print(f"baseline: bare aiokafka consume × {args.baseline_runs} …", flush=True)
    bare_runs = [
        asyncio.run(bare_consume(settings, topics.transactions, orders, args.max_batch))
        for _ in range(args.baseline_runs)
    ]
    bare_seconds = statistics.median(bare_runs)
    model_seconds = asyncio.run(
        bare_consume(settings, topics.transactions, orders, args.max_batch, decode=each_event)
    )
    decoding_seconds = asyncio.run(
        bare_consume(settings, topics.transactions, orders, args.max_batch, decode=decode_orders)
    )
    bare_rate = orders / bare_seconds

    print("replay: features service from empty state …", flush=True)
    spawned = time.time()
    process.start()
    assert process.process is not None
    deadline = time.monotonic() + 60
    while "assigned" not in log_times(process.log_path):
        if time.monotonic() > deadline or process.process.poll() is not None:
            raise RuntimeError(f"the service was not assigned; see {process.log_path}")
        time.sleep(0.05)
    pids = {"service": process.process.pid, "broker": broker_pid}
    usage = Usage(pids)
    profiler = Profiler(args.py_spy, process.process.pid, work / "py-spy-replay.txt")
    wait_caught_up([process], args.partitions, timeout=240, settle=0.5)
    profiler.stop()
    replay_usage = usage.since()
    vectors = asyncio.run(read_to_end(settings, topics.customer_features))
    moments = log_times(process.log_path)
    if "assigned" not in moments or "connected" not in moments:
        raise RuntimeError(f"no assignment in the service log {process.log_path}")
    first_published = min(r.timestamp for r in vectors) / 1000
    last_published = max(r.timestamp for r in vectors) / 1000
    startup = moments["connected"] - spawned
    join = moments["assigned"] - moments["connected"]
    replay_seconds = last_published - moments["assigned"]
    service_rate = orders / replay_seconds
    ratio = service_rate / bare_rate
    features_from: dict[int, int] = {}
    for record in vectors:
        features_from[record.partition] = max(
            features_from.get(record.partition, 0), record.offset + 1
        )

    count = int(args.rate * args.duration)
    print(f"freshness: {count:,} new orders at {args.rate:g}/s …", flush=True)
    steady_orders = rekeyed(records, count)
    before = histogram(scrape(process), FRESHNESS_METRIC)
    usage = Usage({**pids, "bench": os.getpid()})
    profiler = Profiler(args.py_spy, process.process.pid, work / "py-spy-steady.txt")
    steady = asyncio.run(
        steady_stream(
            settings, topics, steady_orders, args.rate, features_from, process, args.partitions
        )
    )
    profiler.stop()
    steady_usage = usage.since()
    after = histogram(scrape(process), FRESHNESS_METRIC)
    phase = {le: after[le] - before.get(le, 0.0) for le in after}
    fresh = freshness(steady)
    if not fresh.per_vector:
        raise RuntimeError("no CustomerFeatures of the steady stream observed")

    rows: list[tuple[str, str, str]] = []
    rows += [
        ("orders replayed", f"{orders:,}", f"{customers:,} customers, {data.name}"),
        ("CustomerFeatures published", f"{len(vectors):,}", "during the replay"),
        ("service startup", f"{startup:.2f} s", "process start → connected to broker"),
        ("group join", f"{join:.2f} s", "connected → first assignment (not timed)"),
        ("first vector after", f"{first_published - moments['assigned']:.2f} s", "assignment"),
        ("service replay", f"{replay_seconds:.2f} s", "first assignment → last vector published"),
        (
            "bare consume",
            f"{bare_seconds:.2f} s",
            "median of " + ", ".join(f"{s:.2f}" for s in bare_runs),
        ),
        ("service orders/s", f"{service_rate:,.0f}", ""),
        (
            "  incl. startup + join",
            f"{orders / (last_published - spawned):,.0f}",
            "from process start",
        ),
        ("bare aiokafka orders/s", f"{bare_rate:,.0f}", "manual assignment, getmany"),
        ("ratio service / bare", f"{ratio:.3f}", verdict(ratio >= RATIO_TARGET, "≥ 0.333")),
        (
            "  bare + decode_event",
            f"{orders / model_seconds:,.0f}",
            "orders/s, info: the same consume building every OrderEvent model",
        ),
        (
            "  bare + decode_orders",
            f"{orders / decoding_seconds:,.0f}",
            "orders/s, info: … with the service's own decoding (its first step)",
        ),
    ]
    achieved = len(steady.sent) / steady.produce_seconds
    rows += [
        (
            "steady stream",
            f"{achieved:,.0f} orders/s",
            f"{len(steady.sent):,} orders in {steady.produce_seconds:.1f} s",
        ),
        ("caught up after last send", f"{steady.drain_seconds:.2f} s", ""),
        (
            "vectors observed",
            f"{len(fresh.per_vector):,}",
            f"orders never covered: {fresh.uncovered}",
        ),
    ]
    for label, values, target in (
        ("freshness per vector", fresh.per_vector, True),
        ("freshness per order", fresh.per_order, False),
        ("  at service send time", fresh.per_vector_published, False),
    ):
        if not values:
            continue
        p50, p99 = percentile(values, 50), percentile(values, 99)
        note = (
            verdict(p99 < P99_TARGET, "p99 < 500 ms")
            if target
            else f"max {max(values) * 1000:.0f} ms"
        )
        rows.append((label, f"p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms", note))
    h50, h99 = histogram_quantile(0.5, phase), histogram_quantile(0.99, phase)
    if h50 is not None and h99 is not None:
        rows.append(
            (
                "service histogram",
                f"p50 {h50 * 1000:.0f} ms  p99 {h99 * 1000:.0f} ms",
                f"{FRESHNESS_METRIC}, {phase.get(math.inf, 0):,.0f} obs.",
            )
        )
    print()
    print(table(rows))
    print(f"\nreplay {replay_usage}\nsteady stream {steady_usage}")
    print(f"\nwhole benchmark: {time.monotonic() - began:.0f} s; load average now: {load()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "data": str(data),
                    "orders": orders,
                    "service_orders_per_s": service_rate,
                    "bare_orders_per_s": bare_rate,
                    "bare_decode_orders_per_s": orders / decoding_seconds,
                    "ratio": ratio,
                    "startup_s": startup,
                    "join_s": join,
                    "replay_s": replay_seconds,
                    "freshness_per_vector_p50_s": percentile(fresh.per_vector, 50),
                    "freshness_per_vector_p99_s": percentile(fresh.per_vector, 99),
                    "freshness_per_order_p50_s": percentile(fresh.per_order, 50),
                    "freshness_per_order_p99_s": percentile(fresh.per_order, 99),
                    "histogram_p50_s": h50,
                    "histogram_p99_s": h99,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
