"""Keyset cursors: a key comes back as it went in; anything else is a `CursorError`."""

from __future__ import annotations

import pytest

from retention_shared.cursors import CursorError, decode_cursor, encode_cursor

SHAPE = (int, str, str)


def test_a_key_round_trips_through_url_safe_text() -> None:
    key = (1291193100000000, "C536379/ü?&", "cancellation")
    cursor = encode_cursor("orders", key)
    assert cursor.isascii() and not set(cursor) & set("+/=?&")
    assert decode_cursor("orders", cursor, SHAPE) == key


@pytest.mark.parametrize(
    ("cursor", "problem"),
    [
        ("", "not a cursor this service issued"),
        ("%%%", "not a cursor this service issued"),
        (encode_cursor("uploads", [1, "a", "b"]), "not a cursor of this list (orders)"),
        (encode_cursor("orders", [1, "a"]), "not a cursor this service issued"),
        (encode_cursor("orders", [True, "a", "b"]), "not a cursor this service issued"),
        (encode_cursor("orders", [1.5, "a", "b"]), "not a cursor this service issued"),
        (encode_cursor("orders", [2**63, "a", "b"]), "not a cursor this service issued"),
        (encode_cursor("orders", [1, None, "b"]), "not a cursor this service issued"),
        (encode_cursor("orders", [1, "\udc00", "b"]), "not a cursor this service issued"),
    ],
)
def test_a_cursor_not_issued_for_the_list_is_refused(cursor: str, problem: str) -> None:
    with pytest.raises(CursorError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        decode_cursor("orders", cursor, SHAPE)
