"""bench/console: the console's page times against its own /healthz, on a loaded real stack.

Run from the repository root:

    uv run python bench/console/run.py               # a few minutes on a 2-core machine
    uv run python bench/console/run.py --pages /,/customers

Set-up, not timed:

1. An embedded Tansu broker, then the four services and the console as their own processes
   (`retention_cli.stack.Stack` through tests/support/stack.running_stack with WITH_CONSOLE),
   one admin key for tenant `default`, scheduled retraining off.
2. `online_retail_II` uploaded through ingest (`POST /v1/uploads`, the raw file as a user would
   send it); waits until the upload is done, the training run it requests has published a
   champion, and scoring serves every customer of the upload.
3. Signs in over HTTP like a browser: `GET /signin` (the form's token and its cookie), then
   `POST /signin` with the key; the session cookie goes with every request after.

Measured, in the same run against the same console process:

- first: each page of PAGES once (templates compiled, the services' caches filled); a page that
  answers 404 is not written yet and is skipped;
- rounds: --rounds rounds, each visiting the pages in a new random order, every page request
  preceded by `GET /healthz` (the floor: the same app, middleware and session lookup, no call to
  a service), so floor and pages see the same machine at the same moments.

Latency is wall time around each request in this process (httpx, keep-alive, loopback: ~1 ms of
HTTP in it); the console's own server-side mean per route (from its /metrics histogram over the
rounds) is printed beside it, and its CPU per request (from /proc).

Targets: each page's p95 under 10x the floor's p95, and under 300 ms on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` and `tests` are folders at the repo root
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

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
from retention_cli.stack import WITH_CONSOLE, Stack  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import EmbeddedBroker  # noqa: E402
from retention_shared.kafka.clients import ensure_topics  # noqa: E402
from tests.support.stack import running_stack, url  # noqa: E402

TENANT = "default"
API_KEY = "bench-console-key"
# The console's pages; `{customer}` is the customer scoring lists first (the most revenue at
# risk, so a long history). Pages not written yet answer 404 and are skipped.
PAGES = (
    "/",
    "/segments",
    "/customers",
    "/customers/{customer}",
    "/cohorts",
    "/campaigns",
    "/data",
    "/models",
)
FLOOR = "/healthz"
RATIO_TARGET = 10.0
P95_TARGET_MS = 300.0
FINISHED_RUNS = {"published", "rejected", "skipped", "failed"}


@dataclass
class Timings:
    path: str
    first_ms: float = math.nan
    samples_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        return percentile(sorted(self.samples_ms), q)


# ---------------------------------------------------------------------------------------------
# set-up


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def upload(stack: Stack, data: Path, timeout: float) -> dict:
    """`data` uploaded through ingest; its final status once done."""
    base = url(stack, "ingest")
    with data.open("rb") as file:
        response = httpx.post(
            f"{base}/v1/uploads", files={"file": (data.name, file)}, headers=auth(), timeout=300
        )
    if response.status_code != 202:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    upload_id = response.json()["upload_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/v1/uploads/{upload_id}", headers=auth(), timeout=30).json()
        if status["state"] == "done":
            return status
        if status["state"] == "failed":
            raise RuntimeError(f"upload failed: {status}")
        time.sleep(1)
    raise TimeoutError(f"upload {upload_id} not done after {timeout:.0f} s")


def wait_for_champion(stack: Stack, timeout: float) -> dict:
    """The first finished training run of the tenant; it must have published a model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.get(f"{url(stack, 'trainer')}/v1/runs", headers=auth(), timeout=30)
        done = [run for run in runs.json()["runs"] if run["status"] in FINISHED_RUNS]
        if done:
            if done[0]["status"] != "published":
                raise RuntimeError(f"the training run did not publish a model: {done[0]}")
            return done[0]
        time.sleep(2)
    raise TimeoutError(f"no training run finished after {timeout:.0f} s")


def wait_until_scored(stack: Stack, customers: int, timeout: float) -> None:
    """Scoring serves the champion and every one of `customers` customers."""
    deadline = time.monotonic() + timeout
    served = 0
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url(stack, 'scoring')}/v1/segments", headers=auth(), timeout=30)
        if answer.status_code == 200:
            served = sum(s["customers"] for s in answer.json()["segments"])
            if served >= customers:
                return
        time.sleep(1)
    raise TimeoutError(f"scoring serves {served} of {customers} customers after {timeout:.0f} s")


def first_customer(stack: Stack) -> str:
    """The customer scoring lists first (default sort: revenue at risk)."""
    answer = httpx.get(
        f"{url(stack, 'scoring')}/v1/customers", params={"limit": 1}, headers=auth(), timeout=30
    )
    answer.raise_for_status()
    return answer.json()["customers"][0]["customer_id"]


def sign_in(client: httpx.Client) -> None:
    """As a browser does: the form (its token, and the cookie that signs it), then the post."""
    form = client.get("/signin")
    form.raise_for_status()
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
    if token is None:
        raise RuntimeError("no sign-in token in GET /signin")
    answer = client.post("/signin", data={"api_key": API_KEY, "signin_token": token.group(1)})
    if answer.status_code != 303 or answer.headers.get("location") != "/":
        raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")


# ---------------------------------------------------------------------------------------------
# measuring


def timed_get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(path)
    response.read()
    return (time.perf_counter() - started) * 1e3, response


def server_times(base: str, service: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(sum of seconds, count) of a service's requests by (method, route template), from its
    /metrics (no key needed)."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    totals: dict[tuple[str, str], list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "retention_http_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("service") != service:
                continue
            entry = totals.setdefault((labels["method"], labels["route"]), [0.0, 0.0])
            if sample.name.endswith("_sum"):
                entry[0] += sample.value
            elif sample.name.endswith("_count"):
                entry[1] += sample.value
    return {key: (seconds, count) for key, (seconds, count) in totals.items()}


def difference(
    after: dict[tuple[str, str], tuple[float, float]],
    before: dict[tuple[str, str], tuple[float, float]],
) -> dict[tuple[str, str], tuple[float, float]]:
    """What was added between two scrapes: (seconds, count) per route that saw requests."""
    added = {}
    for key, (seconds, count) in after.items():
        old_seconds, old_count = before.get(key, (0.0, 0.0))
        if count > old_count:
            added[key] = (seconds - old_seconds, count - old_count)
    return added


def route_of(path: str, templates: list[str]) -> str | None:
    """The route template (`/customers/{customer_id:path}`) a request path was counted under."""
    for template in templates:
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join(
            (".+" if part.endswith(":path}") else "[^/]+")
            if part.startswith("{")
            else re.escape(part)
            for part in parts
        )
        if re.fullmatch(pattern, path):
            return template
    return None


def measure(
    client: httpx.Client, pages: list[str], rounds: int, seed: int
) -> tuple[Timings, dict[str, Timings]]:
    floor = Timings(FLOOR)
    timings = {page: Timings(page) for page in pages}
    rng = random.Random(seed)
    for number in range(1, rounds + 1):
        order = rng.sample(pages, len(pages))
        for page in order:
            for timing in (floor, timings[page]):
                elapsed, response = timed_get(client, timing.path)
                if response.status_code == 200:
                    timing.samples_ms.append(elapsed)
                else:
                    timing.failures.append(str(response.status_code))
        if number % 5 == 0 or number == rounds:
            print(f"  round {number}/{rounds}", flush=True)
    return floor, timings


# ---------------------------------------------------------------------------------------------
# the run


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument("--rounds", type=int, default=40, help="interleaved rounds")
    cli.add_argument(
        "--pages", default=",".join(PAGES), help="comma-separated paths ({customer}: an id)"
    )
    cli.add_argument("--seed", type=int, default=1, help="page order of the rounds")
    cli.add_argument("--timeout", type=float, default=1200, help="seconds per set-up step")
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    return cli.parse_args()


def main() -> int:
    args = parse_args()
    began = time.monotonic()
    data = data_file(args.data)
    print(f"data: {data}")
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs (other work skews these)")
    with work_dir("console", args.keep) as work:
        settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", data_dir=work / "data")
        broker = EmbeddedBroker(settings).start()
        try:
            asyncio.run(ensure_topics(broker.settings))
            print("starting the four services and the console …", flush=True)
            with running_stack(
                broker.settings,
                work / "stack.log",
                services=WITH_CONSOLE,
                BENTOML_HOME=str(work / "bentoml"),
                RETENTION_API_KEYS=f"{API_KEY}:{TENANT}:admin",
                RETENTION_RETRAIN_EVERY_HOURS="0",
                RETENTION_LOG_LEVEL="WARNING",
            ) as stack:
                return run(args, data, stack, began)
        finally:
            broker.stop()


def run(args: argparse.Namespace, data: Path, stack: Stack, began: float) -> int:
    started = time.monotonic()
    print(f"uploading {data.name} through ingest …", flush=True)
    status = upload(stack, data, args.timeout)
    counts = status.get("result") or {}
    customers = int(counts.get("customers") or 0)
    print(
        f"  {counts.get('rows_read', 0):,} rows read, {counts.get('order_events', 0):,}"
        f" order events, {customers:,} customers in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    started = time.monotonic()
    print("waiting for the champion and every customer scored …", flush=True)
    champion = wait_for_champion(stack, args.timeout)
    wait_until_scored(stack, customers, args.timeout)
    print(
        f"  run {champion['run_id']} published; all scored after {time.monotonic() - started:.0f} s"
    )
    customer = first_customer(stack)

    console = next(p for p in stack.running if p.name == "console")
    base = url(stack, "console")
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        sign_in(client)
        pages = [page.format(customer=customer) for page in args.pages.split(",")]
        present, first = [], {}
        for page in pages:
            elapsed, response = timed_get(client, page)
            if response.status_code == 404:
                print(f"  {page}: 404, not written yet: skipped")
                continue
            if response.status_code != 200:
                print(f"  {page}: first answer {response.status_code}: {response.text[:200]!r}")
            present.append(page)
            first[page] = elapsed
        print(f"measuring {len(present)} pages, {args.rounds} rounds …", flush=True)
        bases = {name: url(stack, name) for name in WITH_CONSOLE}
        before = {name: server_times(base, name) for name, base in bases.items()}
        cpu_before = cpu_seconds(console.process.pid)
        floor, timings = measure(client, present, args.rounds, args.seed)
        cpu = cpu_seconds(console.process.pid) - cpu_before
        rss = resident_mib(console.process.pid)
        added = {
            name: difference(server_times(base, name), before[name]) for name, base in bases.items()
        }
        sizes = {page: len(client.get(page).content) for page in present}
    for page, elapsed in first.items():
        timings[page].first_ms = elapsed
    console_routes = {route: times for (method, route), times in added["console"].items()}

    def server_mean(path: str) -> float:
        route = route_of(path, list(console_routes))
        if route is None:
            return math.nan
        seconds, count = console_routes[route]
        return seconds / count * 1e3

    floor_p95 = floor.quantile(95)
    rows = [
        ("data", data.name, f"{customers:,} customers, tenant {TENANT}"),
        (
            f"floor GET {FLOOR}",
            f"p95 {floor_p95:.1f} ms",
            f"p50 {floor.quantile(50):.1f} ms; server mean {server_mean(FLOOR):.1f} ms; "
            f"{len(floor.samples_ms)} requests",
        ),
    ]
    failures = len(floor.failures)
    results = {}
    for page in present:
        timing = timings[page]
        failures += len(timing.failures)
        p95 = timing.quantile(95)
        ratio = p95 / floor_p95
        ok = ratio < RATIO_TARGET and p95 < P95_TARGET_MS
        name = "GET /customers/<id>" if page.startswith("/customers/") else f"GET {page}"
        failed = f"; {len(timing.failures)} FAILED ({', '.join(sorted(set(timing.failures)))})"
        rows.append(
            (
                name,
                f"p95 {p95:.1f} ms",
                f"p50 {timing.quantile(50):.1f} ms, first {timing.first_ms:.0f} ms, server mean "
                f"{server_mean(page):.1f} ms, {sizes[page] / 1024:,.0f} KiB; {ratio:.1f}x floor; "
                + verdict(ok, f"< {RATIO_TARGET:g}x floor and < {P95_TARGET_MS:g} ms")
                + (failed if timing.failures else ""),
            )
        )
        results[page] = {
            "first_ms": timing.first_ms,
            "p50_ms": timing.quantile(50),
            "p95_ms": p95,
            "ratio_p95": ratio,
            "server_mean_ms": server_mean(page),
            "bytes": sizes[page],
            "samples": len(timing.samples_ms),
            "failures": timing.failures,
        }
    requests = len(floor.samples_ms) + sum(len(t.samples_ms) for t in timings.values())
    rows.append(
        (
            "console process",
            f"{cpu / max(requests, 1) * 1e3:.1f} ms CPU/req",
            f"over floor and pages; RSS {rss:,.0f} MiB after the rounds",
        )
    )
    rows.append(("failed requests", f"{failures}", "answers other than 200 during the rounds"))
    # Where the pages' time goes: what the console asked the services during the rounds, as the
    # services themselves timed it.
    calls = [
        (f"{name} {method} {route}", f"{seconds / count * 1e3:.1f} ms", f"mean of {count:.0f}")
        for name in WITH_CONSOLE
        if name != "console"
        for (method, route), (seconds, count) in sorted(added[name].items())
        if route not in ("/metrics", "/healthz", "/readyz")
    ]
    print()
    print(table(rows))
    if calls:
        print("\nservice calls during the rounds (each service's own /metrics):")
        print(table(calls))
    print(f"\nwhole benchmark: {time.monotonic() - began:.0f} s; load average now: {load()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "data": str(data),
                    "customers": customers,
                    "rounds": args.rounds,
                    "floor": {
                        "p50_ms": floor.quantile(50),
                        "p95_ms": floor_p95,
                        "samples": len(floor.samples_ms),
                    },
                    "pages": results,
                    "console_cpu_ms_per_request": cpu / max(requests, 1) * 1e3,
                    "console_rss_mib": rss,
                    "service_calls": {
                        f"{name} {method} {route}": {"seconds": seconds, "count": count}
                        for name in WITH_CONSOLE
                        for (method, route), (seconds, count) in added[name].items()
                    },
                    "load_average_end": load(),
                },
                indent=2,
            )
        )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
