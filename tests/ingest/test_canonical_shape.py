"""Which `orders.raw` records are canonical orders, and what a canonical record of the wrong shape
is told (the fields HTTP's 422 names, as `invalid_order`)."""

from __future__ import annotations

from retention_ingest.canonical import INVALID_ORDER, OrderIn, looks_canonical, read_order

# UCI Online Retail's first invoice (536365), canonical and in the export's own columns.
CANONICAL = {
    "order_id": "536365",
    "customer_id": "17850",
    "order_datetime": "2010-12-01T08:26:00",
    "lines": [{"product_id": "85123A", "quantity": 6, "unit_price": 2.55}],
    "country": "United Kingdom",
}
UCI = {
    "InvoiceNo": "536365",
    "CustomerID": 17850.0,
    "InvoiceDate": "2010-12-01 08:26:00",
    "lines": [{"StockCode": "85123A", "Quantity": 6, "UnitPrice": 2.55}],
}


def test_canonical_names_make_a_record_canonical_and_the_tenants_columns_do_not() -> None:
    assert looks_canonical(CANONICAL)
    assert looks_canonical({"orders": [CANONICAL]})
    assert not looks_canonical(UCI)
    order = read_order({**CANONICAL, "version": 2})
    assert isinstance(order, OrderIn) and order.version == 2


def test_a_batch_is_one_order_per_record() -> None:
    reasons = read_order({"orders": [CANONICAL, CANONICAL]})
    assert [(r.code, r.field) for r in reasons] == [(INVALID_ORDER, "orders")]


def test_a_one_line_order_at_the_top_level_is_told_to_use_lines() -> None:
    """The tenant-columns form of a one-line order is not the body of POST /v1/orders."""
    flat = {k: v for k, v in CANONICAL.items() if k != "lines"} | CANONICAL["lines"][0]
    reasons = read_order(flat)
    assert isinstance(reasons, list)
    assert sorted((r.code, r.field) for r in reasons) == [
        (INVALID_ORDER, "lines"),
        (INVALID_ORDER, "product_id"),
        (INVALID_ORDER, "quantity"),
        (INVALID_ORDER, "unit_price"),
    ]


def test_every_field_at_fault_is_named_with_its_path() -> None:
    bad = {
        **CANONICAL,
        "customer_id": True,
        "version": -1,
        "lines": [{**CANONICAL["lines"][0], "colour": "red"}],
    }
    reasons = read_order(bad)
    assert isinstance(reasons, list)
    assert sorted(r.field for r in reasons) == ["customer_id", "lines.0.colour", "version"]
    assert all(r.code == INVALID_ORDER and r.message for r in reasons)
