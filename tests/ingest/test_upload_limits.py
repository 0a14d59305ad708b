"""An upload is bounded by what it unpacks to: bytes after gzip and data rows, checked from what
the file declares before it is accepted, and counted while it is read."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.file_ingest import inspect_file
from retention_ingest.upload_limits import UploadLimits
from retention_shared.config import Settings
from tests.ingest.support import ingest
from tests.support.paths import TEST_DATA
from tests.support.workbook import write_xlsx

SLICE = TEST_DATA / "online_retail_slice.parquet"


def real_csv(rows: int) -> bytes:
    """The first `rows` rows of the real slice as CSV text."""
    return pl.read_parquet(SLICE).head(rows).write_csv().encode()


def bomb(copies: int) -> bytes:
    """The slice's first 200 rows (19 KB, inside deflate's window) repeated `copies` times:
    a small gzip of many rows."""
    text = real_csv(200)
    header, body = text.split(b"\n", 1)
    return header + b"\n" + body * copies


def refused(code: IngestErrorCode, call: object, *args: object, **kwargs: object) -> IngestError:
    with pytest.raises(IngestError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == code, caught.value
    assert caught.value.field == "file" and "split it" in caught.value.message
    return caught.value


def test_limits_come_from_settings() -> None:
    limits = UploadLimits.from_settings(Settings(max_upload_unpacked_bytes=123, max_upload_rows=45))
    assert (limits.max_unpacked_bytes, limits.max_rows) == (123, 45)
    assert UploadLimits() == UploadLimits.from_settings(Settings())


def test_a_gzip_declaring_more_than_the_limit_is_refused_when_opened(tmp_path: Path) -> None:
    content = bomb(1_500)  # 300,000 rows, 28 MB of text
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(content))
    assert path.stat().st_size < len(content) / 100
    limits = UploadLimits(max_unpacked_bytes=len(content) - 1)
    error = refused(
        IngestErrorCode.UPLOAD_TOO_LARGE, inspect_file, path, work_dir=tmp_path, limits=limits
    )
    assert "declares" in error.message
    # At the limit it is fine.
    inspect_file(path, work_dir=tmp_path, limits=UploadLimits(max_unpacked_bytes=len(content)))


def test_a_gzip_hiding_its_size_is_stopped_while_reading(tmp_path: Path) -> None:
    """Two gzip members: the size field at the end is the small second one's, so only counting
    the decompressed bytes finds that the file is big. Reading stops soon after the limit."""
    path = tmp_path / "hidden.csv.gz"
    path.write_bytes(gzip.compress(bomb(1_500)) + gzip.compress(real_csv(50).split(b"\n", 1)[1]))
    limit = 5_000_000
    progress = []
    refused(
        IngestErrorCode.UPLOAD_TOO_LARGE,
        ingest,
        path,
        tmp_path / "w",
        limits=UploadLimits(max_unpacked_bytes=limit),
        chunk_rows=20_000,
        on_progress=progress.append,
    )
    # Nothing was grouped: it failed while reading (the reader reads ahead, so maybe before the
    # first chunk was cleaned), within a chunk or two of the limit (rows are ~95 bytes).
    assert not any((tmp_path / "w" / "events").glob("*.parquet"))
    assert not progress or progress[-1].rows_read < 2 * limit / 90


def test_more_rows_than_the_limit_fail_within_a_chunk(tmp_path: Path) -> None:
    path = tmp_path / "many.csv.gz"
    path.write_bytes(gzip.compress(bomb(500)))  # 100,000 rows
    progress = []
    refused(
        IngestErrorCode.TOO_MANY_ROWS,
        ingest,
        path,
        tmp_path / "w",
        limits=UploadLimits(max_rows=25_000),
        chunk_rows=10_000,
        on_progress=progress.append,
    )
    assert progress[-1].rows_read <= 25_000
    # Exactly at the limit is fine.
    result = ingest(path, tmp_path / "ok", limits=UploadLimits(max_rows=100_000))
    assert result.rows_read == 100_000


def test_a_parquet_file_declaring_too_many_rows_is_refused_when_opened(tmp_path: Path) -> None:
    rows = pl.read_parquet(SLICE).height
    refused(
        IngestErrorCode.TOO_MANY_ROWS,
        inspect_file,
        SLICE,
        work_dir=tmp_path,
        limits=UploadLimits(max_rows=rows - 1),
    )
    refused(
        IngestErrorCode.UPLOAD_TOO_LARGE,
        inspect_file,
        SLICE,
        work_dir=tmp_path,
        limits=UploadLimits(max_unpacked_bytes=100_000),
    )
    assert inspect_file(SLICE, work_dir=tmp_path, limits=UploadLimits(max_rows=rows))


def test_a_workbook_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    write_xlsx(pl.read_parquet(SLICE).head(2_000), path)
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    assert unpacked > path.stat().st_size  # a workbook is a zip
    refused(
        IngestErrorCode.UPLOAD_TOO_LARGE,
        inspect_file,
        path,
        work_dir=tmp_path,
        limits=UploadLimits(max_unpacked_bytes=unpacked - 1),
    )
    refused(
        IngestErrorCode.TOO_MANY_ROWS,
        inspect_file,
        path,
        work_dir=tmp_path,
        limits=UploadLimits(max_rows=1_999),
    )


def test_a_compressed_workbook_is_stopped_while_spooling(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet.gz"
    path.write_bytes(gzip.compress(SLICE.read_bytes()) + gzip.compress(b""))  # size field 0
    refused(
        IngestErrorCode.UPLOAD_TOO_LARGE,
        inspect_file,
        path,
        work_dir=tmp_path,
        limits=UploadLimits(max_unpacked_bytes=SLICE.stat().st_size // 2),
    )
    assert not list((tmp_path / "spool").glob("*"))  # the partial copy is gone
