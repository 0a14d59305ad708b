"""Erasing a customer from a partition's state file: their orders go, and so do their bytes."""

from __future__ import annotations

from pathlib import Path

from polars.testing import assert_frame_equal

from retention_features.decoding import DecodedOrder, decode_orders
from retention_features.store import PartitionStore
from tests.support.real_orders import order_stream
from tests.support.uci_orders import TEST_DATA

ERASED, KEPT = "12437", "12583"


def test_erased_orders_leave_the_table_the_file_and_its_wal(tmp_path: Path) -> None:
    stream = order_stream(TEST_DATA / "online_retail_slice.parquet", tmp_path / "work")
    decoded = decode_orders([payload for _, payload in stream.records])
    orders = [order for order in decoded if isinstance(order, DecodedOrder)]
    path = tmp_path / "features" / "transactions-0.sqlite"
    store = PartitionStore(path)
    store.begin()
    store.insert_rows([order.row(offset) for offset, order in enumerate(orders)])
    store.commit(len(orders))
    files = [path, path.with_name(path.name + "-wal")]
    assert any(ERASED.encode() in f.read_bytes() for f in files)
    everyone = store.all_history()
    theirs = sum(order.customer_id == ERASED for order in orders)

    assert store.erase_customers({("uci", ERASED): None, ("default", ERASED): None}) == theirs

    assert store.history([("default", ERASED)]).is_empty()
    assert_frame_equal(store.all_history(), everyone.filter(everyone["customer_id"] != ERASED))
    assert not any(ERASED.encode() in f.read_bytes() for f in files if f.exists())
    assert any(KEPT.encode() in f.read_bytes() for f in files if f.exists())
    assert store.erase_customers({("default", ERASED): None}) == 0
    store.close()


def test_only_orders_dated_up_to_the_erasure_go_when_a_time_is_given(tmp_path: Path) -> None:
    stream = order_stream(TEST_DATA / "online_retail_slice.parquet", tmp_path / "work")
    decoded = decode_orders([payload for _, payload in stream.records])
    orders = [o for o in decoded if isinstance(o, DecodedOrder) and o.customer_id == ERASED]
    moments = sorted(o.order.occurred_at_us for o in orders)
    store = PartitionStore(tmp_path / "state.sqlite")
    store.begin()
    store.insert_rows([order.row(offset) for offset, order in enumerate(orders)])
    store.commit(len(orders))
    middle = moments[len(moments) // 2]
    removed = store.erase_customers({("default", ERASED): middle})
    assert removed == sum(m <= middle for m in moments) and 0 < removed < len(moments)
    left = store.history([("default", ERASED)])["occurred_at"].dt.epoch("us").to_list()
    assert left and min(left) > middle
    store.close()
