"""The transaction lake on real events: nothing lost, nothing counted twice, tenants apart.

Every behavioural test runs twice: on a local directory and on S3 (moto's server over HTTP,
reached through `open_lake` as the service does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_shared.config import Settings
from retention_shared.event_columns import ORDER_EVENT_SCHEMA
from retention_shared.features import orders_from_event_columns
from retention_trainer.lake import (
    LAKE_SCHEMA,
    TransactionLake,
    _parquet_bytes,
    open_lake,
)
from retention_trainer.lake_erasure import erase_from_lake
from tests.support.moto_s3 import client, new_bucket

KEY = ["customer_id", "order_id", "kind"]


def orders_of(lake: TransactionLake, tenant: str = "acme") -> pl.DataFrame:
    """The lake's orders frame with products as strings, to compare with the lines' own."""
    return lake.orders(tenant).cast({"products": pl.List(pl.String)}).sort(KEY)


def parts_per_month(lake: TransactionLake, tenant: str = "acme") -> Counter[str]:
    return Counter(
        obj.key.split("/")[1]
        for obj in lake.store.list(f"tenant={tenant}/")
        if obj.key.endswith(".parquet")
    )


def test_orders_read_back_equal_what_was_appended(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    assert lake.append(events) == events.height
    expected_months = sorted(events["occurred_at"].dt.strftime("month=%Y-%m").unique())
    assert sorted(parts_per_month(lake)) == expected_months and len(expected_months) == 13
    assert_frame_equal(orders_of(lake), orders_from_event_columns(events).sort(KEY))
    assert lake.size_bytes("acme") > 0


def test_redelivered_events_count_once_and_compaction_keeps_them_once(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    half = events.head(events.height // 2)
    for batch in (events, half, half):  # a consumer redelivering after crashes
        lake.append(batch)
    assert lake.events("acme").height == events.height
    months = parts_per_month(lake)
    with_copies = [m for m, n in months.items() if n > 1]
    assert 0 < len(with_copies) < len(months)  # the redelivered half covers the earlier months
    assert lake.compact("acme", min_parts=2) == len(with_copies)
    assert set(parts_per_month(lake).values()) == {1}
    assert_frame_equal(orders_of(lake), orders_from_event_columns(events).sort(KEY))


def test_the_first_stored_copy_of_an_event_wins(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    lake.append(events.head(1))
    lake.append(events.head(1).with_columns(pl.col("total") * 2))  # same id, other content
    assert lake.events("acme")["total"].to_list() == events.head(1)["total"].to_list()


def test_the_first_copy_still_wins_after_compaction_and_later_appends(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    first = events.head(1)
    lake.append(first)
    lake.append(first.with_columns(pl.col("total") * 2))
    assert lake.compact("acme", min_parts=2) == 1
    lake.append(first.with_columns(pl.col("total") * 3))  # redelivered after the compaction
    assert lake.events("acme")["total"].to_list() == first["total"].to_list()


def test_parts_without_the_derived_columns_are_read_through_their_lines_until_compacted(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    # A month written before parts carried `items` and `products`: the event columns alone.
    month = events["occurred_at"].dt.strftime("%Y-%m")[0]
    old = events.filter(pl.col("occurred_at").dt.strftime("%Y-%m") == month)
    lake.store.put(
        f"tenant=acme/month={month}/part-00000000000000000001-00000000.parquet",
        _parquet_bytes(old.select(ORDER_EVENT_SCHEMA.names())),
    )
    lake.append(events)  # every event again, that month's too: its part has their first copies
    expected = orders_from_event_columns(events).sort(KEY)
    assert_frame_equal(orders_of(lake), expected)
    assert lake.compact("acme", min_parts=2) == 1
    keys = [o.key for o in lake.store.list("tenant=acme/")]
    stored = lake.store.scan_parquet(keys, LAKE_SCHEMA).collect()
    assert stored.height == events.height and not stored["products"].has_nulls()
    assert_frame_equal(orders_of(lake), expected)


class _Crash(BaseException):
    pass


class _CrashBeforeDelete:
    """The lake's own store, except that the process dies as compaction starts deleting."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def delete(self, keys: Sequence[str]) -> None:
        raise _Crash


def test_a_crash_during_compaction_loses_nothing_and_counts_nothing_twice(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    lake.append(events)
    lake.append(events.head(events.height // 2))
    before = parts_per_month(lake)
    crashing = TransactionLake(_CrashBeforeDelete(lake.store))  # type: ignore[arg-type]
    with pytest.raises(_Crash):
        crashing.compact("acme", min_parts=2)
    assert sum(parts_per_month(lake).values()) == sum(before.values()) + 1  # new part, old kept
    assert_frame_equal(lake.events("acme").sort("event_id"), events.sort("event_id"))
    assert lake.compact("acme", min_parts=2) > 0  # the next compaction finishes the job
    assert_frame_equal(lake.events("acme").sort("event_id"), events.sort("event_id"))


def test_tenants_are_kept_apart_and_odd_ids_are_one_path_segment(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    other = events.head(10).with_columns(tenant_id=pl.lit("globex/eu"))
    lake.append(pl.concat([events, other]))
    assert lake.tenants() == ["acme", "globex/eu"]
    assert all(obj.key.count("/") == 2 for obj in lake.store.list(""))
    assert lake.events("globex/eu").height == 10
    assert lake.events("acme").height == events.height
    assert lake.events("nobody").is_empty() and lake.size_bytes("nobody") == 0


def test_a_half_written_file_from_a_crash_is_never_read(
    events: pl.DataFrame, tmp_path: Path
) -> None:
    # Local only: an S3 PUT is never visible half-written.
    lake = TransactionLake(tmp_path)
    lake.append(events)
    month = next((tmp_path / "tenant=acme").iterdir())
    (month / ".part-99.parquet.tmp").write_bytes(b"PAR1 truncated")
    assert lake.events("acme").height == events.height


def test_s3_lakes_live_under_their_prefix_and_do_not_see_each_other(
    events: pl.DataFrame, s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = new_bucket(s3_endpoint)

    def lake_at(prefix: str) -> TransactionLake:
        url = f"s3://{bucket}/{prefix}"
        return open_lake(Settings(data_dir=tmp_path, lake_url=url, s3_endpoint_url=s3_endpoint))

    one, two = lake_at("one"), lake_at("one-more/")
    one.append(events)
    two.append(events.head(5))
    keys = [o["Key"] for o in client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert sum(k.startswith("one/tenant=acme/month=") for k in keys) == 13
    assert sum(k.startswith("one-more/tenant=acme/month=") for k in keys) == 1
    assert one.events("acme").height == events.height
    assert two.events("acme").height == 5
    assert not (tmp_path / "lake").exists()  # nothing went to the local directory


def test_a_lake_url_that_is_not_s3_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_lake(Settings(data_dir=tmp_path, lake_url="/var/lake"))


def test_a_row_outside_the_contract_never_fails_a_training_read(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    """A lake written before amounts were bounded may hold a 1e13 or infinite total: reading
    leaves those rows out, so the tenant's features (summed in 64-bit millionths) still work."""
    from retention_shared.features import compute_features

    first = events.head(2)
    bad = first.with_columns(
        order_id=pl.Series(["huge", "infinite"]),
        event_id=pl.Series(["e-huge", "e-infinite"]),
        total=pl.Series([1.0e13, float("inf")]),
    )
    lake.append(pl.concat([events, bad]))
    orders = lake.orders("acme")
    assert orders.height == events.height
    assert not orders.filter(pl.col("order_id").is_in(["huge", "infinite"])).height
    features = compute_features(orders, as_of=orders.get_column("occurred_at").max())
    assert features.height == events.get_column("customer_id").n_unique()


def test_the_state_digest_changes_with_every_write_of_the_tenant_and_only_then(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    """Results cached on `state` (segment migration) are stale exactly when it changes."""
    empty = lake.state("acme")
    lake.append(events)
    appended = lake.state("acme")
    lake.orders("acme")
    lake.append(events.head(5).with_columns(tenant_id=pl.lit("other")))
    assert lake.state("acme") == appended != empty
    lake.append(events.head(5))  # redelivered: new parts, same data, but the parts changed
    redelivered = lake.state("acme")
    assert redelivered != appended
    lake.compact("acme", min_parts=2)
    compacted = lake.state("acme")
    assert compacted != redelivered
    erase_from_lake(lake, "acme", events["customer_id"][0])  # parts rewritten under their keys
    assert lake.state("acme") != compacted
