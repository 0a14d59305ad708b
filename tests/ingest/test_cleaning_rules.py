"""Every data rule and reason code on the real UCI slices, against `reference` (plain Python)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.ingest.support import assert_matches, ingest


def test_real_slices_follow_every_rule(retail_slice, tmp_path: Path) -> None:
    path, expected, layout = retail_slice
    result = ingest(path, tmp_path)
    assert result.layout.value == layout
    assert result.date_format.order == "native"
    assert_matches(result, expected)
    # The slices carry these quirks; make sure the rules were really exercised.
    assert expected.reasons["missing_customer_id"] > 500
    assert expected.reasons["duplicate_line"] > 100
    assert expected.reasons["non_positive_price"] >= 1
    kinds = result.events().group_by("kind").len().collect()
    assert set(kinds["kind"]) == {"purchase", "cancellation"}


def test_small_chunks_and_many_buckets_give_the_same_events(retail_slice, tmp_path: Path) -> None:
    path, expected, _ = retail_slice
    progress = []
    result = ingest(
        path, tmp_path, chunk_rows=3_000, rows_per_bucket=5_000, on_progress=progress.append
    )
    assert len(progress) > 5  # the file was really read in many chunks
    assert progress[-1].rows_read == expected.rows_read
    assert len(list((tmp_path / "events").glob("*.parquet"))) > 1  # and grouped in buckets
    assert_matches(result, expected)


def test_cancellations_are_kept_negative_and_net_against_spend(retail_slice, tmp_path) -> None:
    path, expected, _ = retail_slice
    events = ingest(path, tmp_path).events().collect()
    cancellations = events.filter(pl.col("kind") == "cancellation")
    lines = cancellations.explode("lines").unnest("lines")
    assert (lines["quantity"] < 0).all() and (cancellations["total"] < 0).all()
    purchases = events.filter(pl.col("kind") == "purchase").explode("lines").unnest("lines")
    assert (purchases["quantity"] > 0).all() and (purchases["unit_price"] > 0).all()
    # (Negative quantities without a C invoice are cancellations too: in these slices they all
    # lack a customer; see test_an_invoice_with_both_directions_is_two_events.)
    assert events["total"].sum() == pytest.approx(sum(e.total for e in expected.events.values()))


def test_an_invoice_with_both_directions_is_two_events(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "InvoiceNo": ["536365", "536365", "536365"],
            "StockCode": ["85123A", "71053", "84406B"],
            "Quantity": [6, -2, 8],
            "InvoiceDate": ["2010-12-01 08:26:00"] * 3,
            "UnitPrice": [2.55, 3.39, 2.75],
            "CustomerID": [17850.0, 17850.0, 17850.0],
            "Country": ["United Kingdom"] * 3,
        }
    )
    frame.write_csv(tmp_path / "mixed.csv")
    events = ingest(tmp_path / "mixed.csv", tmp_path / "w").events().collect()
    assert sorted(events["kind"]) == ["cancellation", "purchase"]
    assert events["event_id"].n_unique() == 2
    purchase = events.filter(pl.col("kind") == "purchase").row(0, named=True)
    assert purchase["total"] == pytest.approx(6 * 2.55 + 8 * 2.75)
    assert [line["product_id"] for line in purchase["lines"]] == ["85123A", "84406B"]


def test_ids_are_normalized_text(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "order": [" 1001 ", "1001", "1002.0"],
            "customer": ["17850.0", " 17850", "00042"],
            "when": ["2011-01-05 10:00"] * 3,
            "product": ["  22423 ", "POST", "10.0"],
            "qty": ["1", "2", "3"],
            "price": ["2,55", "18", "1.5"],
        }
    )
    frame.write_csv(tmp_path / "ids.csv", separator=";")
    mapping = {
        "order_id": "order",
        "customer_id": "customer",
        "order_datetime": "when",
        "product_id": "product",
        "quantity": "qty",
        "unit_price": "price",
    }
    from retention_ingest.mapping import ColumnMapping

    result = ingest(tmp_path / "ids.csv", tmp_path / "w", mapping=ColumnMapping.parse(mapping))
    events = result.events().collect().sort("order_id")
    assert events["order_id"].to_list() == ["1001", "1002"]
    assert events["customer_id"].to_list() == ["17850", "00042"]  # leading zeros are text
    assert [line["product_id"] for line in events["lines"][0]] == ["22423", "POST"]
    assert events["lines"][1][0]["product_id"] == "10"
    assert events["total"][0] == pytest.approx(2.55 + 36)  # decimal comma read as 2.55


def test_order_total_mapping_gives_one_synthetic_line(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "id,cust,date,amount\nA1,c1,2011-03-01 10:00,10.5\nA1,c1,2011-03-01 10:00,4.5\n"
        "A2,c2,2011-03-02 11:00,-7\nA3,c2,2011-03-03 11:00,0\n"
    )
    from retention_ingest.mapping import ColumnMapping

    mapping = ColumnMapping(
        order_id="id", customer_id="cust", order_datetime="date", order_total="amount"
    )
    result = ingest(tmp_path / "orders.csv", tmp_path / "w", mapping=mapping)
    assert result.rejected_by_reason == {"non_positive_price": 1}  # a zero total
    events = {e["order_id"]: e for e in result.events().collect().iter_rows(named=True)}
    assert events["A1"]["lines"] == [
        {"product_id": "order-total", "quantity": 2.0, "unit_price": 7.5}
    ]
    assert events["A1"]["total"] == 15.0
    assert events["A2"]["kind"] == "cancellation" and events["A2"]["total"] == -7.0
    assert events["A2"]["lines"] == [
        {"product_id": "order-total", "quantity": -1.0, "unit_price": 7.0}
    ]


def test_orders_naming_two_customers_are_rejected_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "clash.csv").write_text(
        "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "1,A,1,2011-01-01 10:00,1.0,100,UK\n1,B,1,2011-01-01 10:00,1.0,200,UK\n"
        "2,A,1,2011-01-01 10:00,1.0,100,UK\n"
    )
    result = ingest(tmp_path / "clash.csv", tmp_path / "w")
    assert result.rejected_by_reason == {"conflicting_customer_id": 2}
    assert result.events().collect()["order_id"].to_list() == ["2"]


def test_rejects_csv_holds_the_original_values(retail_slice, tmp_path: Path) -> None:
    path, expected, _ = retail_slice
    result = ingest(path, tmp_path)
    written = pl.read_csv(result.write_rejects_csv(tmp_path / "rejects.csv"), infer_schema=False)
    source = pl.read_parquet(path).with_row_index("row", offset=1)
    assert written.height == len(expected.reason_by_row)
    assert written.columns[:2] == ["row", "reason"] and written.columns[2:] == source.columns[1:]
    sample = written.head(50).with_columns(pl.col("row").cast(pl.Int64))
    for reject in sample.iter_rows(named=True):
        original = source.row(reject["row"] - 1, named=True)
        assert reject["reason"] == expected.reason_by_row[reject["row"]]
        order_column = "InvoiceNo" if "InvoiceNo" in original else "Invoice"
        assert reject[order_column] == original[order_column]
        assert reject["StockCode"] == original["StockCode"]
