"""Date-format detection and DST-correct conversion of naive timestamps to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_ingest.dates import DateFormat, DateFormatDetector, localize_to_utc, parse_datetimes
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.mapping import ColumnMapping
from retention_shared.features import orders_from_event_columns
from tests.ingest.support import ingest
from tests.support.paths import TEST_DATA


def detect(*values: str) -> DateFormat:
    detector = DateFormatDetector()
    detector.observe(pl.Series(values))
    return detector.result("when")


def test_day_first_is_decided_by_a_day_over_twelve() -> None:
    found = detect("01/12/2010 08:26", "13/01/2011 10:05", "02/02/2011 9:00")
    assert (found.order, found.ambiguous) == ("day_first", False)
    parsed = parse_datetimes(pl.Series(["13/01/2011 10:05"]), found, "UTC")
    assert parsed[0] == datetime(2011, 1, 13, 10, 5, tzinfo=UTC)


def test_month_first_is_decided_by_a_day_over_twelve() -> None:
    found = detect("12/1/2010 8:26", "12/13/2010 17:04", "1/2/2011 9:00")
    assert (found.order, found.ambiguous) == ("month_first", False)
    parsed = parse_datetimes(pl.Series(["1/2/2011 9:00"]), found, "UTC")
    assert parsed[0] == datetime(2011, 1, 2, 9, 0, tzinfo=UTC)


def test_undecidable_dates_are_reported_ambiguous_day_first() -> None:
    found = detect("01/02/2011 10:00", "03/04/2011 11:00")
    assert (found.order, found.ambiguous) == ("day_first", True)


def test_more_values_settle_an_ambiguous_guess() -> None:
    detector = DateFormatDetector()
    detector.observe(pl.Series(["12/1/2010 8:26", "12/9/2010 8:26"]))
    assert not detector.settled
    detector.observe(pl.Series(["12/21/2010 8:26"]))
    assert detector.settled and detector.result("when").order == "month_first"


@pytest.mark.parametrize(
    ("values", "order"),
    [
        (("2010-12-01 08:26:00", "2010-12-01T08:26:00.5"), "iso"),
        (("2010-12-01T08:26:00Z", "2010-12-01T09:26:00+01:00"), "iso"),
        (("19970101", "19971231"), "compact"),
        (("01.12.2010 08:26", "31.12.2010"), "day_first"),
        (("1/13/11 8:26 PM",), "month_first"),
    ],
)
def test_families(values: tuple[str, ...], order: str) -> None:
    assert detect(*values).order == order


def test_iso_offsets_are_honoured() -> None:
    parsed = parse_datetimes(
        pl.Series(["2010-12-01T09:26:00+01:00", "2010-12-01 08:26"]), DateFormat.iso(), "UTC"
    )
    assert parsed.to_list() == [datetime(2010, 12, 1, 8, 26, tzinfo=UTC)] * 2


def test_nothing_recognizable_is_an_error() -> None:
    with pytest.raises(IngestError) as caught:
        detect("soon", "later", "10")
    assert caught.value.code == IngestErrorCode.UNPARSEABLE_DATE_COLUMN


LONDON = [
    "2011-03-27 00:30:00",  # GMT
    "2011-03-27 01:30:00",  # skipped by the spring-forward gap
    "2011-03-27 02:30:00",  # BST
    "2011-10-30 00:30:00",  # BST
    "2011-10-30 01:30:00",  # happens twice: the first (BST) is meant
    "2011-10-30 02:30:00",  # GMT
    "2011-07-01 12:00:00",
]


@pytest.mark.parametrize("timezone", ["Europe/London", "America/New_York", "Australia/Lord_Howe"])
def test_naive_times_convert_to_utc_like_zoneinfo(timezone: str) -> None:
    naive = [datetime.fromisoformat(v) for v in LONDON] + [
        datetime(2011, 3, 13, 2, 30),  # New York's gap
        datetime(2011, 11, 6, 1, 30),  # New York's repeated hour
        datetime(2011, 4, 3, 1, 45),  # Lord Howe's half-hour repeat
        datetime(2011, 10, 2, 2, 15),  # Lord Howe's half-hour gap
    ]
    zone = ZoneInfo(timezone)
    # zoneinfo with fold=0, exactly how the JSON path (orders.py) reads a naive time.
    expected = [value.replace(tzinfo=zone).astimezone(UTC) for value in naive]
    assert localize_to_utc(pl.Series(naive), timezone).to_list() == expected


def test_a_file_across_the_dst_boundary(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    rows = "".join(f"{n},A,1,{value},1.0,1{n},UK\n" for n, value in enumerate(LONDON))
    (tmp_path / "f.csv").write_text(header + rows)
    result = ingest(tmp_path / "f.csv", tmp_path / "w")
    events = result.events().collect().sort("order_id")
    london = ZoneInfo("Europe/London")
    assert events["occurred_at"].to_list() == [
        datetime.fromisoformat(v).replace(tzinfo=london).astimezone(UTC) for v in LONDON
    ]
    assert str(events["occurred_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    # The same file read in New York time is five hours later in UTC (four in summer).
    other = ingest(tmp_path / "f.csv", tmp_path / "w2", timezone="America/New_York")
    first = other.events().collect().sort("order_id")["occurred_at"][0]
    assert first == datetime(2011, 3, 27, 4, 30, tzinfo=UTC)


def test_mapping_date_format_overrides_detection(tmp_path: Path) -> None:
    # 01/02 reads as 1 February day-first; the mapping says month-first.
    (tmp_path / "f.csv").write_text("o,c,d,p,q,u\n1,7,01/02/2011 10:00,A,1,2.0\n")
    mapping = ColumnMapping(
        order_id="o",
        customer_id="c",
        order_datetime="d",
        product_id="p",
        quantity="q",
        unit_price="u",
        date_format="%m/%d/%Y %H:%M",
    )
    result = ingest(tmp_path / "f.csv", tmp_path / "w", mapping=mapping, timezone="UTC")
    assert result.date_format.describe() == {
        "order": "given",
        "pattern": "%m/%d/%Y %H:%M",
        "ambiguous": False,
    }
    assert result.first_order_at == datetime(2011, 1, 2, 10, 0, tzinfo=UTC)
    detected = ingest(
        tmp_path / "f.csv",
        tmp_path / "w2",
        mapping=mapping.model_copy(update={"date_format": None}),
        timezone="UTC",
    )
    assert detected.date_format.ambiguous and detected.first_order_at == datetime(
        2011, 2, 1, 10, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(("order", "first"), [("month_first", (1, 2)), ("day_first", (2, 1))])
def test_a_mapping_can_settle_only_the_date_order(
    tmp_path: Path, order: str, first: tuple[int, int]
) -> None:
    """`date_format: month_first` (or `day_first`) decides what the data leaves open; the
    pattern is still detected within that order, for files and `orders.raw` records alike."""
    (tmp_path / "f.csv").write_text("o,c,d,p,q,u\n1,7,01/02/2011 10:00,A,1,2.0\n")
    mapping = ColumnMapping(
        order_id="o",
        customer_id="c",
        order_datetime="d",
        product_id="p",
        quantity="q",
        unit_price="u",
        date_format=order,
    )
    result = ingest(tmp_path / "f.csv", tmp_path / "w", mapping=mapping, timezone="UTC")
    assert result.date_format.describe()["order"] == order
    assert not result.date_format.ambiguous
    month, day = first
    assert result.first_order_at == datetime(2011, month, day, 10, 0, tzinfo=UTC)
    record = parse_datetimes(pl.Series(["01/02/2011 10:00"]), DateFormat.of_mapping(order), "UTC")
    assert record[0] == result.first_order_at
    # An order the data contradicts is an unreadable column, not a silent misreading.
    (tmp_path / "iso.csv").write_text("o,c,d,p,q,u\n1,7,2011-01-02 10:00:00,A,1,2.0\n")
    with pytest.raises(IngestError) as raised:
        ingest(tmp_path / "iso.csv", tmp_path / "w2", mapping=mapping, timezone="UTC")
    assert raised.value.code is IngestErrorCode.UNPARSEABLE_DATE_COLUMN
    assert order in raised.value.message


def test_a_renamed_day_first_export_with_a_mapping_reads_as_the_original(tmp_path: Path) -> None:
    """The UCI slice as a spreadsheet user re-exports it — own column names, dd/mm/yyyy dates
    without seconds, CSV — gives the very orders of the original file."""
    source = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet")
    renamed = {"InvoiceNo": "Bon", "StockCode": "Artikel", "Quantity": "Menge"}
    renamed |= {"InvoiceDate": "Datum", "UnitPrice": "Preis", "CustomerID": "Kunde"}
    export = source.rename(renamed).with_columns(pl.col("Datum").dt.strftime("%d/%m/%Y %H:%M"))
    export.write_csv(tmp_path / "export.csv")
    mapping = ColumnMapping(
        customer_id="Kunde",
        order_id="Bon",
        order_datetime="Datum",
        product_id="Artikel",
        quantity="Menge",
        unit_price="Preis",
        country="Country",
    )
    result = ingest(tmp_path / "export.csv", tmp_path / "w", mapping=mapping)
    original = ingest(TEST_DATA / "online_retail_slice.parquet", tmp_path / "w2")
    assert result.date_format.describe()["order"] == "day_first"
    assert not result.date_format.ambiguous
    assert result.rejected_by_reason == original.rejected_by_reason
    keys = ["order_id", "kind"]
    assert_frame_equal(
        orders_from_event_columns(result.events().collect()).sort(keys),
        orders_from_event_columns(original.events().collect()).sort(keys),
    )
