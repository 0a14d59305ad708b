"""bench/ingest: a whole-file upload through the ingest service against bare polars + aiokafka.

Run from the repository root:

    uv run python bench/ingest/run.py              # about a minute on a 2-core machine

One embedded Tansu broker (or --bootstrap), one ingest service process, and --runs rounds (3) of
three contenders, interleaved so that a change in the machine's load hits them alike; each
contender's time is its median. Every baseline run publishes to a fresh topic prefix; the service
has its own (6 partitions, like the service's topics).

- Baseline "plain" (a subprocess; the issue's baseline, "only reads + cleans with polars and
  publishes the same events with a bare aiokafka producer"): `pl.read_parquet` of the whole file,
  the ARCHITECTURE data rules written here as one polars query (drop missing customer /
  non-positive price / zero quantity / unparseable, exact duplicate lines, orders naming two
  customers; cancellations kept), lines grouped into `OrderEvent` JSON, and published with a
  bare `AIOKafkaProducer` (acks=all, linger 5 ms, 512 KiB batches: the settings of the service's
  producer), every send first, then every acknowledgement. Timed from just before the read to
  the last acknowledgement (connecting is not timed). Checked to give the very same events as
  the service: same event ids and net total, and byte-identical payloads to the next baseline.
- Baseline "pipeline" (a subprocess): the same, but read + clean + group with the service's own
  library code, `retention_ingest.file_ingest.ingest_file` (chunked, spilled to Parquet so memory
  stays bounded), payloads by `order_event_payloads`, and the same bare producer. service / this
  is the cost of the service's shell alone (HTTP upload, background task, status store,
  rejects.csv, publishing in batches of 5,000).
- Service: the ingest service as a real process (tests/support/stack.py `running_stack`),
  `POST /v1/uploads` of the file, then `GET /v1/uploads/{id}` every 50 ms until `done`. Timed
  from just before the POST to the first poll that sees `done`: the service sets `done` only
  after every `OrderEvent` was acknowledged and `RetrainRequested` was published. Cross-checked
  by reading `transactions` back to its fetch high watermark (every event id once per upload,
  net total) and `retrain-requests` (one request per upload).

Peak resident memory: the process tree is sampled every 50 ms with psutil (the service during
each upload, each baseline process throughout), plus the kernel's high-water mark (VmHWM of the
service process and of each baseline process). CPU seconds of the measured process, the
broker and every other process on the machine are printed per run: other work on the 2 cores
(a test run) shows up directly in the times, and a run where it did is flagged.

Targets (issue 3): service time / plain baseline time ≤ 1.5; the service under 1 GB resident.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests` is a package at the repo root, not an installed one
    sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.harness import cpu_seconds, data_file, load, parser, work_dir  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_shared.events import OrderKind, order_event_id  # noqa: E402
from retention_shared.kafka.clients import aiokafka_options, ensure_topics  # noqa: E402
from retention_shared.topics import Topics  # noqa: E402

RATIO_TARGET = 1.5
RSS_TARGET = 1 << 30
TENANT = "default"  # the tenant of tests/support/stack.py's admin key
SOURCE = "bench"  # `source` of the baselines' events (the service writes "upload:<id>")
TIMEZONE = "Europe/London"  # the service's default for naive timestamps
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.05
OTHER_LOAD_WARNING = 0.25  # cores used by processes other than ours during a phase

# ---------------------------------------------------------------------------------------------
# peak resident memory


def _tree_rss(root: Any) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(Exception):  # a child may exit between listing and reading
            total += process.memory_info().rss
    return total


class RssSampler:
    """Resident memory of a process and its children, sampled every 50 ms on a thread."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        import psutil  # in the locked environment (via bentoml), not a declared dependency

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = _tree_rss(self.process)
            except Exception:  # the process is gone
                return
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def vm_hwm(pid: int) -> int | None:
    """The kernel's peak resident set of one process since it started (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have used so far (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by processes other than ours (the machine's busy time minus ours) in a window."""

    def __init__(self) -> None:
        self.busy = busy_cpu_seconds()
        self.own = self._own()
        self.wall = time.monotonic()

    @staticmethod
    def _own() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def since(self, measured: float) -> tuple[float, float] | None:
        """(CPU seconds of others, their average cores) given the CPU seconds of the measured
        processes (service or baseline, broker) in the window; None without /proc/stat."""
        busy = busy_cpu_seconds()
        if busy is None or self.busy is None:
            return None
        others = max(0.0, busy - self.busy - measured - (self._own() - self.own))
        return others, others / max(time.monotonic() - self.wall, 1e-9)


# ---------------------------------------------------------------------------------------------
# the baselines (run as `run.py --child MODE ...` in their own process)

UCI_NAMES = {  # canonical name -> (Online Retail II name, Online Retail I name)
    "order_id": ("Invoice", "InvoiceNo"),
    "product_id": ("StockCode", "StockCode"),
    "quantity": ("Quantity", "Quantity"),
    "order_datetime": ("InvoiceDate", "InvoiceDate"),
    "unit_price": ("Price", "UnitPrice"),
    "customer_id": ("Customer ID", "CustomerID"),
    "country": ("Country", "Country"),
}


def _id_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An id as trimmed text; a whole float (17850.0) as 17850; empty as null."""
    if dtype.is_float():
        whole = column.is_finite() & (column == column.floor())
        text = pl.when(whole).then(column.cast(pl.Int64).cast(pl.String))
        return text.otherwise(pl.when(column.is_finite()).then(column.cast(pl.String)))
    text = column.cast(pl.String).str.strip_chars()
    stem = text.str.strip_suffix(".0")
    text = (
        pl.when(text.str.ends_with(".0") & stem.cast(pl.Int64, strict=False).is_not_null())
        .then(stem)
        .otherwise(text)
    )
    return pl.when(text != "").then(text)


def _number(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A number as a finite Float64, else null (unparseable, NaN, inf)."""
    if dtype.is_numeric():
        value = column.cast(pl.Float64)
    else:
        value = column.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def plain_polars_events(path: Path) -> tuple[pl.DataFrame, int]:
    """Read the whole UCI file with polars and clean it with one query: (events, rows read).

    The cleaning rules of the README; events as ingest defines them (one per customer, order and
    kind, lines in file order, sorted by time then first line, UTC timestamps).
    """
    raw = pl.read_parquet(path)
    names = {
        canonical: next(n for n in choices if n in raw.columns)
        for canonical, choices in UCI_NAMES.items()
    }
    originals = raw.columns
    schema = raw.schema

    def source(canonical: str) -> tuple[pl.Expr, pl.DataType]:
        return pl.col(names[canonical]), schema[names[canonical]]

    date, date_type = source("order_datetime")
    if not isinstance(date_type, pl.Datetime):
        raise SystemExit("the plain baseline reads typed (Parquet) timestamps only")
    occurred_at = (
        date.dt.replace_time_zone(TIMEZONE, ambiguous="earliest", non_existent="null")
        if date_type.time_zone is None
        else date
    ).dt.convert_time_zone("UTC")
    quantity, price = _number(*source("quantity")), _number(*source("unit_price"))
    country = source("country")[0].cast(pl.String).str.strip_chars()
    lines = (
        raw.lazy()
        .with_row_index("row")
        .with_columns(
            customer_id=_id_text(*source("customer_id")),
            order_id=_id_text(*source("order_id")),
            product_id=_id_text(*source("product_id")),
            occurred_at=occurred_at,
            quantity=quantity,
            unit_price=price,
            country=pl.when(country != "").then(country),
        )
        .filter(
            pl.all_horizontal(
                pl.col("customer_id", "order_id", "product_id", "occurred_at").is_not_null()
            )
            & pl.col("quantity").is_not_null()
            & (pl.col("unit_price") > 0)
            & (pl.col("quantity") != 0)
        )
        # Exact duplicate lines (every original column equal): the first copy stays.
        .unique(subset=originals, keep="first", maintain_order=True)
        .with_columns(
            kind=pl.when(pl.col("order_id").str.contains(r"^C\d") | (pl.col("quantity") < 0))
            .then(pl.lit("cancellation"))
            .otherwise(pl.lit("purchase"))
        )
        # An order (and kind) naming two customers: none of its lines is guessed at.
        .filter(pl.col("customer_id").n_unique().over("order_id", "kind") == 1)
        .with_columns(
            quantity=pl.when(pl.col("kind") == "cancellation")
            .then(-pl.col("quantity").abs())
            .otherwise(pl.col("quantity").abs())
        )
        .with_columns(amount=pl.col("quantity") * pl.col("unit_price"))
    )
    events = (
        lines.group_by("customer_id", "order_id", "kind")
        .agg(
            pl.col("occurred_at").min(),
            pl.struct("product_id", "quantity", "unit_price").alias("lines"),
            pl.col("amount").sum().round(6).alias("total"),
            pl.col("country").drop_nulls().first(),
            pl.col("row").min().alias("first_row"),
        )
        .sort("occurred_at", "first_row")
        .collect()
    )
    kinds = {kind.value: kind for kind in OrderKind}
    event_ids = [
        order_event_id(TENANT, order, kinds[kind])
        for order, kind in zip(events["order_id"], events["kind"], strict=True)
    ]
    events = events.with_columns(
        pl.Series("event_id", event_ids, dtype=pl.String),
        pl.lit(TENANT).alias("tenant_id"),
        pl.lit(None, pl.String).alias("currency"),
        pl.lit(SOURCE).alias("source"),
    )
    return events, raw.height


def plain_payloads(events: pl.DataFrame) -> list[bytes]:
    """Each event as `OrderEvent` JSON, straight from polars."""
    fields = [
        "event_id",
        "tenant_id",
        "order_id",
        "customer_id",
        "occurred_at",
        "kind",
        "lines",
        "total",
        "currency",
        "country",
        "source",
    ]
    document = pl.struct(
        pl.lit(1).alias("schema_version"),
        pl.lit("OrderEvent").alias("event_type"),
        *fields,
        pl.lit(0).alias("version"),  # a first upload: no amendments, nothing withdrawn
        pl.lit(False).alias("withdrawn"),
    )
    return events.select(document.struct.json_encode()).to_series().cast(pl.Binary).to_list()


def event_keys(events: pl.DataFrame) -> list[bytes]:
    keys = pl.concat_str(pl.col("tenant_id"), pl.lit(":"), pl.col("customer_id"))
    return events.select(keys).to_series().cast(pl.Binary).to_list()


def bare_producer(settings: Settings, linger_ms: int, batch_bytes: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=batch_bytes,
        **aiokafka_options(settings),
    )


async def baseline(args: argparse.Namespace) -> dict[str, Any]:
    """One baseline run in this process; returns timings, counts and digests as JSON-able."""
    if args.child == "pipeline":  # imported before the clock starts, as in the service
        from retention_ingest.file_ingest import ingest_file
        from retention_ingest.order_events import order_event_payloads
    settings = Settings(kafka_bootstrap=args.bootstrap)
    producer = bare_producer(settings, args.linger_ms, args.batch_bytes)
    await producer.start()  # connecting is not timed: the service's producer is connected too
    try:
        started = time.perf_counter()
        if args.child == "plain":
            events, rows = plain_polars_events(args.data)
            payloads, keys = plain_payloads(events), event_keys(events)
        else:
            result = ingest_file(
                args.data, tenant_id=TENANT, source=SOURCE, work_dir=args.work, timezone=TIMEZONE
            )
            events, rows = result.events().collect(), result.rows_read
            payloads, keys = order_event_payloads(events), event_keys(events)
        cleaned = time.perf_counter()
        pending = [
            await producer.send(args.topic, value, key=key)
            for key, value in zip(keys, payloads, strict=True)
        ]
        acknowledged = await asyncio.gather(*pending)
        finished = time.perf_counter()
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for metadata in acknowledged:
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": args.child,
        "rows": rows,
        "events": events.height,
        "acknowledged": len(acknowledged),
        "high_watermarks": sum(ends.values()),
        "clean_seconds": cleaned - started,
        "publish_seconds": finished - cleaned,
        "seconds": finished - started,
        "net_total": round(float(events["total"].sum()), 2),
        "ids_digest": digest(events["event_id"].to_list()),
        "payloads_digest": digest(payloads),
        # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork+exec.
        "peak_rss": vm_hwm(os.getpid()),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def digest(values: list[str] | list[bytes]) -> str:
    sha = hashlib.sha256()
    for value in sorted(values):
        sha.update(value.encode() if isinstance(value, str) else value)
        sha.update(b"\n")
    return sha.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# the parent: timed runs


@dataclass
class Run:
    """One timed run of the service or of a baseline."""

    rows: int = 0
    events: int = 0
    seconds: float = 0.0
    peak_sampled: int = 0
    peak_kernel: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    other_cores: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    """The runs of one contender; its time is their median."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def rows(self) -> int:
        return self.runs[0].rows

    @property
    def events(self) -> int:
        return self.runs[0].events

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def median_run(self) -> Run:
        ordered = sorted(self.runs, key=lambda run: run.seconds)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def peak_sampled(self) -> int:
        return max(run.peak_sampled for run in self.runs)

    @property
    def peak_kernel(self) -> int | None:
        kernel = [run.peak_kernel for run in self.runs if run.peak_kernel is not None]
        return max(kernel) if kernel else None

    @property
    def peak(self) -> int:
        return max(self.peak_sampled, self.peak_kernel or 0)


def fresh_topics(settings: Settings, name: str) -> Settings:
    prefix = f"bench-ingest-{uuid.uuid4().hex[:6]}-{name}."
    phased = settings.model_copy(update={"topic_prefix": prefix})
    asyncio.run(ensure_topics(phased))
    return phased


def run_baseline(
    mode: str, args: argparse.Namespace, settings: Settings, work: Path, pids: dict[str, int | None]
) -> Run:
    """One baseline run in a child process, on topics of its own. `pids`: the broker and the
    (idle) service, whose CPU is reported apart from other processes'."""
    phased = fresh_topics(settings, mode)
    topic = Topics.with_prefix(phased.topic_prefix).transactions
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
    command += ["--bootstrap", settings.kafka_bootstrap, "--topic", topic]
    command += ["--data", str(args.data), "--work", str(work / f"baseline-{mode}")]
    command += ["--linger-ms", str(args.linger_ms), "--batch-bytes", str(args.batch_bytes)]
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    others = OtherLoad()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with RssSampler(child.pid) as sampler:
        out, err = child.communicate(timeout=300)
    if child.returncode != 0:
        raise RuntimeError(f"baseline {mode} failed:\n{err.decode(errors='replace')[-4000:]}")
    found = json.loads(out.decode().strip().splitlines()[-1])
    run = Run(found["rows"], found["events"], found["seconds"], sampler.peak, found["peak_rss"])
    # The child's whole life (imports, exit) as the kernel counted it once it was waited for.
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu["process"] = (waited.ru_utime + waited.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    for name, pid in pids.items():
        now, then = cpu_seconds(pid), before[name]
        if now is not None and then is not None:
            run.cpu[name] = now - then
    other = others.since(sum(run.cpu.values()))
    if other is not None:
        run.cpu["others"], run.other_cores = other
    run.detail = found
    return run


def log_moment(log_path: Path, message: str, upload_id: str) -> float | None:
    """Wall time (epoch seconds) of the service's JSON log line with `message` for an upload."""
    for line in log_path.read_text(errors="replace").splitlines():
        _, _, text = line.partition("| ")
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if entry.get("message") == message and entry.get("upload_id", upload_id) == upload_id:
            return datetime.fromisoformat(entry["ts"]).timestamp() if "ts" in entry else None
    return None


class ServiceUnderTest:
    """The ingest service, started by tests/support/stack.py, and uploads to it."""

    def __init__(self, stack: Any, log_path: Path, broker_pid: int | None) -> None:
        import psutil

        from tests.support.stack import url

        self.stack = stack
        self.log_path = log_path
        self.pid = stack.running[0].process.pid
        self.base = url(stack, "ingest")
        self.broker_pid = broker_pid
        self.idle_rss = _tree_rss(psutil.Process(self.pid))
        self.topics = Topics.with_prefix(stack.settings.topic_prefix)

    def upload(self, args: argparse.Namespace, profile: Path | None) -> Run:
        """POST the file, poll until done; timed from the POST to the first poll seeing done."""
        import httpx

        from tests.support.stack import auth

        profiler = None
        if profile is not None:
            command = [str(args.py_spy), "record", "--pid", str(self.pid), "--rate", "200"]
            command += ["--nonblocking", "--threads", "--format", "raw", "--output", str(profile)]
            profiler = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(1.0)  # py-spy attached before the upload starts
        pids = {"process": self.pid, "broker": self.broker_pid}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        others = OtherLoad()
        moments: dict[str, float] = {}
        with RssSampler(self.pid) as sampler, httpx.Client(headers=auth(), timeout=60) as client:
            wall_start = time.time()
            started = time.perf_counter()
            with args.data.open("rb") as file:
                answer = client.post(
                    f"{self.base}/v1/uploads", files={"file": (args.data.name, file)}
                )
            moments["accepted (202)"] = time.perf_counter() - started
            if answer.status_code != 202:
                raise RuntimeError(f"upload refused: {answer.status_code} {answer.text}")
            upload_id = answer.json()["upload_id"]
            deadline = started + args.timeout
            while True:
                status = client.get(f"{self.base}/v1/uploads/{upload_id}").json()
                now = time.perf_counter() - started
                progress = status.get("progress") or {}
                if status["state"] == "running":
                    moments.setdefault("running", now)
                if "orders" in progress:
                    moments.setdefault("cleaned + grouped + rejects.csv", now)
                if progress.get("orders_published"):
                    moments.setdefault("first batch acked", now)
                if status["state"] in ("done", "failed"):
                    moments[status["state"]] = now
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"upload not done after {args.timeout} s: {status}")
                time.sleep(POLL_SECONDS)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        if status["state"] != "done":
            raise RuntimeError(f"upload failed: {status}")
        progress = status["progress"]
        run = Run(progress["rows_read"], progress["orders_published"], moments["done"])
        run.peak_sampled, run.peak_kernel = sampler.peak, vm_hwm(self.pid)
        for name, pid in pids.items():
            now_cpu, then = cpu_seconds(pid), before[name]
            if now_cpu is not None and then is not None:
                run.cpu[name] = now_cpu - then
        other = others.since(sum(run.cpu.values()))
        if other is not None:
            run.cpu["others"], run.other_cores = other
        logged = log_moment(self.log_path, "upload done", upload_id)
        if logged is not None:
            moments["'upload done' logged"] = logged - wall_start
        run.detail = {"moments": moments, "progress": progress, "result": status["result"]}
        return run

    def read_back(self) -> dict[str, Any]:
        """Everything on the service's transactions and retrain-requests topics."""
        from tests.support.features_service import read_to_end

        settings = self.stack.settings
        records = asyncio.run(read_to_end(settings, self.topics.transactions))
        retrains = asyncio.run(read_to_end(settings, self.topics.retrain_requests))
        decoded = [json.loads(record.value) for record in records]
        copies = Counter(event["event_id"] for event in decoded)
        return {
            "records": len(records),
            "ids_digest": digest(list(copies)),
            "copies": sorted(set(copies.values())),
            "net_total": round(sum(event["total"] for event in decoded), 2),
            "retrain_requests": len(retrains),
        }


# ---------------------------------------------------------------------------------------------
# report


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        last = len(row) - 1  # the first and last columns are text, the others numbers
        cells = [
            f"{c:<{w}}" if i in (0, last) else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def report(
    service: Phase, baselines: list[Phase], found: dict[str, Any], idle_rss: int, elapsed: float
) -> list[str]:
    """Print the results; returns the names of failed checks."""
    phases = [service, *baselines]
    print()
    rows = []
    for phase in phases:
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in phase.median_run.cpu.items())
        rows.append(
            [
                phase.name,
                f"{phase.rows:,}",
                f"{phase.events:,}",
                f"{phase.seconds:.2f}",
                " ".join(f"{run.seconds:.2f}" for run in phase.runs),
                f"{phase.rate:,.0f}",
                mib(phase.peak_sampled),
                mib(phase.peak_kernel),
                cpu,
            ]
        )
    header = ["phase", "rows", "events", "seconds", "runs (s)", "rows/s", "peak RSS", "kernel"]
    print(table([*header, "CPU s of the median run"], rows))
    print(
        "  seconds: median; upload start (service) / read start (baselines) → last event acked\n"
        "  peak RSS: process tree sampled every 50 ms, max over runs; kernel: VmHWM of the\n"
        "  service process (since its start) / VmHWM of the baseline process\n"
        f"  service idle before the first upload: {mib(idle_rss)}"
    )
    busy = [
        f"{phase.name} #{number} {run.other_cores:.2f}"
        for phase in phases
        for number, run in enumerate(phase.runs, 1)
        if (run.other_cores or 0) > OTHER_LOAD_WARNING
    ]
    if busy:
        print(
            "  WARNING: other processes used the CPUs during "
            + ", ".join(busy)
            + " (average cores); those times are skewed — run on an idle machine"
        )
    print()
    ratio_rows = []
    for phase in baselines:
        ratio = service.seconds / phase.seconds
        pairs = " ".join(
            f"{s.seconds / b.seconds:.2f}" for s, b in zip(service.runs, phase.runs, strict=True)
        )
        note = "issue's baseline" if phase is baselines[0] else "service shell only"
        ratio_rows.append(
            [
                f"service / {phase.name}",
                f"{ratio:.2f}x",
                pairs,
                f"≤ {RATIO_TARGET}x",
                verdict(ratio <= RATIO_TARGET),
                note,
            ]
        )
    ok_rss = service.peak < RSS_TARGET
    ratio_rows.append(
        ["service peak RSS", mib(service.peak), "", "< 1 GiB", verdict(ok_rss), "max over runs"]
    )
    print(table(["time ratio", "median", "per run", "target", "", ""], ratio_rows))

    print("\nservice timeline (s after upload start, first poll that saw it):")
    names = list(service.runs[0].detail["moments"])
    timeline = [
        [name, *(f"{run.detail['moments'].get(name, math.nan):.2f}" for run in service.runs)]
        for name in names
    ]
    print(table(["", *(f"#{n}" for n in range(1, len(service.runs) + 1))], timeline))
    for phase in baselines:
        run = phase.median_run.detail
        print(
            f"{phase.name} (median run): read + clean + payloads {run['clean_seconds']:.2f} s,"
            f" publish → last ack {run['publish_seconds']:.2f} s"
        )

    uploads = len(service.runs)
    checks = []
    for number, run in enumerate(service.runs, 1):
        progress, result = run.detail["progress"], run.detail["result"]
        checks += [
            (
                f"service #{number}: rows read = accepted + rejected",
                progress["rows_read"] == progress["accepted"] + progress["rejected"],
            ),
            (
                f"service #{number}: orders published = events of the result",
                run.events == result["order_events"],
            ),
        ]
    expected = baselines[0].runs[0].detail
    checks += [
        (
            f"service: {uploads} × events on transactions (to the fetch high watermark)",
            found["records"] == uploads * service.events,
        ),
        (
            "service: same event ids as the baselines, each once per upload",
            found["ids_digest"] == expected["ids_digest"] and found["copies"] == [uploads],
        ),
        (
            "service: same net total as the baselines",
            abs(found["net_total"] - uploads * expected["net_total"]) < 0.01 * uploads,
        ),
        (
            f"service: {uploads} RetrainRequested (one per upload)",
            found["retrain_requests"] == uploads,
        ),
    ]
    for phase in baselines:
        results = [run.detail for run in phase.runs]
        checks += [
            (
                f"{phase.name}: every event acknowledged (high watermarks)",
                all(r["acknowledged"] == r["events"] == r["high_watermarks"] for r in results),
            ),
            (
                f"{phase.name}: same rows, events, ids, net total as the service",
                all(
                    (r["rows"], r["events"], r["ids_digest"])
                    == (service.rows, service.events, found["ids_digest"])
                    and abs(r["net_total"] - expected["net_total"]) < 0.01
                    for r in results
                ),
            ),
        ]
    payloads = {run.detail["payloads_digest"] for phase in baselines for run in phase.runs}
    checks.append(("baselines: byte-identical payloads", len(payloads) == 1))
    print("\nchecks:")
    for name, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    headline = service.seconds / baselines[0].seconds
    print(
        f"\nresult: service {service.rate:,.0f} rows/s, baseline {baselines[0].rate:,.0f} rows/s"
        f" (plain polars + bare aiokafka), time ratio {headline:.2f}x, target ≤ {RATIO_TARGET}x"
        f" → {verdict(headline <= RATIO_TARGET)}; service peak RSS {mib(service.peak)}"
        f" → {verdict(ok_rss)} (< 1 GiB)"
    )
    print(f"whole benchmark: {elapsed:.0f} s; load average now: {load()}")
    return [name for name, ok in checks if not ok]


def results_json(service: Phase, baselines: list[Phase]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in [service, *baselines]:
        out[phase.name] = {
            "rows": phase.rows,
            "events": phase.events,
            "median_seconds": phase.seconds,
            "rows_per_s": phase.rate,
            "peak_rss": phase.peak,
            "runs": [
                {
                    "seconds": run.seconds,
                    "peak_rss_sampled": run.peak_sampled,
                    "peak_rss_kernel": run.peak_kernel,
                    "cpu_seconds": run.cpu,
                    "other_cores": run.other_cores,
                    "detail": run.detail,
                }
                for run in phase.runs
            ],
        }
    for phase in baselines:
        out[f"ratio service / {phase.name}"] = service.seconds / phase.seconds
    return out


# ---------------------------------------------------------------------------------------------
# main


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument(
        "--runs", type=int, default=3, help="rounds of (plain, pipeline, upload); medians"
    )
    cli.add_argument("--partitions", type=int, default=6, help="partitions of the topics")
    cli.add_argument("--linger-ms", type=int, default=5, help="bare producer linger")
    cli.add_argument(
        "--batch-bytes", type=int, default=512 * 1024, help="bare producer max batch size"
    )
    cli.add_argument("--bootstrap", default=None, help="use this broker instead of Tansu")
    cli.add_argument("--timeout", type=float, default=150.0, help="upload timeout (s)")
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    cli.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="py-spy binary: profile the service during the first upload (implies --keep)",
    )
    # internal: one baseline run in a child process
    cli.add_argument("--child", choices=["plain", "pipeline"], help=argparse.SUPPRESS)
    cli.add_argument("--topic", help=argparse.SUPPRESS)
    cli.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    return cli.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(asyncio.run(baseline(args))))
        return 0
    began = time.monotonic()
    args.data = data_file(args.data).resolve()
    args.keep = args.keep or args.py_spy is not None
    settings = Settings(topic_partitions=args.partitions)
    with work_dir("ingest", args.keep) as work:
        broker = None
        if args.bootstrap:
            settings = settings.model_copy(update={"kafka_bootstrap": args.bootstrap})
        else:
            broker = EmbeddedBroker(settings).start()
            settings = broker.settings
        broker_pid = broker.process.pid if broker is not None and broker.process else None
        try:
            return run(args, settings, work, broker_pid, began)
        finally:
            if broker is not None:
                broker.stop()


def run(
    args: argparse.Namespace,
    settings: Settings,
    work: Path,
    broker_pid: int | None,
    began: float,
) -> int:
    from tests.support.stack import running_stack

    print(f"data: {args.data} ({args.data.stat().st_size / 2**20:.1f} MiB)")
    print(f"broker: {settings.kafka_bootstrap} ({'Tansu' if broker_pid else 'external'})")
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs (other work skews this)")
    service_settings = fresh_topics(settings, "service").model_copy(
        update={"data_dir": work / "service-data"}
    )
    log_path = work / "ingest.log"
    print("starting the ingest service …", flush=True)
    with running_stack(
        service_settings,
        log_path,
        services=("ingest",),
        RETENTION_TOPIC_PARTITIONS=str(settings.topic_partitions),
    ) as stack:
        service = ServiceUnderTest(stack, log_path, broker_pid)
        print(f"  ready: pid {service.pid}, {mib(service.idle_rss)} resident", flush=True)
        phases = {name: Phase(name) for name in ("service", "baseline plain", "baseline pipeline")}
        idle_pids = {"broker": broker_pid, "service (idle)": service.pid}
        for number in range(1, args.runs + 1):
            for mode in ("plain", "pipeline"):
                print(f"round {number}/{args.runs}: baseline {mode} …", flush=True)
                phases[f"baseline {mode}"].runs.append(
                    run_baseline(mode, args, settings, work, idle_pids)
                )
            print(f"round {number}/{args.runs}: upload to the service …", flush=True)
            profile = work / "py-spy-service.txt" if args.py_spy and number == 1 else None
            phases["service"].runs.append(service.upload(args, profile))
            if profile is not None:
                print(f"  profile: {profile}", flush=True)
        print("reading the service's topics back …", flush=True)
        found = service.read_back()
        idle_rss = service.idle_rss
    baselines = [phases["baseline plain"], phases["baseline pipeline"]]
    problems = report(phases["service"], baselines, found, idle_rss, time.monotonic() - began)
    if args.json:
        args.json.write_text(
            json.dumps(results_json(phases["service"], baselines), indent=2, default=str)
        )
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
