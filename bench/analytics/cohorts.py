"""The `GET /v1/cohorts` case of bench/analytics: monthly cohorts, share of customers active.

Cold: the trainer keeps one cohort table per tenant until the tenant's lake changes, whatever the
parameters, so before each cold request (untimed) one event of the lake is stored again, as a
redelivery would: the data reads the same, but the part listing, hence the lake's state digest,
changed, and the service reads the lake and computes again.

Bare: one polars query over the four needed columns of the tenant's part files: each customer's
first purchase, their orders from it on, distinct customers with a purchase per (cohort month,
month) over the cohort's size. No event-id deduplication and no cells for months without
activity: the least work that gives the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl

from bench.analytics.case import Bench, Case
from retention_trainer.lake import TransactionLake

PATH = "/v1/cohorts?period=month&metric=customers"


def cold_requests(bench: Bench, count: int) -> Iterator[str]:
    # Parts are <lake>/tenant=…/month=…/part-….parquet.
    lake = TransactionLake(bench.parts[0].parents[2])
    redelivered = pl.read_parquet(bench.parts[0], n_rows=1)
    for _ in range(count):
        lake.append(redelivered)
        yield PATH


def bare(bench: Bench) -> pl.DataFrame:
    """(cohort, age, share) for every cell with a purchase; month numbers since year 0."""
    at = pl.col("occurred_at")
    purchase = pl.col("kind") == "purchase"

    def month(moment: pl.Expr) -> pl.Expr:
        return moment.dt.year().cast(pl.Int32) * 12 + moment.dt.month().cast(pl.Int32) - 1

    orders = (
        pl.scan_parquet(bench.parts)
        .select("customer_id", "occurred_at", "kind")
        .with_columns(first=at.filter(purchase).min().over("customer_id"))
        .filter(at >= pl.col("first"))
        .select("customer_id", purchase=purchase, month=month(at), cohort=month(pl.col("first")))
    )
    sizes = orders.group_by("cohort").agg(size=pl.col("customer_id").n_unique())
    active = (
        orders.filter("purchase")
        .group_by("cohort", "month")
        .agg(active=pl.col("customer_id").n_unique())
    )
    return (
        active.join(sizes, on="cohort")
        .select(
            "cohort",
            age=pl.col("month") - pl.col("cohort"),
            share=pl.col("active") / pl.col("size"),
        )
        .collect()
    )


def agrees(_: Bench, answer: dict[str, Any], computed: pl.DataFrame) -> bool:
    served = {
        (int(c["cohort"][:4]) * 12 + int(c["cohort"][5:7]) - 1, age): value
        for c in answer["cohorts"]
        for age, value in enumerate(c["values"])
        if value > 0
    }
    expected = {(cohort, age): share for cohort, age, share in computed.iter_rows()}
    return served.keys() == expected.keys() and all(
        abs(served[cell] - expected[cell]) < 1e-12 for cell in served
    )


COHORTS = Case(
    name="cohorts",
    cold_requests=cold_requests,
    warm_request=lambda _: PATH,
    bare=bare,
    agrees=agrees,
    cold_target_ms=1000.0,
    warm_target_ms=50.0,
)
