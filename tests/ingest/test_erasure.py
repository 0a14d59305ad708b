"""Erasing a customer from a stored rejects.csv, on the rejects of the real slice."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from retention_ingest.erasure import scrub_csv
from retention_ingest.file_ingest import ingest_file
from tests.support.uci_orders import TEST_DATA

ERASED = "12437"  # the slice's one customer with a rejected row (a "Manual" line at price 0)


def test_the_customer_rows_leave_rejects_csv_and_every_other_row_stays(tmp_path: Path) -> None:
    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet",
        tenant_id="acme",
        source="t",
        work_dir=tmp_path / "work",
    )
    path = result.write_rejects_csv(tmp_path / "rejects.csv")
    before = pl.read_csv(path, infer_schema=False)
    theirs = (before["CustomerID"] == f"{ERASED}.0").fill_null(False)  # a float column, as read
    assert int(theirs.sum()) >= 1 and before.height > int(theirs.sum())

    assert scrub_csv(path, ERASED) == int(theirs.sum())

    assert ERASED.encode() not in path.read_bytes()
    assert_frame_equal(pl.read_csv(path, infer_schema=False), before.filter(~theirs))
    assert not list(tmp_path.glob(".rejects.csv*"))  # the temporary was renamed into place
    assert scrub_csv(path, ERASED) == 0
    assert scrub_csv(path, "12583") == 0  # a customer without rejected rows: file untouched
