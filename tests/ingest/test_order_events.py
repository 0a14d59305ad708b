"""Events: one per order and kind wherever its lines are, deterministic ids, valid JSON payloads."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from retention_ingest.order_events import order_event_payloads
from retention_shared.events import OrderEvent, OrderKind, decode_event, order_event_id
from tests.ingest.support import ingest


def test_payloads_decode_as_order_events_and_round_trip(retail_slice, tmp_path: Path) -> None:
    path, _, _ = retail_slice
    result = ingest(path, tmp_path)
    decoded = 0
    for batch in result.event_batches(rows=700):
        assert batch.height <= 700
        payloads = order_event_payloads(batch)
        assert len(payloads) == batch.height
        for payload, row in zip(payloads, batch.iter_rows(named=True), strict=True):
            event = decode_event(OrderEvent, payload)
            assert event.event_id == row["event_id"]
            assert event.event_id == order_event_id("acme", row["order_id"], OrderKind(row["kind"]))
            assert (event.tenant_id, event.order_id, event.customer_id) == (
                "acme",
                row["order_id"],
                row["customer_id"],
            )
            assert event.occurred_at == row["occurred_at"]
            assert event.kind.value == row["kind"]
            assert [line.model_dump() for line in event.lines] == row["lines"]
            assert event.total == row["total"]
            assert event.total == pytest.approx(
                sum(line.quantity * line.unit_price for line in event.lines), abs=1e-6
            )
            assert (event.currency, event.country, event.source) == (
                row["currency"],
                row["country"],
                "upload:test",
            )
            decoded += 1
    assert decoded == result.order_events > 1000


def test_the_same_file_twice_gives_the_same_event_ids(retail_slice, tmp_path: Path) -> None:
    path, _, _ = retail_slice
    first = ingest(path, tmp_path / "one").events().collect()
    second = ingest(path, tmp_path / "two", chunk_rows=5_000).events().collect()
    assert first["event_id"].n_unique() == first.height
    assert first.equals(second)
    payloads = order_event_payloads(first.head(100))
    assert payloads == order_event_payloads(second.head(100))


def test_an_order_split_across_chunks_and_scattered_is_one_event(tmp_path: Path) -> None:
    rows = {
        "InvoiceNo": ["1", "2", "2", "1", "3", "1", "C1"],
        "StockCode": ["A", "B", "C", "D", "E", "F", "A"],
        "Quantity": [1, 2, 3, 4, 5, 6, -1],
        "InvoiceDate": ["2011-01-01 10:00:00"] * 4
        + ["2011-01-02 10:00:00"]
        + ["2011-01-01 10:01:00"] * 2,
        "UnitPrice": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0],
        "CustomerID": [7.0, 8.0, 8.0, 7.0, 9.0, 7.0, 7.0],
        "Country": ["UK"] * 7,
    }
    pl.DataFrame(rows).write_parquet(tmp_path / "f.parquet")
    progress = []
    result = ingest(
        tmp_path / "f.parquet", tmp_path / "w", chunk_rows=2, on_progress=progress.append
    )
    assert len(progress) == 4  # order 1 has lines in chunks 1, 2 and 3
    events = result.events().collect()
    assert events.height == 4
    order = events.filter(pl.col("order_id") == "1").row(0, named=True)
    assert [line["product_id"] for line in order["lines"]] == ["A", "D", "F"]  # file order
    assert order["total"] == 1 + 16 + 36
    assert events["order_id"].to_list() == ["1", "2", "C1", "3"]  # by time, then file order


def test_payloads_of_an_empty_batch() -> None:
    assert order_event_payloads(pl.DataFrame()) == []
