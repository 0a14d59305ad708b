"""The `GET /v1/segments/migration` case of bench/analytics: the default range of online_retail_II.

Cold: answers are cached per (lake state, champion, from, to), so each cold request asks for a
range not asked before (`from` one day earlier each time, `to` the latest order's day): the
service reads the lake and computes features at both dates again.

Bare: one polars query per date over the four needed columns of the tenant's part files:
recency (days since the last purchase, else the last event), purchase orders and net spend per
customer up to the date's clock; then the champion's segmenter (read from its `segmenter.json`)
as numpy nearest-centroid, and counts and spend per (from, to) pair. No event-id deduplication
and none of the other features: the least work that gives the matrix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import polars as pl

from bench.analytics.case import Bench, Case

FROM, TO = date(2011, 9, 10), date(2011, 12, 9)  # the default range on online_retail_II
NOT_YET = "Not yet a customer"


def path(start: date) -> str:
    return f"/v1/segments/migration?from={start.isoformat()}&to={TO.isoformat()}"


def cold_requests(_: Bench, count: int) -> Iterator[str]:
    for days in range(1, count + 1):
        yield path(FROM - timedelta(days=days))


def _segmenter(bench: Bench) -> dict[str, Any]:
    model = bench.bentoml_home / "models" / f"retention-{bench.tenant}" / str(bench.model_version)
    return json.loads((model / "segmenter.json").read_text())


def bare(bench: Bench) -> dict[tuple[str, str], tuple[int, float]]:
    """(from, to) → (customers, net spend at `to`)."""
    segmenter = _segmenter(bench)
    orders = pl.scan_parquet(bench.parts).select("customer_id", "occurred_at", "kind", "total")
    latest = orders.select(pl.col("occurred_at").max()).collect().item()

    def segments(day: date) -> pl.DataFrame:
        clock = min(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC), latest)
        at, purchase = pl.col("occurred_at"), pl.col("kind") == "purchase"
        rfm = (
            orders.filter(at <= clock)
            .group_by("customer_id")
            .agg(
                last=pl.coalesce(at.filter(purchase).max(), at.max()),
                frequency=purchase.sum(),
                monetary=pl.col("total").sum(),
            )
            .with_columns(recency=(pl.lit(clock) - pl.col("last")).dt.total_microseconds() / 86.4e9)
            .collect()
        )
        x = np.log1p(rfm.select("recency", "frequency", "monetary").to_numpy().clip(0, None))
        z = (x - np.asarray(segmenter["means"])) / np.asarray(segmenter["scales"])
        centroids = np.asarray(segmenter["centroids"])
        nearest = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        names = np.asarray(segmenter["names"], dtype=object)[nearest]
        return rfm.select("customer_id", "monetary", segment=pl.Series(names.tolist()))

    before, after = segments(FROM), segments(TO)
    pairs = (
        after.join(before.select("customer_id", source="segment"), on="customer_id", how="left")
        .group_by(pl.col("source").fill_null(NOT_YET), "segment")
        .agg(customers=pl.len(), revenue=pl.col("monetary").sum())
    )
    return {(s, t): (n, r) for s, t, n, r in pairs.iter_rows()}


def agrees(_: Bench, answer: dict[str, Any], computed: dict) -> bool:
    served = {(f["from"], f["to"]): (f["customers"], f["revenue"]) for f in answer["flows"]}
    return served.keys() == computed.keys() and all(
        served[pair][0] == computed[pair][0] and abs(served[pair][1] - computed[pair][1]) < 0.01
        for pair in served
    )


MIGRATION = Case(
    name="segments/migration",
    cold_requests=cold_requests,
    warm_request=lambda _: path(FROM),
    bare=bare,
    agrees=agrees,
    cold_target_ms=1000.0,
    warm_target_ms=50.0,
    needs_champion=True,
)
