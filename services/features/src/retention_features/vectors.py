"""Feature vectors → `CustomerFeatures` payloads, with the shared feature definition.

Two ways, one JSON shape: `running_payload` writes the vector of a customer's running totals
(`RunningVector`, the consumer's hot path) with plain string formatting, and `feature_payloads`
computes vectors from stored history with `compute_features` and encodes them with polars in one
vectorized pass (the inspection API, and customers the running totals cannot serve). Tests decode
both with the `CustomerFeatures` model and compare them with the objects `history_summaries`
builds from the same orders.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl

from retention_features.store import PartitionStore, to_microseconds
from retention_shared.config import ClockMode
from retention_shared.events import SCHEMA_VERSION, CustomerFeatures, decode_event
from retention_shared.features import FEATURE_NAMES, compact_history, compute_features
from retention_shared.features.running import HistoryEntry, RunningVector
from retention_shared.topics import customer_key

CustomerKey = tuple[str, str]
KEY = ["tenant_id", "customer_id"]
_ISO = "%Y-%m-%dT%H:%M:%S%.6fZ"


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


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("UTC").dt.to_string(_ISO).alias(column)


def feature_payloads(
    history: pl.DataFrame,
    as_of: dict[CustomerKey, int],
    last_offsets: dict[CustomerKey, tuple[int, int]],
) -> list[tuple[bytes, bytes]]:
    """(key, `CustomerFeatures` JSON) per customer in `as_of`, each at that customer's own clock."""
    clocks = clock_frame(as_of)
    vectors = compute_features(history, clocks)
    purchase = pl.col("kind") == "purchase"
    summaries = (
        history.join(clocks, on=KEY)
        .filter(pl.col("occurred_at") <= pl.col("as_of"))
        .group_by(KEY)
        .agg(
            first_purchase_at=pl.col("occurred_at").filter(purchase).min(),
            last_purchase_at=pl.col("occurred_at").filter(purchase).max(),
            last_event_at=pl.col("occurred_at").max(),
            purchase_orders=purchase.sum(),
            cancellations=(~purchase).sum(),
        )
    )
    kept_orders = (
        compact_history(history, clocks)
        .group_by(KEY, maintain_order=True)
        .agg(orders=pl.struct(_iso("occurred_at"), "kind", "total"))
    )
    sources = pl.DataFrame(
        [(t, c, p, o) for (t, c), (p, o) in last_offsets.items()],
        schema={
            "tenant_id": pl.String,
            "customer_id": pl.String,
            "partition": pl.Int64,
            "offset": pl.Int64,
        },
        orient="row",
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    frame = (
        vectors.join(summaries, on=KEY, how="left")
        .join(kept_orders, on=KEY, how="left")
        .join(sources, on=KEY, how="left")
    )
    payloads = frame.select(
        pl.struct(
            pl.lit(SCHEMA_VERSION).alias("schema_version"),
            pl.lit("CustomerFeatures").alias("event_type"),
            "tenant_id",
            "customer_id",
            _iso("as_of"),
            pl.struct(FEATURE_NAMES).alias("features"),
            pl.struct(
                _iso("first_purchase_at"),
                _iso("last_purchase_at"),
                _iso("last_event_at"),
                "purchase_orders",
                "cancellations",
                "orders",
            ).alias("history"),
            pl.when(pl.col("partition").is_not_null())
            .then(pl.struct("partition", "offset"))
            .alias("source"),
            pl.lit(now).alias("computed_at"),
        ).struct.json_encode()
    ).to_series()
    keys = [customer_key(t, c) for t, c in frame.select(KEY).iter_rows()]
    return list(zip(keys, payloads.cast(pl.Binary).to_list(), strict=True))


_NAIVE_EPOCH = datetime(1970, 1, 1)
_FEATURE_KEYS = {name: json.dumps(name) + ":" for name in FEATURE_NAMES}


@lru_cache(maxsize=1 << 16)
def _iso_us(moment_us: int) -> str:
    """`"…Z"`: the instant as polars' `_ISO` writes it (quoted, JSON-ready)."""
    moment = _NAIVE_EPOCH + timedelta(microseconds=moment_us)
    return f'"{moment.isoformat(timespec="microseconds")}Z"'


def _iso_or_null(moment_us: int | None) -> str:
    return "null" if moment_us is None else _iso_us(moment_us)


@lru_cache(maxsize=1 << 16)
def _history_order(entry: HistoryEntry) -> str:
    """One `HistoryOrder` as JSON, memoized: a customer's history is sent with every vector."""
    moment_us, kind, total = entry
    return f'{{"occurred_at":{_iso_us(moment_us)},"kind":"{kind}","total":{total!r}}}'


def running_payload(
    tenant_id: str,
    customer_id: str,
    vector: RunningVector,
    source: tuple[int, int] | None,
    computed_at: str,
) -> tuple[bytes, bytes]:
    """(key, `CustomerFeatures` JSON) of one customer's running vector; the same document
    `feature_payloads` writes. `computed_at` is the batch's time, already JSON-quoted."""
    # repr of a float is its shortest round-trip form, valid JSON for the finite values here.
    features = ",".join(
        _FEATURE_KEYS[name] + repr(value) for name, value in vector.features.items()
    )
    orders = ",".join(map(_history_order, vector.history))
    where = "null" if source is None else f'{{"partition":{source[0]},"offset":{source[1]}}}'
    payload = (
        f'{{"schema_version":{SCHEMA_VERSION},"event_type":"CustomerFeatures",'
        f'"tenant_id":{json.dumps(tenant_id)},"customer_id":{json.dumps(customer_id)},'
        f'"as_of":{_iso_us(vector.as_of_us)},"features":{{{features}}},'
        f'"history":{{"first_purchase_at":{_iso_or_null(vector.first_purchase_us)},'
        f'"last_purchase_at":{_iso_or_null(vector.last_purchase_us)},'
        f'"last_event_at":{_iso_us(vector.last_event_us)},'
        f'"purchase_orders":{vector.purchase_orders},"cancellations":{vector.cancellations},'
        f'"orders":[{orders}]}},"source":{where},"computed_at":{computed_at}}}'
    )
    return customer_key(tenant_id, customer_id), payload.encode()


def batch_time() -> str:
    """The batch's `computed_at` for `running_payload`."""
    return _iso_us(to_microseconds(datetime.now(UTC)))


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
    payloads = feature_payloads(history, {(tenant_id, customer_id): now}, {})
    return decode_event(CustomerFeatures, payloads[0][1]) if payloads else None
