"""The erasure list: which customers' history stays erased, kept without their ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from retention_shared.erasure import ErasureList, instance_name, to_microseconds

AT = datetime(2011, 11, 3, 13, 24, tzinfo=UTC)


def test_orders_dated_up_to_the_erasure_are_covered_later_ones_are_a_new_history(
    tmp_path: Path,
) -> None:
    erasures = ErasureList(tmp_path / "erasures.sqlite")
    assert erasures.erased_until_us("acme", "12437") is None
    erasures.add("acme", "12437", AT)
    moment = to_microseconds(AT)
    assert erasures.covers("acme", "12437", moment)
    assert erasures.covers("acme", "12437", moment - 1)
    assert not erasures.covers("acme", "12437", moment + 1)
    assert not erasures.covers("other", "12437", moment - 1)  # tenants apart
    assert not erasures.covers("acme", "1243", moment - 1)
    # An earlier request read late does not shorten a later one.
    erasures.add("acme", "12437", AT - timedelta(days=30))
    assert erasures.erased_until_us("acme", "12437") == moment
    erasures.add("acme", "12437", AT + timedelta(days=1))
    assert erasures.covers("acme", "12437", moment + 1)
    assert erasures.listed([("acme", "12437"), ("acme", "12583")]) == {
        ("acme", "12437"): to_microseconds(AT + timedelta(days=1))
    }


def test_the_list_survives_a_restart_and_its_file_holds_no_id(tmp_path: Path) -> None:
    path = tmp_path / "erasures.sqlite"
    erasures = ErasureList(path)
    erasures.add("acme", "12437", AT)
    digest = erasures.digest("acme", "12437")
    erasures.close()
    again = ErasureList(path)
    assert again.digest("acme", "12437") == digest  # the salt is kept with the list
    assert again.covers("acme", "12437", to_microseconds(AT))
    again.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"12437" not in stored and b"acme" not in stored
    other = ErasureList(tmp_path / "elsewhere" / "erasures.sqlite")
    assert other.digest("acme", "12437") != digest  # a salt per data directory


def test_an_instance_keeps_its_name(tmp_path: Path) -> None:
    first = instance_name(tmp_path / "features")
    assert first == instance_name(tmp_path / "features")
    assert first != instance_name(tmp_path / "ingest")
