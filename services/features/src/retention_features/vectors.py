"""Stored order history → `CustomerFeatures` messages, with the shared feature definition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from retention_features.store import PartitionStore, to_microseconds
from retention_shared.config import ClockMode
from retention_shared.events import CustomerFeatures, SourceOffset
from retention_shared.features import FEATURE_NAMES, compute_features, history_summaries

CustomerKey = tuple[str, str]


def clock_frame(as_of: dict[CustomerKey, int]) -> pl.DataFrame:
    """(tenant_id, customer_id, as_of) from microsecond clocks per customer."""
    keys = list(as_of)
    return pl.DataFrame(
        {
            "tenant_id": [k[0] for k in keys],
            "customer_id": [k[1] for k in keys],
            "as_of": list(as_of.values()),
        },
        schema={"tenant_id": pl.String, "customer_id": pl.String, "as_of": pl.Int64},
    ).with_columns(pl.col("as_of").cast(pl.Datetime("us", "UTC")))


def feature_messages(
    history: pl.DataFrame,
    as_of: dict[CustomerKey, int],
    last_offsets: dict[CustomerKey, tuple[int, int]],
) -> list[CustomerFeatures]:
    """One vector per customer in `as_of`, computed at that customer's own clock."""
    clocks = clock_frame(as_of)
    vectors = compute_features(history, clocks)
    summaries = history_summaries(history, clocks)
    messages = []
    for row in vectors.iter_rows(named=True):
        key = (row["tenant_id"], row["customer_id"])
        source = last_offsets.get(key)
        messages.append(
            CustomerFeatures.model_construct(  # computed and typed here: no re-validation
                tenant_id=key[0],
                customer_id=key[1],
                as_of=row["as_of"],
                features={name: row[name] for name in FEATURE_NAMES},
                history=summaries[key],
                source=None
                if source is None
                else SourceOffset.model_construct(partition=source[0], offset=source[1]),
                computed_at=datetime.now(UTC),
            )
        )
    return messages


def current_vector(
    state_file: Path, tenant_id: str, customer_id: str, clock: ClockMode
) -> CustomerFeatures | None:
    """A customer's vector now (at the partition's tenant clock, or wall time), read beside the
    consumer from its committed state."""
    store = PartitionStore(state_file, readonly=True)
    try:
        history = store.history([(tenant_id, customer_id)])
        if history.is_empty():
            return None
        if clock is ClockMode.WALL:
            now = to_microseconds(datetime.now(UTC))
        else:
            now = store.tenant_clocks()[tenant_id]
    finally:
        store.close()
    messages = feature_messages(history, {(tenant_id, customer_id): now}, {})
    return messages[0] if messages else None
