"""Shared fixtures of the trainer tests: the CDNOW sample summary (see tests/data/README.md),
and real events in a lake kept locally or on a moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.file_ingest import ingest_file
from retention_shared.config import Settings
from retention_trainer.lake import LocalStore, S3Store, TransactionLake, open_lake
from tests.support.moto_s3 import moto_s3, new_bucket
from tests.support.uci_orders import TEST_DATA

DATA = TEST_DATA


@pytest.fixture(scope="session")
def cdnow() -> pl.DataFrame:
    """CDNOW sample, 2,357 customers: x, t_x, T in weeks and zbar (mean repeat spend, $)."""
    return pl.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    work = tmp_path_factory.mktemp("ingest")
    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet", tenant_id="acme", source="t", work_dir=work
    )
    return result.events().collect()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> TransactionLake:
    if request.param == "local":
        lake = open_lake(Settings(data_dir=tmp_path))
        assert isinstance(lake.store, LocalStore) and lake.store.root == tmp_path / "lake"
        return lake
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = Settings(
        data_dir=tmp_path,
        lake_url=f"s3://{new_bucket(endpoint)}/retention/lake",
        s3_endpoint_url=endpoint,
    )
    lake = open_lake(settings)
    assert isinstance(lake.store, S3Store)
    # Small pages, so every S3 test also lists across several pages (13 months > 5).
    lake.store.page_size = 5
    return lake
