"""Opaque keyset cursors for paged lists: the sort key of a page's last row, as URL-safe text.

The next page is the rows strictly after that key, so rows added or removed between requests
never shift a page (as offsets would). A cursor is base64url JSON of the list's name and the
key; one of another list, or a forged one, is refused (`CursorError`, which routes answer as a
422 naming `cursor`) instead of giving a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

__all__ = ["CursorError", "CursorKey", "decode_cursor", "encode_cursor"]

CursorKey = tuple[int | str, ...]
# Keys are compared in SQLite, whose integers are 64-bit: a larger one would be an error there.
_INT_RANGE = range(-(2**63), 2**63)


class CursorError(ValueError):
    pass


def encode_cursor(list_name: str, key: Sequence[int | str]) -> str:
    payload = json.dumps([list_name, *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(list_name: str, cursor: str, shape: Sequence[type[int] | type[str]]) -> CursorKey:
    """The key `cursor` continues after, checked against `shape` (the key's types in order)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise CursorError("not a cursor this service issued") from None
    if not isinstance(payload, list) or len(payload) != len(shape) + 1:
        raise CursorError("not a cursor this service issued")
    if payload[0] != list_name:
        raise CursorError(f"not a cursor of this list ({list_name})")
    key = payload[1:]
    if not all(_fits(value, kind) for value, kind in zip(key, shape, strict=True)):
        raise CursorError("not a cursor this service issued")
    return tuple(key)


def _fits(value: object, kind: type[int] | type[str]) -> bool:
    if kind is int:
        return type(value) is int and value in _INT_RANGE
    if not isinstance(value, str):
        return False
    try:
        value.encode()  # JSON may carry a lone surrogate, which no database can store
    except UnicodeEncodeError:
        return False
    return True
