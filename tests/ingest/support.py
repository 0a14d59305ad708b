"""Ingest a file as the ingest tests do, and check the result against `reference`."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention_ingest.file_ingest import FileIngestResult, ingest_file
from tests.ingest.reference import Expected


def ingest(path: Path, work_dir: Path, **options: object) -> FileIngestResult:
    return ingest_file(path, tenant_id="acme", source="upload:test", work_dir=work_dir, **options)  # type: ignore[arg-type]


def assert_matches(result: FileIngestResult, expected: Expected) -> None:
    """Counts, the reason of every rejected row, and every event's lines, total and time."""
    assert result.rows_read == expected.rows_read
    assert result.accepted == expected.accepted
    assert result.rejected_by_reason == dict(expected.reasons)
    assert result.accepted + result.rejected == result.rows_read
    rejects = result.rejects().select("row", "reason").collect()
    assert dict(rejects.iter_rows()) == expected.reason_by_row

    events = result.events().collect()
    assert events.height == result.order_events == len(expected.events)
    assert result.customers == expected.customers
    produced = {
        (e["order_id"], e["customer_id"], e["kind"]): e for e in events.iter_rows(named=True)
    }
    assert produced.keys() == expected.events.keys()
    for key, want in expected.events.items():
        got = produced[key]
        assert got["total"] == pytest.approx(want.total, abs=1e-6), key
        assert [(x["product_id"], x["quantity"], x["unit_price"]) for x in got["lines"]] == [
            (p, pytest.approx(q), pytest.approx(u)) for p, q, u in want.lines
        ], key
        assert got["occurred_at"] == want.occurred_at, key
        assert got["country"] == want.country, key
    assert result.first_order_at == min(e.occurred_at for e in expected.events.values())
    assert result.last_order_at == max(e.occurred_at for e in expected.events.values())
