"""Ingest's fingerprint lookup (amendments): exact pairs of one tenant, by primary key."""

from __future__ import annotations

from pathlib import Path

from retention_ingest.amendments import Fingerprint
from retention_ingest.store import IngestStore, fingerprints_query


def _fingerprint(order_id: str, kind: str = "purchase", version: int = 0) -> Fingerprint:
    return Fingerprint(order_id, kind, f"c-{order_id}", 1_700_000_000_000_000, "d" * 32, version)


def test_lookup_finds_exactly_the_pairs_of_the_tenant(tmp_path: Path) -> None:
    store = IngestStore(tmp_path / "ingest.sqlite")
    stored = [_fingerprint(f"o{i}") for i in range(1_000)]
    store.save_fingerprints("t", stored, amend=False)
    store.save_fingerprints("t", [_fingerprint("o5", "cancellation", 2)], amend=False)
    store.save_fingerprints("other", [_fingerprint("o7")], amend=False)
    # Past one chunk of 400 pairs; some pairs stored, some of another kind, some unknown.
    wanted = [(f"o{i}", "purchase") for i in range(0, 1_000, 2)]
    wanted += [("o5", "cancellation"), ("o1", "cancellation"), ("nope", "purchase")]
    found = store.fingerprints("t", wanted)
    assert set(found) == {(f"o{i}", "purchase") for i in range(0, 1_000, 2)} | {
        ("o5", "cancellation")
    }
    assert found[("o5", "cancellation")].version == 2
    assert found[("o4", "purchase")] == _fingerprint("o4")
    assert store.fingerprints("other", [("o7", "purchase"), ("o8", "purchase")]) == {
        ("o7", "purchase"): _fingerprint("o7")
    }
    assert store.fingerprints("t", []) == {}


def test_lookup_searches_the_primary_key_not_the_tenant(tmp_path: Path) -> None:
    """Each pair is a key lookup: the cost of an order does not grow with the tenant's history
    (the `tenant_id = ? AND (… OR …)` form scanned every fingerprint of the tenant)."""
    store = IngestStore(tmp_path / "ingest.sqlite")
    plan = store._db.execute(
        f"EXPLAIN QUERY PLAN {fingerprints_query(3)}", ["a", "p", "b", "p", "c", "p", "t"]
    ).fetchall()
    details = [str(row[-1]) for row in plan]
    assert any("order_id=? AND kind=?" in d and "PRIMARY KEY" in d for d in details), details
    store.close()
