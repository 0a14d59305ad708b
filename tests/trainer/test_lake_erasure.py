"""Erasing a customer from the transaction lake, locally and on S3 (moto over HTTP)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_ingest.file_ingest import ingest_file
from retention_shared.config import Settings
from retention_trainer.lake import TransactionLake, open_lake
from retention_trainer.lake_erasure import erase_from_lake
from tests.trainer.moto_s3 import moto_s3, new_bucket
from tests.uci_orders import TEST_DATA

ERASED = "12437"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet",
        tenant_id="acme",
        source="t",
        work_dir=tmp_path_factory.mktemp("ingest"),
    )
    return result.events().collect()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> TransactionLake:
    if request.param == "local":
        return open_lake(Settings(data_dir=tmp_path))
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_lake(
        Settings(
            data_dir=tmp_path,
            lake_url=f"s3://{new_bucket(endpoint)}/retention/lake",
            s3_endpoint_url=endpoint,
        )
    )


def test_every_part_with_the_customer_is_rewritten_without_them(
    lake: TransactionLake, events: pl.DataFrame
) -> None:
    """Appended in three batches (several parts per month) and to another tenant too: after the
    erasure the tenant's lake is its events minus the customer's, no part holds the id, and the
    other tenant keeps its copy of the same id."""
    mine = events["customer_id"] == ERASED
    assert 5 < int(mine.sum()) < events.height
    third = events.height // 3
    for start in (0, third, 2 * third):
        lake.append(events.slice(start, third if start < 2 * third else events.height))
    lake.append(events.filter(mine).with_columns(tenant_id=pl.lit("other")))
    parts_before = len(lake.store.list(""))

    assert erase_from_lake(lake, "acme", ERASED) == int(mine.sum())

    expected = events.filter(~mine).sort("event_id")
    assert_frame_equal(
        lake.events("acme").sort("event_id"), expected.select(lake.events("acme").columns)
    )
    assert lake.events("other").height == int(mine.sum())
    for stored in lake.store.list("tenant=acme/"):
        frame = pl.read_parquet(io.BytesIO(lake.store.get(stored.key)))
        assert not (frame["customer_id"] == ERASED).any(), stored.key
    assert len(lake.store.list("")) <= parts_before  # parts replaced, none added
    assert erase_from_lake(lake, "acme", ERASED) == 0  # a repeated request changes nothing
