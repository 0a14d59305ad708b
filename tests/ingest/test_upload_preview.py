"""The upload preview shows rows as the import stores them: on a real slice, the preview of a
file and the events an upload of the same file publishes hold the same lines, and the preview's
reason codes are the rejects of that upload."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.file_ingest import ingest_file
from retention_ingest.mapping import ColumnMapping, PartialMapping
from retention_ingest.preview import PREVIEW_ROWS, UploadPreview, preview_file
from retention_ingest.upload_limits import UploadLimits
from tests.support.paths import TEST_DATA

SLICE = TEST_DATA / "online_retail_slice.parquet"
RENAMED = {
    "InvoiceNo": "Bon",
    "StockCode": "Artikel",
    "Quantity": "Menge",
    "InvoiceDate": "Datum",
    "UnitPrice": "Preis",
    "CustomerID": "Kunde",
    "Country": "Land",
}
MAPPING = PartialMapping(
    customer_id="Kunde",
    order_id="Bon",
    order_datetime="Datum",
    product_id="Artikel",
    quantity="Menge",
    unit_price="Preis",
    country="Land",
)
LINE = ("order_id", "customer_id", "occurred_at", "product_id", "quantity", "unit_price", "country")


def _rows() -> pl.DataFrame:
    """First rows of the slice, a cancellation, a row without a customer and a copied row."""
    data = pl.read_parquet(SLICE)
    cancelled = data.filter(pl.col("InvoiceNo").str.starts_with("C")).head(2)
    anonymous = data.filter(pl.col("CustomerID").is_null()).head(2)
    head = data.head(30)
    return pl.concat([head, cancelled, anonymous, head.slice(3, 1)])


def _as_files(rows: pl.DataFrame, directory: Path) -> dict[str, tuple[Path, PartialMapping | None]]:
    """The rows as the bundled Parquet layout and as a re-exported day-first CSV."""
    parquet = directory / "orders.parquet"
    rows.write_parquet(parquet)
    csv = directory / "orders.csv"
    rows.rename(RENAMED).with_columns(pl.col("Datum").dt.strftime("%d/%m/%Y %H:%M")).write_csv(csv)
    return {"parquet": (parquet, None), "csv": (csv, MAPPING)}


def _imported_lines(path: Path, mapping: PartialMapping | None, work: Path) -> tuple[Counter, dict]:
    """The lines of the events an upload of `path` publishes, and its rejects by row."""
    given = None if mapping is None else mapping.model_dump(exclude_none=True)
    result = ingest_file(
        path,
        tenant_id="t",
        source="test",
        work_dir=work,
        mapping=None if given is None else ColumnMapping(**given),
    )
    lines = (
        result.events()
        .explode("lines")
        .select(
            "order_id",
            "customer_id",
            "occurred_at",
            pl.col("lines").struct.field("product_id"),
            pl.col("lines").struct.field("quantity"),
            pl.col("lines").struct.field("unit_price"),
            "country",
        )
        .collect()
    )
    rejects = dict(result.rejects().select("row", "reason").collect().iter_rows())
    return Counter(lines.iter_rows()), rejects


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_the_preview_rows_are_the_lines_the_upload_publishes(form: str, tmp_path: Path) -> None:
    rows = _rows()
    path, mapping = _as_files(rows, tmp_path)[form]
    shown = _preview(path, mapping, tmp_path, rows=rows.height)
    assert shown.problems == [] and len(shown.rows) == len(shown.reasons) == rows.height
    published, rejected = _imported_lines(path, mapping, tmp_path / "import")

    assert {i + 1: r for i, r in enumerate(shown.reasons) if r is not None} == rejected
    assert set(rejected.values()) == {"missing_customer_id", "duplicate_line"}
    previewed = Counter(
        (
            row["order_id"],
            row["customer_id"],
            pl.Series([row["order_datetime"]]).str.to_datetime(time_zone="UTC").item(),
            row["product_id"],
            row["quantity"],
            row["unit_price"],
            row["country"],
        )
        for row, reason in zip(shown.rows, shown.reasons, strict=True)
        if reason is None
    )
    assert previewed == published
    first = shown.rows[0]
    # 12583.0 in the file's float column and in the CSV's text is the customer 12583.
    assert (first["customer_id"], first["unit_price"], first["quantity"]) == ("12583", 18.0, 3.0)
    assert any(isinstance(q, float) and q < 0 for q in (r["quantity"] for r in shown.rows))


def test_an_incomplete_mapping_still_reads_ids_and_numbers_as_the_import_does(
    tmp_path: Path,
) -> None:
    path, _ = _as_files(_rows(), tmp_path)["csv"]
    partial = PartialMapping(customer_id="Kunde", order_datetime="Datum", unit_price="Preis")
    shown = _preview(path, partial, tmp_path)
    assert {p.field for p in shown.problems} == {"order_id", "product_id", "quantity"}
    assert shown.rows[0]["customer_id"] == "12583" and shown.rows[0]["unit_price"] == 18.0
    assert shown.reasons == [None] * len(shown.rows)


def test_a_mapped_column_cleaning_cannot_read_is_a_problem_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pl.DataFrame(
        {
            "customer": [12583.0, None],
            "order": ["1", "2"],
            "when": ["2020-01-01 10:00"] * 2,
            "product": [[1], [2]],  # a list per row: no product id
            "qty": [3, 1],
            "price": [18.0, 2.5],
        }
    ).write_parquet(path)
    mapping = PartialMapping(
        customer_id="customer",
        order_id="order",
        order_datetime="when",
        product_id="product",
        quantity="qty",
        unit_price="price",
    )
    shown = _preview(path, mapping, tmp_path, timezone="UTC")
    assert [(p.field, p.problem) for p in shown.problems] == [
        ("product_id", "column 'product' (product_id) holds lists; it cannot be read as product_id")
    ]
    assert [row["customer_id"] for row in shown.rows] == ["12583", None]
    assert [row["product_id"] for row in shown.rows] == ["[1]", "[2]"]
    assert shown.reasons == [None, None]


def _preview(
    path: Path,
    mapping: PartialMapping,
    tmp_path: Path,
    *,
    timezone: str = "Europe/London",
    rows: int = PREVIEW_ROWS,
) -> UploadPreview:
    """`preview_file` of `path` with `mapping` given, as the preview route calls it."""
    return preview_file(
        path,
        work_dir=tmp_path / "preview",
        filename=path.name,
        given=mapping,
        saved=None,
        timezone=timezone,
        limits=UploadLimits(),
        rows=rows,
    )
