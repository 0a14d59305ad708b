"""The transaction lake on real events: nothing lost, nothing counted twice, tenants apart."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_ingest.file_ingest import ingest_file
from retention_shared.features import orders_from_event_columns
from retention_trainer.lake import TransactionLake
from tests.uci_orders import TEST_DATA

KEY = ["customer_id", "order_id", "kind"]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    work = tmp_path_factory.mktemp("ingest")
    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet", tenant_id="acme", source="t", work_dir=work
    )
    return result.events().collect()


def test_orders_read_back_equal_what_was_appended(events: pl.DataFrame, tmp_path: Path) -> None:
    lake = TransactionLake(tmp_path)
    assert lake.append(events) == events.height
    months = sorted(p.name for p in (tmp_path / "tenant=acme").iterdir())
    expected_months = sorted(events["occurred_at"].dt.strftime("month=%Y-%m").unique())
    assert months == expected_months and len(months) == 13
    assert_frame_equal(lake.orders("acme").sort(KEY), orders_from_event_columns(events).sort(KEY))
    assert lake.size_bytes("acme") > 0


def test_redelivered_events_count_once_and_compaction_keeps_them_once(
    events: pl.DataFrame, tmp_path: Path
) -> None:
    lake = TransactionLake(tmp_path)
    half = events.head(events.height // 2)
    for batch in (events, half, half):  # a consumer redelivering after crashes
        lake.append(batch)
    assert lake.events("acme").height == events.height
    months = list((tmp_path / "tenant=acme").iterdir())
    with_copies = [m for m in months if len(list(m.glob("part-*.parquet"))) > 1]
    assert 0 < len(with_copies) < len(months)  # the redelivered half covers the earlier months
    assert lake.compact("acme", min_parts=2) == len(with_copies)
    assert all(
        len(list(month.glob("part-*.parquet"))) == 1
        for month in (tmp_path / "tenant=acme").iterdir()
    )
    assert_frame_equal(lake.orders("acme").sort(KEY), orders_from_event_columns(events).sort(KEY))


def test_the_first_stored_copy_of_an_event_wins(events: pl.DataFrame, tmp_path: Path) -> None:
    lake = TransactionLake(tmp_path)
    lake.append(events.head(1))
    lake.append(events.head(1).with_columns(pl.col("total") * 2))  # same id, other content
    assert lake.events("acme")["total"].to_list() == events.head(1)["total"].to_list()


def test_tenants_are_kept_apart_and_odd_ids_are_one_path_segment(
    events: pl.DataFrame, tmp_path: Path
) -> None:
    lake = TransactionLake(tmp_path)
    other = events.head(10).with_columns(tenant_id=pl.lit("globex/eu"))
    lake.append(pl.concat([events, other]))
    assert lake.tenants() == ["acme", "globex/eu"]
    assert lake.events("globex/eu").height == 10
    assert lake.events("acme").height == events.height
    assert lake.events("nobody").is_empty()


def test_a_half_written_file_from_a_crash_is_never_read(
    events: pl.DataFrame, tmp_path: Path
) -> None:
    lake = TransactionLake(tmp_path)
    lake.append(events)
    month = next((tmp_path / "tenant=acme").iterdir())
    (month / ".part-99.parquet.tmp").write_bytes(b"PAR1 truncated")
    assert lake.events("acme").height == events.height
