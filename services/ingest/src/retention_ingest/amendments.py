"""An order sent again: the same (a retry), an amendment (a higher version), or a conflict.

Ingest remembers what it published of each order — its customer, time, lines and currency as a
fingerprint, and its version (`IngestStore.fingerprints`). An order sent again with the same
content is a retry: published again, harmless, since consumers keep one copy. With other content
it must carry a higher `version`: then it replaces the earlier one in features, lake and
training, and, if it names another customer, a withdrawal event takes the order away from the
customer it named before (their features live on another partition). Other content without a
higher version is a conflict: the client is told which fields differ (HTTP 409), nothing is
published.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from retention_shared.events import withdrawal_event_id

__all__ = ["Fingerprint", "Judgement", "fingerprints", "judge", "with_withdrawals"]

# What a client names when an order's content differs; the event columns behind each.
COMPARED = {"customer_id": "customer_id", "order_datetime": "occurred_at_us", "lines": "content"}


@dataclass(frozen=True)
class Fingerprint:
    order_id: str
    kind: str
    customer_id: str
    occurred_at_us: int
    content: str  # digest of the lines (as a multiset) and the currency
    version: int


def fingerprints(events: pl.DataFrame) -> list[Fingerprint]:
    """One fingerprint per event row, in row order."""
    canonical = events.select(
        "order_id",
        "kind",
        "customer_id",
        pl.col("occurred_at").dt.epoch("us").alias("occurred_at_us"),
        pl.concat_str(
            pl.col("lines")
            .list.eval(pl.element().struct.json_encode())
            .list.sort()
            .list.join("\n"),
            pl.col("currency").fill_null(""),
            separator="\x1f",
        ).alias("content"),
        "version",
    )
    return [
        Fingerprint(
            order_id,
            kind,
            customer,
            at,
            hashlib.sha256(content.encode()).hexdigest()[:32],
            version,
        )
        for order_id, kind, customer, at, content, version in canonical.iter_rows()
    ]


@dataclass
class Judgement:
    """Per event row: its conflict (the fields that differ), or the earlier fingerprint it
    amends; rows in neither are new orders or retries."""

    conflicts: dict[int, list[str]]
    amended: dict[int, Fingerprint]


def judge(sent: list[Fingerprint], stored: dict[tuple[str, str], Fingerprint]) -> Judgement:
    judgement = Judgement(conflicts={}, amended={})
    for row, fingerprint in enumerate(sent):
        earlier = stored.get((fingerprint.order_id, fingerprint.kind))
        if earlier is None:
            continue
        if fingerprint.version > earlier.version:
            judgement.amended[row] = earlier
            continue
        differs = [
            name
            for name, attribute in COMPARED.items()
            if getattr(fingerprint, attribute) != getattr(earlier, attribute)
        ]
        if differs:
            judgement.conflicts[row] = differs
    return judgement


def with_withdrawals(events: pl.DataFrame, amended: dict[int, Fingerprint]) -> pl.DataFrame:
    """`events` plus, for each amendment that names another customer, the event withdrawing the
    order from the earlier customer (their id, the amendment's version, `withdrawn`)."""
    moved = [
        (row, earlier)
        for row, earlier in amended.items()
        if earlier.customer_id != events["customer_id"][row]
    ]
    if not moved:
        return events
    rows = events[[row for row, _ in moved]]
    withdrawals = rows.with_columns(
        pl.Series("customer_id", [earlier.customer_id for _, earlier in moved], pl.String),
        pl.Series(
            "event_id",
            [
                withdrawal_event_id(event_id, earlier.customer_id, version)
                for (event_id, version), (_, earlier) in zip(
                    rows.select("event_id", "version").iter_rows(), moved, strict=True
                )
            ],
            pl.String,
        ),
        withdrawn=pl.lit(True),
    )
    return pl.concat([withdrawals, events])
