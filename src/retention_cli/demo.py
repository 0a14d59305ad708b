"""`retention demo`: the whole product on the embedded stack, fed like a live shop.

1. Start Tansu and the four services in a fresh data directory (service logs go to a file).
2. Stream the bundled UCI Online Retail orders over `POST /v1/orders` in time order, the
   shop's clock accelerated `--speed` times; once the streamed history can hold a backtest the
   trainer is asked to train, while the stream goes on; at the end it is asked once more (the
   champion gate decides whether that model replaces the first).
3. When a champion is served and scoring has every customer, print the model card, the segment
   table, the ten high-value customers most at risk with their reasons, a campaign plan, and
   where to look next. Then keep running until Ctrl-C (`--once`: exit).
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from retention_cli.demo_orders import BUNDLED_DATA, DemoOrder, demo_orders
from retention_cli.demo_report import AT_RISK_QUERY, SAMPLE_CAMPAIGN, print_report
from retention_cli.shutdown import Shutdown, handle_signals
from retention_cli.stack import (
    SERVICES,
    WEBHOOKS,
    WITH_CONSOLE,
    Stack,
    broker_storage_note,
    stack_environment,
)
from retention_shared.auth import generate_dev_key
from retention_shared.config import Settings

__all__ = ["DemoReport", "add_parser", "run_demo"]

TENANT = "default"
# One year at this speed streams in about a minute.
DEFAULT_SPEED = 600_000.0
# The pipeline needs three 90-day windows (test, validation, training labels) after at least
# one 30-day cutoff: ~300 days. 330 gives the first model two training cutoffs.
TRAIN_AFTER_DAYS = 330
TICK_SECONDS = 0.25


@dataclass
class DemoReport:
    """What the demo printed, as the services answered it."""

    key: str
    urls: dict[str, str]
    model: dict[str, Any]
    segments: dict[str, Any]
    at_risk: dict[str, Any]
    campaign: dict[str, Any]
    # The churn reasons of each listed customer, as `GET /v1/customers/{id}/score` gives them.
    reasons: dict[str, list[str]]
    streamed: dict[str, int]
    console_port: int = 8004


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="stream the bundled data through the embedded stack and show the results"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"shop seconds per real second (default {DEFAULT_SPEED:,.0f}: a year in ~1 minute)",
    )
    parser.add_argument("--once", action="store_true", help="exit after printing the results")
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="give up after this many seconds"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("retention demo: --speed must be positive")
        return 2
    shutdown = Shutdown()
    handle_signals(shutdown)  # any number of Ctrl-Cs or SIGTERMs stop the stack, never abandon it
    try:
        run_demo(
            Settings(),
            speed=args.speed,
            once=args.once,
            data=args.data,
            timeout=args.timeout,
            shutdown=shutdown,
        )
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, TimeoutError, httpx.HTTPError) as error:
        print(f"retention demo: {error}")
        return 1
    return 0


def run_demo(
    settings: Settings,
    *,
    speed: float = DEFAULT_SPEED,
    once: bool = False,
    data: Path = BUNDLED_DATA,
    timeout: float = 900.0,
    console: Console | None = None,
    on_report: Callable[[DemoReport], None] | None = None,
    shutdown: Shutdown | None = None,
) -> DemoReport:
    """Run the demo; `on_report` is called with the printed answers while the stack still runs."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: room for the tables anyway
            console = Console(width=120)
    work = Path(tempfile.mkdtemp(prefix="retention-demo-"))
    settings = settings.model_copy(
        update={"data_dir": work, "kafka_bootstrap": f"127.0.0.1:{settings.broker_port}"}
    )
    api_keys = generate_dev_key()
    key = api_keys.split(":")[0]
    log_path = work / "services.log"
    log = log_path.open("a", buffering=1)
    env = stack_environment(settings, api_keys)
    env["BENTOML_HOME"] = str(work / "bentoml")  # a clean demo: its own model store too
    stack = Stack(
        settings,
        env,
        write=lambda line: log.write(line + "\n"),
        services=WITH_CONSOLE,
        shutdown=shutdown or Shutdown(),
    )
    urls = {name: f"http://127.0.0.1:{settings.port_of(name)}" for name in (*SERVICES, WEBHOOKS)}
    deadline = time.monotonic() + timeout
    keep_logs = False
    try:
        with console.status(f"starting the embedded broker and services (logs: {log_path})"):
            stack.start()
        if stack.broker is not None:
            console.print(broker_storage_note(stack.broker))
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60.0) as client:
            api = _Api(client, urls)
            orders = demo_orders(data)
            with _progress(console) as progress:
                streaming = progress.add_task("streaming orders", total=len(orders), status="")
                training = progress.add_task("training", total=None, status="waiting for data")
                streamed = _stream(api, orders, speed, progress, (streaming, training), deadline)
                _wait_for_champion(api, progress, training, deadline)
                _wait_until_settled(api, streamed["customers"], deadline)
            at_risk = api.get("scoring", "/v1/customers", params=AT_RISK_QUERY)
            report = DemoReport(
                key=key,
                urls=urls,
                model=api.get("scoring", "/v1/model"),
                segments=api.get("scoring", "/v1/segments"),
                at_risk=at_risk,
                campaign=api.post("scoring", "/v1/campaigns/plan", SAMPLE_CAMPAIGN),
                reasons={
                    row["customer_id"]: _churn_reasons(api, row["customer_id"])
                    for row in at_risk["customers"]
                },
                streamed=streamed,
                console_port=settings.console_port,
            )
        print_report(console, report, log_path)
        if on_report is not None:
            on_report(report)
        if not once:
            console.print("Running until Ctrl-C (a crashed service or broker is started again).")
            while True:  # the stack's supervisor does the watching
                time.sleep(3600)
        return report
    except (RuntimeError, TimeoutError, httpx.HTTPError):
        keep_logs = True
        console.print(f"service logs kept in {log_path}")
        raise
    finally:
        stack.stop()
        log.close()
        if not keep_logs:
            shutil.rmtree(work, ignore_errors=True)


@dataclass
class _Api:
    client: httpx.Client
    urls: dict[str, str]

    def get(self, service: str, path: str, **kwargs: Any) -> Any:
        return self._answer(self.client.get(self.urls[service] + path, **kwargs))

    def post(self, service: str, path: str, body: Any) -> Any:
        return self._answer(self.client.post(self.urls[service] + path, json=body))

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:300]}"
            )
        return response.json()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _stream(
    api: _Api,
    orders: list[DemoOrder],
    speed: float,
    progress: Progress,
    tasks: tuple[TaskID, TaskID],
    deadline: float,
) -> dict[str, int]:
    """Send the orders whose shop time has come, tick by tick; ask for training on the way."""
    streaming, training = tasks
    start_shop, start_real = orders[0].occurred_at, time.monotonic()
    train_at = start_shop + timedelta(days=TRAIN_AFTER_DAYS)
    limit = 1000  # the ingest default RETENTION_MAX_ORDERS_PER_REQUEST
    accepted = rejected = 0
    customers: set[str] = set()
    sent = 0
    asked_to_train = False
    while sent < len(orders):
        shop_now = start_shop + timedelta(seconds=(time.monotonic() - start_real) * speed)
        due = sent
        while due < len(orders) and orders[due].occurred_at <= shop_now and due - sent < limit:
            due += 1
        if due - sent < limit:  # caught up with the shop's clock: wait for the next tick
            time.sleep(TICK_SECONDS)
        if due > sent:
            batch = orders[sent:due]
            answer = api.post("ingest", "/v1/orders", {"orders": [o.body for o in batch]})
            accepted += answer["accepted"]
            rejected += answer["rejected"]
            customers.update(
                str(batch[r["index"]].body["customer_id"])
                for r in answer["results"]
                if r["status"] == "accepted"
            )
            sent = due
            progress.update(
                streaming,
                completed=sent,
                status=f"{orders[sent - 1].occurred_at:%Y-%m-%d}  "
                f"{accepted:,} accepted, {rejected:,} rejected",
            )
        if not asked_to_train and sent and orders[sent - 1].occurred_at >= train_at:
            _request_training(api, progress, training, "enough history: first model")
            asked_to_train = True
        if time.monotonic() > deadline:
            raise TimeoutError("the demo ran out of time while streaming")
    _request_training(api, progress, training, "all orders in: retrain")
    return {
        "orders": len(orders),
        "accepted": accepted,
        "rejected": rejected,
        "customers": len(customers),
    }


def _request_training(api: _Api, progress: Progress, task: TaskID, why: str) -> None:
    api.post("trainer", "/v1/retrain", {})
    progress.update(task, status=why)


def _wait_for_champion(api: _Api, progress: Progress, task: TaskID, deadline: float) -> None:
    """Until the trainer has nothing queued or running and scoring serves its champion."""
    while True:
        runs = api.get("trainer", "/v1/runs")["runs"]
        busy = [r for r in runs if r["status"] in ("queued", "running")]
        published = [r for r in runs if r["status"] == "published"]
        progress.update(task, status=", ".join(r["status"] for r in runs) or "queued")
        if not busy and published:
            champion = published[0]["model_tag"]
            card = api.client.get(api.urls["scoring"] + "/v1/model")
            if card.status_code == 200 and card.json().get("model_tag") == champion:
                progress.update(task, total=1, completed=1, status=f"champion {champion}")
                return
        elif not busy and runs and not published:
            reasons = "; ".join(f"{r['status']}: {r['message']}" for r in runs)
            raise RuntimeError(f"no model was published: {reasons}")
        if time.monotonic() > deadline:
            raise TimeoutError("the demo ran out of time waiting for a model")
        time.sleep(1.0)


def _churn_reasons(api: _Api, customer_id: str) -> list[str]:
    score = api.get("scoring", f"/v1/customers/{customer_id}/score")
    return [reason["text"] for reason in score["reasons"]["churn"]]


def _wait_until_settled(api: _Api, expected: int, deadline: float) -> None:
    """Until the features service has applied every order and scoring's answers stop changing
    (every customer the shop sent an accepted order for, each at their last vector)."""
    previous = None
    while True:
        metrics = api.client.get(api.urls["features"] + "/metrics").text
        lags = re.findall(r"^retention_features_consumer_lag\{[^}]*\} (\S+)$", metrics, re.M)
        segments = api.get("scoring", "/v1/segments")
        settled = lags and not any(float(lag) for lag in lags)
        if settled and segments["customers"] >= expected and segments == previous:
            return
        previous = segments
        if time.monotonic() > deadline:
            raise TimeoutError(f"scoring did not settle on {expected} customers in time")
        time.sleep(1.0)
