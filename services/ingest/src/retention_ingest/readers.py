"""Reading a retailer's file as a sequence of bounded polars chunks, whatever its format.

The format is decided by the bytes, never the file name: gzip (1f 8b) is looked through; Parquet
starts with `PAR1`; an XLSX workbook is a zip holding `xl/workbook.xml`; anything else must be
UTF-8 text: CDNOW's headerless whitespace layout (`customer [index] YYYYMMDD quantity value`) or
a delimited file whose delimiter (`,` `;` tab `|`) is detected from its first lines.

Memory: CSV/TSV/CDNOW text is streamed by pyarrow's CSV reader (also through gzip), Parquet by
row batches; both hold about one chunk at a time. XLSX is the exception: calamine parses a whole
sheet at once, which Excel's own limit (1,048,576 rows) keeps bounded.

Delimited text is read with every column as text, so that a bad value becomes a row rejected
with a reason (see `cleaning`) instead of failing the file.

Limits (`upload_limits`): what a file declares — a gzip's size field, a workbook's unpacked
parts, a Parquet file's row count and sizes — is checked when it is opened; decompressed text is
counted as it streams, and reading stops as soon as it passes the limit.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import fastexcel
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.mapping import Layout
from retention_ingest.upload_limits import UploadLimits

DEFAULT_CHUNK_ROWS = 200_000
DELIMITERS = (",", ";", "\t", "|")
_HEAD_BYTES = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032
_CDNOW_LINE = re.compile(r"^\d+(?:\s+\d+)?\s+\d{8}\s+-?\d+\s+-?\d+(?:\.\d+)?$")
_CDNOW_COLUMNS = {
    4: ["customer_id", "date", "quantity", "value"],
    # lifetimes' CDNOW_sample.txt adds the customer's index in the 1/10 sample.
    5: ["customer_id", "customer_index", "date", "quantity", "value"],
}


class FileFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    XLSX = "xlsx"
    PARQUET = "parquet"
    CDNOW = "cdnow"


@dataclass
class TableSource:
    """An opened file: what it is, its columns, and its rows as chunks (read once per call)."""

    path: Path
    file_format: FileFormat
    compressed: bool
    columns: list[str]
    # For sizing work (spill buckets); exact for Parquet and XLSX, estimated from bytes for text.
    estimated_rows: int
    read_chunks: Callable[[int], Iterator[pl.DataFrame]]
    delimiter: str | None = None
    layout_hint: Layout | None = None
    sheet: str | None = None
    # The columns' types where the format has them (Parquet); None where every value is text.
    schema: dict[str, pl.DataType] | None = None

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pl.DataFrame]:
        """The data rows in file order, about `rows` at a time."""
        return self.read_chunks(rows)

    def describe(self) -> dict[str, object]:
        return {
            "format": self.file_format.value,
            "compressed": self.compressed,
            "delimiter": self.delimiter,
            "sheet": self.sheet,
        }


def open_table(
    path: Path,
    *,
    spool_dir: Path,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    limits: UploadLimits | None = None,
) -> TableSource:
    """Detect the format of `path` and read its header; rows are read later by `chunks()`.

    `spool_dir` receives the decompressed copy of a gzip-compressed Parquet or XLSX file (both
    need random access). `delimiter` forces a CSV delimiter instead of detecting it. Raises
    `upload_too_large` / `too_many_rows` for what the file declares beyond `limits`.
    """
    path = Path(path)
    limits = limits or UploadLimits()
    size = path.stat().st_size
    if size == 0:
        raise IngestError(IngestErrorCode.EMPTY_FILE, "the file is empty", "file")
    with path.open("rb") as handle:
        magic = handle.read(4)
    compressed = magic.startswith(_GZIP_MAGIC)
    unpacked = _gzip_declared_size(path, size) if compressed else size
    if unpacked is not None:
        limits.check_unpacked(
            unpacked, "the gzip file (by the size it declares)" if compressed else "the file"
        )
    head, whole = _read_head(path, compressed, size)
    if head.startswith(b"PAR1") or head.startswith(b"PK\x03\x04"):
        binary = _spool_gzip(path, spool_dir, limits) if compressed else path
        if head.startswith(b"PAR1"):
            return _open_parquet(binary, compressed, limits)
        return _open_xlsx(binary, compressed, sheet, limits)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise IngestError(
            IngestErrorCode.UNKNOWN_FORMAT,
            "legacy Excel (.xls) files are not supported; save the sheet as .xlsx or CSV",
            "file",
        )
    # Compressed text without a believable declared size: typically 4-8x smaller.
    content_bytes = unpacked if unpacked is not None else size * 6
    return _open_text(path, compressed, head, whole, content_bytes, delimiter, limits)


# --- detection ----------------------------------------------------------------------------


def _read_head(path: Path, compressed: bool, size: int) -> tuple[bytes, bool]:
    """The first bytes of the (decompressed) content, and whether that is all of it."""
    if not compressed:
        with path.open("rb") as handle:
            return handle.read(_HEAD_BYTES), size <= _HEAD_BYTES
    try:
        with gzip.open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            whole = len(head) < _HEAD_BYTES or not handle.read(1)
    except EOFError:
        raise IngestError(
            IngestErrorCode.TRUNCATED_FILE, "the gzip file is truncated (upload cut short?)", "file"
        ) from None
    except (OSError, zlib.error) as exc:
        raise IngestError(
            IngestErrorCode.UNKNOWN_FORMAT, f"the gzip file is corrupt: {exc}", "file"
        ) from None
    if not head.strip():
        raise IngestError(IngestErrorCode.EMPTY_FILE, "the file is empty (after gzip)", "file")
    return head, whole


def _gzip_declared_size(path: Path, size: int) -> int | None:
    """The size a gzip file says it unpacks to (its last member's ISIZE, modulo 4 GiB), or None
    when deflate could not reach it (above its ~1032:1 ratio: a cut-off file ends in other
    bytes). A hint for sizing and an early refusal; what it holds is counted while reading."""
    with path.open("rb") as handle:
        handle.seek(-4, 2)
        declared = int(struct.unpack("<I", handle.read(4))[0])
    return declared if declared <= _MAX_DEFLATE_RATIO * size else None


class _LimitedStream:
    """A readable stream that counts bytes and ends (flagging `exceeded`) past `limit`."""

    def __init__(self, inner: object, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0
        self.exceeded = False
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if self.exceeded:
            return b""
        data: bytes = self.inner.read(size)  # type: ignore[attr-defined]
        self.count += len(data)
        if self.count > self.limit:
            self.exceeded = True  # the caller raises upload_too_large
            return b""
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _spool_gzip(path: Path, spool_dir: Path, limits: UploadLimits) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    target = spool_dir / f"{path.name}.decompressed"
    try:
        with gzip.open(path, "rb") as source, target.open("wb") as sink:
            limited = _LimitedStream(source, limits.max_unpacked_bytes)
            shutil.copyfileobj(limited, sink, 1 << 20)  # type: ignore[misc]
    except EOFError:
        raise IngestError(
            IngestErrorCode.TRUNCATED_FILE, "the gzip file is truncated (upload cut short?)", "file"
        ) from None
    if limited.exceeded:
        target.unlink()
        limits.check_unpacked(limited.count, "the gzip file")
    return target


def _decode_head(head: bytes, whole: bool) -> str:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # Not final unless whole: the head may end inside a multi-byte character.
        return decoder.decode(head, final=whole)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise IngestError(
            IngestErrorCode.NOT_UTF8,
            f"line {line} is not UTF-8 (byte 0x{head[exc.start]:02x}); export the file as UTF-8",
            "file",
        ) from None


def _open_text(
    path: Path,
    compressed: bool,
    head: bytes,
    whole: bool,
    content_bytes: int,
    delimiter: str | None,
    limits: UploadLimits,
) -> TableSource:
    if b"\x00" in head:
        raise IngestError(
            IngestErrorCode.UNKNOWN_FORMAT,
            "the file is binary but not Parquet or XLSX (gzip-compressed or not)",
            "file",
        )
    text = _decode_head(head, whole)
    lines = text.splitlines()
    if not whole:
        lines = lines[:-1]  # cut off mid-line
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise IngestError(IngestErrorCode.EMPTY_FILE, "the file has no text", "file")
    # Only used for sizing the spill (`content_bytes` is a gzip's declared size, else a guess).
    average_line = max(1, len(head) // max(1, len(text.splitlines())))
    estimated_rows = max(1, content_bytes // average_line)
    cdnow = _cdnow_header_lines(lines) if delimiter is None else None
    if cdnow is not None:
        fields = len(lines[cdnow].split())
        columns = _CDNOW_COLUMNS[fields]
        return TableSource(
            path=path,
            file_format=FileFormat.CDNOW,
            compressed=compressed,
            columns=columns,
            estimated_rows=estimated_rows,
            read_chunks=lambda rows: _cdnow_chunks(
                path, compressed, columns, cdnow, rows * average_line, limits
            ),
            layout_hint=Layout.CDNOW,
        )
    chosen = _detect_delimiter(lines, delimiter)
    columns = _header_names(next(csv.reader([lines[0]], delimiter=chosen)))
    return TableSource(
        path=path,
        file_format=FileFormat.TSV if chosen == "\t" else FileFormat.CSV,
        compressed=compressed,
        columns=columns,
        estimated_rows=estimated_rows,
        read_chunks=lambda rows: _csv_chunks(
            path, compressed, chosen, columns, rows * average_line, limits
        ),
        delimiter=chosen,
    )


def _cdnow_header_lines(lines: list[str]) -> int | None:
    """0 or 1 (a header line such as lifetimes' master file has) if the text is CDNOW, else None."""
    skip = 1 if re.search(r"[A-Za-z]", lines[0]) else 0
    sample = [line.strip() for line in lines[skip : skip + 50]]
    if not sample or not all(_CDNOW_LINE.match(line) for line in sample):
        return None
    counts = {len(line.split()) for line in sample}
    return skip if len(counts) == 1 and counts <= set(_CDNOW_COLUMNS) else None


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    return [len(row) for row in csv.reader(lines[:200], delimiter=delimiter)]


def _detect_delimiter(lines: list[str], forced: str | None) -> str:
    """The delimiter that splits the header into the most columns, consistently in later lines."""
    scored: dict[str, tuple[float, int]] = {}
    for candidate in DELIMITERS:
        counts = _field_counts(lines, candidate)
        header = counts[0]
        consistent = sum(count == header for count in counts[1:]) / max(1, len(counts) - 1)
        scored[candidate] = (consistent, header)
    usable = {d: s for d, s in scored.items() if s[1] > 1}
    shown = lines[0][:120]
    if forced is not None:
        if _field_counts(lines, forced)[0] > 1:
            return forced
        better = max(usable, key=lambda d: usable[d]) if usable else None
        raise IngestError(
            IngestErrorCode.WRONG_DELIMITER,
            f"the header {shown!r} does not split into columns on {forced!r}"
            + (f"; the file looks {better!r}-separated" if better else ""),
            "delimiter",
        )
    if not usable:
        raise IngestError(
            IngestErrorCode.WRONG_DELIMITER,
            f"the header {shown!r} does not split into columns on any supported delimiter "
            "(comma, semicolon, tab, pipe)",
            "delimiter",
        )
    return max(usable, key=lambda d: usable[d])


def _header_names(raw: list[str]) -> list[str]:
    names: list[str] = []
    for index, name in enumerate(raw):
        name = name.strip() or f"column_{index + 1}"
        base, copy = name, 2
        while name in names:
            name, copy = f"{base}_{copy}", copy + 1
        names.append(name)
    return names


# --- text ---------------------------------------------------------------------------------


def _block_size(chunk_bytes: int) -> int:
    return max(1 << 16, min(chunk_bytes, 1 << 28))


def _arrow_batches(
    path: Path,
    compressed: bool,
    read_options: pa_csv.ReadOptions,
    parse_options: pa_csv.ParseOptions,
    convert_options: pa_csv.ConvertOptions,
    columns: list[str],
    limits: UploadLimits,
) -> Iterator[pa.RecordBatch]:
    """pyarrow's streaming CSV reader, its failures turned into `IngestError`s; decompressed
    text is counted and ends with `upload_too_large` past the limit."""
    stream = pa.input_stream(str(path), compression="gzip" if compressed else None)
    limited = _LimitedStream(stream, limits.max_unpacked_bytes) if compressed else None
    source = stream if limited is None else pa.PythonFile(limited, mode="r")
    try:
        reader = pa_csv.open_csv(source, read_options, parse_options, convert_options)
        for batch in reader:
            if limited is not None and limited.exceeded:
                break
            yield batch
        if limited is not None and limited.exceeded:
            limits.check_unpacked(limited.count, "the gzip file")
    except pa.ArrowInvalid as exc:
        if limited is not None and limited.exceeded:  # cut off mid-row by the limit
            limits.check_unpacked(limited.count, "the gzip file")
        raise _csv_error(str(exc), path, compressed, columns) from None
    except (OSError, EOFError) as exc:
        if "runcated" in str(exc) or isinstance(exc, EOFError):
            raise IngestError(
                IngestErrorCode.TRUNCATED_FILE,
                "the gzip file is truncated (upload cut short?)",
                "file",
            ) from None
        raise
    finally:
        stream.close()


def _csv_error(message: str, path: Path, compressed: bool, columns: list[str]) -> IngestError:
    if "UTF8" in message or "UTF-8" in message:
        column = re.search(r"column #(\d+)", message)
        name = (
            columns[int(column.group(1))]
            if column and int(column.group(1)) < len(columns)
            else None
        )
        return IngestError(
            IngestErrorCode.NOT_UTF8,
            f"column {name!r} has bytes that are not UTF-8; export the file as UTF-8"
            if name
            else "the file has bytes that are not UTF-8; export the file as UTF-8",
            name or "file",
        )
    fields = re.search(r"Expected (\d+) columns, got (\d+): ?(.*)", message, re.S)
    if fields:
        expected, got, row = fields.group(1), fields.group(2), fields.group(3).strip()[:120]
        if not compressed and not _ends_with_newline(path) and int(got) < int(expected):
            return IngestError(
                IngestErrorCode.TRUNCATED_FILE,
                f"the file ends inside a row ({got} of {expected} fields: {row!r}); "
                "was the upload cut short?",
                "file",
            )
        return IngestError(
            IngestErrorCode.MALFORMED_CSV,
            f"a row has {got} fields where the header has {expected}: {row!r} (a truncated file, "
            "an unclosed quote, or a delimiter inside an unquoted value)",
            "file",
        )
    return IngestError(
        IngestErrorCode.MALFORMED_CSV, f"the file is not valid CSV: {message}", "file"
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) in (b"\n", b"\r")


def _csv_chunks(
    path: Path,
    compressed: bool,
    delimiter: str,
    columns: list[str],
    chunk_bytes: int,
    limits: UploadLimits,
) -> Iterator[pl.DataFrame]:
    batches = _arrow_batches(
        path,
        compressed,
        pa_csv.ReadOptions(column_names=columns, skip_rows=1, block_size=_block_size(chunk_bytes)),
        pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        pa_csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string())),
        columns,
        limits,
    )
    for batch in batches:
        if batch.num_rows:
            yield pl.from_arrow(batch)  # type: ignore[misc]


def _cdnow_chunks(
    path: Path,
    compressed: bool,
    columns: list[str],
    header_lines: int,
    chunk_bytes: int,
    limits: UploadLimits,
) -> Iterator[pl.DataFrame]:
    batches = _arrow_batches(
        path,
        compressed,
        pa_csv.ReadOptions(
            column_names=["line"], skip_rows=header_lines, block_size=_block_size(chunk_bytes)
        ),
        # A delimiter that never occurs in text: every line is one value, split below.
        pa_csv.ParseOptions(delimiter="\x1f", quote_char=False),
        pa_csv.ConvertOptions(column_types={"line": pa.string()}),
        ["line"],
        limits,
    )
    for batch in batches:
        lines = pl.from_arrow(batch).lazy()  # type: ignore[union-attr]
        tokens = pl.col("line").str.strip_chars().str.split(" ")
        yield (
            lines.with_columns(pl.col("line").str.replace_all(r"\s+", " "))
            .select(tokens.list.get(i, null_on_oob=True).alias(c) for i, c in enumerate(columns))
            .collect()
        )


# --- parquet and xlsx ---------------------------------------------------------------------


def _open_parquet(path: Path, compressed: bool, limits: UploadLimits) -> TableSource:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(
            IngestErrorCode.TRUNCATED_FILE,
            f"the Parquet file is damaged or cut short ({exc})",
            "file",
        ) from None
    rows = parquet.metadata.num_rows
    if rows == 0:
        raise IngestError(IngestErrorCode.NO_ROWS, "the Parquet file has no rows", "file")
    limits.check_rows(rows, "the Parquet file")
    metadata = parquet.metadata
    unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    limits.check_unpacked(unpacked, "the Parquet file (by its metadata)")

    def chunks(size: int) -> Iterator[pl.DataFrame]:
        # polars' streaming reader: ~20x faster than pyarrow's iter_batches + from_arrow here.
        yield from pl.scan_parquet(path).collect_batches(chunk_size=size)

    return TableSource(
        path=path,
        file_format=FileFormat.PARQUET,
        compressed=compressed,
        columns=list(parquet.schema_arrow.names),
        estimated_rows=rows,
        read_chunks=chunks,
        schema=_readable_parquet_schema(path),
    )


def _readable_parquet_schema(path: Path) -> dict[str, pl.DataType]:
    """The file's column types as polars reads them; a column polars cannot read at all (a
    decimal wider than 38 digits) refuses the file, naming it, before any row is read."""
    scan = pl.scan_parquet(path)
    try:
        schema = dict(scan.collect_schema())
        scan.head(1).collect()
    except pl.exceptions.PolarsError as exc:
        unreadable = []
        for name in pq.read_schema(path).names:
            try:
                scan.select(name).head(1).collect()
            except pl.exceptions.PolarsError:
                unreadable.append(name)
        raise IngestError(
            IngestErrorCode.UNREADABLE_COLUMN,
            f"the Parquet file's column(s) {unreadable} cannot be read ({exc}); write them as "
            "text or numbers, or leave them out",
            "file",
        ) from None
    return schema


def _open_xlsx(
    path: Path, compressed: bool, sheet: str | int | None, limits: UploadLimits
) -> TableSource:
    try:
        with zipfile.ZipFile(path) as archive:
            is_workbook = "xl/workbook.xml" in archive.namelist()
            # A workbook is parsed whole: refuse one that declares more than the limit first.
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise IngestError(
            IngestErrorCode.TRUNCATED_FILE, "the zip/XLSX file is damaged or cut short", "file"
        ) from None
    if not is_workbook:
        raise IngestError(
            IngestErrorCode.UNKNOWN_FORMAT, "the zip archive is not an XLSX workbook", "file"
        )
    limits.check_unpacked(unpacked, "the workbook")
    try:
        workbook = fastexcel.read_excel(str(path))
        names = workbook.sheet_names
        chosen = sheet if sheet is not None else 0
        if isinstance(chosen, str) and chosen not in names:
            raise IngestError(
                IngestErrorCode.EMPTY_SHEET,
                f"the workbook has no sheet {chosen!r}; its sheets are {names}",
                "sheet",
            )
        # Every column as text, like CSV: ids keep their letters, bad cells become rejects.
        loaded = workbook.load_sheet(chosen, dtypes="string", skip_whitespace_tail_rows=True)
        frame = loaded.to_polars()
        sheet_name = loaded.name
    except fastexcel.FastExcelError as exc:
        if "no data" in str(exc).lower() or "empty" in str(exc).lower():
            raise IngestError(
                IngestErrorCode.EMPTY_SHEET, f"the sheet has no data ({exc})", "sheet"
            ) from None
        raise IngestError(
            IngestErrorCode.UNKNOWN_FORMAT, f"the XLSX workbook cannot be read: {exc}", "file"
        ) from None
    if frame.height == 0:
        raise IngestError(
            IngestErrorCode.EMPTY_SHEET, f"sheet {sheet_name!r} has no data rows", "sheet"
        )
    limits.check_rows(frame.height, f"sheet {sheet_name!r}")
    columns = _header_names([str(column) for column in frame.columns])
    frame.columns = columns

    def chunks(size: int) -> Iterator[pl.DataFrame]:
        for offset in range(0, frame.height, size):
            yield frame.slice(offset, size)

    return TableSource(
        path=path,
        file_format=FileFormat.XLSX,
        compressed=compressed,
        columns=columns,
        estimated_rows=frame.height,
        read_chunks=chunks,
        sheet=sheet_name,
    )
