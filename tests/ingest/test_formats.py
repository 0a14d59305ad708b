"""The same real rows as CSV (, ; tab), TSV, gzip, XLSX and Parquet give the same results."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.readers import FileFormat
from tests.ingest.support import assert_matches, ingest
from tests.support.workbook import write_xlsx


def gzipped(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


def _csv(separator: str, name: str) -> Callable[[pl.DataFrame, Path], Path]:
    def write(frame: pl.DataFrame, directory: Path) -> Path:
        frame.write_csv(directory / name, separator=separator)
        return directory / name

    return write


WRITERS: dict[str, tuple[Callable[[pl.DataFrame, Path], Path], FileFormat, str | None, bool]] = {
    "csv-comma": (_csv(",", "slice.csv"), FileFormat.CSV, ",", False),
    "csv-semicolon": (_csv(";", "slice.csv"), FileFormat.CSV, ";", False),
    "csv-tab": (_csv("\t", "slice.csv"), FileFormat.TSV, "\t", False),
    "tsv": (_csv("\t", "slice.tsv"), FileFormat.TSV, "\t", False),
    "csv-pipe-gzip": (
        lambda f, d: gzipped(_csv("|", "slice.csv")(f, d)),
        FileFormat.CSV,
        "|",
        True,
    ),
    "csv-gzip": (lambda f, d: gzipped(_csv(",", "slice.csv")(f, d)), FileFormat.CSV, ",", True),
    "xlsx": (lambda f, d: write_xlsx(f, d / "slice.xlsx"), FileFormat.XLSX, None, False),
    "xlsx-gzip": (
        lambda f, d: gzipped(write_xlsx(f, d / "slice.xlsx")),
        FileFormat.XLSX,
        None,
        True,
    ),
    "parquet-gzip": (
        lambda f, d: gzipped(f.write_parquet(d / "slice.parquet") or d / "slice.parquet"),
        FileFormat.PARQUET,
        None,
        True,
    ),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_format_gives_the_same_results(retail_slice, writer: str, tmp_path: Path) -> None:
    path, expected, layout = retail_slice
    write, file_format, delimiter, compressed = WRITERS[writer]
    written = write(pl.read_parquet(path), tmp_path)
    result = ingest(written, tmp_path / "work", chunk_rows=4_000)
    assert result.file["format"] == file_format.value
    assert result.file["delimiter"] == delimiter
    assert result.file["compressed"] is compressed
    assert result.layout.value == layout
    assert_matches(result, expected)
    # Byte for byte the events of the Parquet original, ids included.
    original = ingest(path, tmp_path / "original").events().collect()
    assert result.events().collect().equals(original)


@pytest.mark.parametrize(
    ("pattern", "order"),
    [
        ("%d/%m/%Y %H:%M", "day_first"),
        ("%m/%d/%Y %H:%M", "month_first"),
        ("%Y-%m-%d %H:%M:%S", "iso"),
    ],
)
def test_text_dates_are_detected_from_the_data(
    retail_slice, pattern: str, order: str, tmp_path: Path
) -> None:
    path, expected, _ = retail_slice
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("InvoiceDate").dt.strftime(pattern)).write_csv(tmp_path / "d.csv")
    # Small chunks: the first holds only 1..9 December, which read both ways; detection must
    # look further before it decides.
    result = ingest(tmp_path / "d.csv", tmp_path / "work", chunk_rows=1_000)
    assert result.date_format.order == order
    assert not result.date_format.ambiguous
    assert_matches(result, expected)


def test_cdnow_text_is_recognized_without_a_mapping(tmp_path: Path) -> None:
    from tests.support.paths import TEST_DATA

    source = TEST_DATA / "cdnow_sample_slice.txt"
    result = ingest(source, tmp_path)
    assert result.file["format"] == "cdnow" and result.layout.value == "cdnow"

    # Independently: one order per customer and day; zero values and exact repeats rejected.
    seen, reasons, orders = set(), {}, {}
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        customer, _, day, cds, value = line.split()
        if float(value) <= 0:
            reasons[number] = "non_positive_price"
        elif (customer, _, day, cds, value) in seen:
            reasons[number] = "duplicate_line"
        else:
            seen.add((customer, _, day, cds, value))
            total, quantity = orders.get((customer, day), (0.0, 0.0))
            orders[(customer, day)] = (total + float(value), quantity + int(cds))
    assert result.rows_read == 900
    assert dict(result.rejects().select("row", "reason").collect().iter_rows()) == reasons
    events = result.events().collect()
    assert events.height == len(orders)
    for event in events.iter_rows(named=True):
        customer, day = event["order_id"].split("-")
        total, quantity = orders[(customer, day)]
        assert event["customer_id"] == customer
        assert event["total"] == pytest.approx(total)
        [line] = event["lines"]
        assert line["quantity"] == quantity
        assert line["quantity"] * line["unit_price"] == pytest.approx(total)


def test_cdnow_master_layout_with_four_columns(tmp_path: Path) -> None:
    from tests.support.paths import TEST_DATA

    lines = (TEST_DATA / "cdnow_sample_slice.txt").read_text().splitlines()[:50]
    # The master file's shape: `customer date quantity value`, gzip-compressed for good measure.
    text = "\n".join(" ".join(line.split()[:1] + line.split()[2:]) for line in lines) + "\n"
    (tmp_path / "master.txt").write_text(text)
    result = ingest(gzipped(tmp_path / "master.txt"), tmp_path / "work")
    assert result.file["format"] == "cdnow" and result.file["compressed"] is True
    assert result.rows_read == 50 and result.accepted + result.rejected == 50
    assert result.file["columns"] == ["customer_id", "date", "quantity", "value"]
