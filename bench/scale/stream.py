"""A steady stream of new orders on the loaded stack: the cost of one more order at k.

After the upload is scored, `rate` orders a second go to ingest's `POST /v1/orders` for
`seconds` seconds, `batch` orders a request (as an upstream system batching its orders would
send them; a request every batch / rate seconds), then the stream settles: features and scoring have applied every
order (both lags 0, every order consumed) and scoring has published no score change for
`QUIET` seconds. Each order is a real invoice of the file (its lines, quantities and prices,
cancellations left out) placed by one of the tenant's customers drawn at random (seeded), with
a new order id and a time after the history's last order, one second apart, so every order moves
the tenant clock like live trade does. The CPU each process spent from the first request to
settled, over the orders, is the cost per order at this population size.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from bench.scale.copies import CUSTOMER_STRIDE, customer_column, invoice_column
from bench.scale.stages import Pipeline, metric_values, total

QUIET = 2.0
# Orders of the stream start the day after online_retail_II's last one (2011-12-09).
START = datetime(2011, 12, 10, 8, 0, 0)


@dataclass(frozen=True)
class StreamResult:
    orders: int
    accepted: int
    seconds: float  # first request to last answer
    settled_seconds: float  # first request to settled
    late_ticks: int  # requests sent over a tick late (the stack or this client fell behind)


def stream_orders(source: Path, k: int, count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` canonical orders: real invoices of `source`, each for a random customer of the
    k copies (ids as `copies.copy_of` makes them), dated one second apart from START."""
    frame = pl.read_parquet(source)
    customer, invoice = customer_column(frame), invoice_column(frame)
    price = "Price" if "Price" in frame.columns else "UnitPrice"
    purchases = frame.filter(
        pl.col(customer).is_not_null()
        & ~pl.col(invoice).str.starts_with("C")
        & (pl.col("Quantity") > 0)
        & (pl.col(price) > 0)
    )
    invoices = (
        purchases.group_by(invoice, maintain_order=True)
        .agg(pl.struct(product_id="StockCode", quantity="Quantity", unit_price=price))
        .to_series(1)
        .to_list()
    )
    customers = purchases[customer].unique().sort().to_list()
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        lines = invoices[rng.randrange(len(invoices))]
        person = int(rng.choice(customers)) + rng.randrange(k) * CUSTOMER_STRIDE
        orders.append(
            {
                "order_id": f"S{n:08d}",
                "customer_id": str(person),
                "order_datetime": (START + timedelta(seconds=n)).isoformat(),
                "lines": lines[:50],
            }
        )
    return orders


def run_stream(
    pipeline: Pipeline,
    client: httpx.Client,
    orders: list[dict[str, Any]],
    rate: float,
    batch: int,
    timeout: float = 600.0,
) -> StreamResult:
    tick = batch / rate
    url = f"{pipeline.url('ingest')}/v1/orders"
    before = _consumed(pipeline, client)
    started = time.monotonic()
    accepted, late, sent = 0, 0, 0
    for number, at in enumerate(range(0, len(orders), batch)):
        due = started + number * tick
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        elif wait < -tick:
            late += 1
        sending = orders[at : at + batch]
        answer = client.post(url, json={"orders": sending}, headers=pipeline.headers, timeout=60)
        answer.raise_for_status()
        accepted += answer.json()["accepted"]
        sent += len(sending)
    answered = time.monotonic()
    deadline = answered + timeout
    last_scores, changed_at, applied_at = -1.0, answered, None
    while time.monotonic() < deadline:
        now = time.monotonic()
        consumed = _consumed(pipeline, client)
        if consumed["scores"] != last_scores:
            last_scores, changed_at = consumed["scores"], now
        applied = (
            consumed["features"] - before["features"] >= accepted
            and consumed["features_lag"] == 0
            and consumed["scoring_lag"] == 0
            and consumed["scoring"] >= consumed["vectors"]
        )
        if applied and applied_at is None:
            applied_at = now
        if applied and now - changed_at >= QUIET:
            break
        time.sleep(0.25)
    # Settled: every order applied, and the last score change it caused published.
    settled = max(applied_at or time.monotonic(), changed_at)
    return StreamResult(sent, accepted, answered - started, settled - started, late)


def _consumed(pipeline: Pipeline, client: httpx.Client) -> dict[str, float]:
    topics = pipeline.topics
    features = metric_values(client.get(f"{pipeline.url('features')}/metrics").text)
    scoring = metric_values(client.get(f"{pipeline.url('scoring')}/metrics").text)
    return {
        "features": total(
            features,
            "retention_messages_total",
            service="features",
            topic=topics.transactions,
            direction="consumed",
        ),
        "vectors": total(
            features,
            "retention_messages_total",
            service="features",
            topic=topics.customer_features,
            direction="published",
        ),
        "features_lag": total(features, "retention_features_consumer_lag"),
        "scoring": total(
            scoring,
            "retention_messages_total",
            service="scoring",
            topic=topics.customer_features,
            direction="consumed",
        ),
        "scoring_lag": total(scoring, "retention_scoring_consumer_lag"),
        "scores": total(
            scoring,
            "retention_messages_total",
            service="scoring",
            topic=topics.customer_scores,
            direction="published",
        ),
    }
