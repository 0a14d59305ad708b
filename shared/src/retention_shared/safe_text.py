"""What text from outside may be, and how text we write stays inert.

Ids (tenant, customer, order, product) are non-empty printable strings of at most `MAX_ID_LENGTH`
characters: no control characters (C0, DEL, C1), no bidirectional overrides or isolates (which
make an id display as another), no lone surrogates (which cannot be encoded, so nothing
downstream could store them). One definition for the Python checks (HTTP bodies, events) and the
polars one (files), so a value is judged the same whichever way it came.

Every CSV the services write neutralizes cells a spreadsheet would run as a formula (OWASP's
"CSV injection" rule): a text cell starting with `=`, `+`, `-`, `@`, tab or carriage return gets a
leading single quote, which spreadsheets show as text and do not evaluate.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

# polars only where frames are: the events module imports this one, and services that never touch
# a frame (webhooks, the console) would otherwise carry polars (~25 MiB resident) for nothing.
if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ID_PATTERN",
    "MAX_ID_LENGTH",
    "id_problem",
    "invalid_id_expr",
    "spreadsheet_safe",
    "spreadsheet_safe_expr",
    "spreadsheet_safe_frame",
]

MAX_ID_LENGTH = 256

# C0 controls, DEL, C1 controls, bidi marks/embeddings/overrides/isolates, and surrogates.
_UNPRINTABLE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE_PATTERN = re.compile(f"[{_UNPRINTABLE}\ud800-\udfff]")
# polars strings are UTF-8, so they cannot hold a surrogate; the rest is the same class.
_UNPRINTABLE_REGEX = f"[{_UNPRINTABLE}]"
# For schema constraints (pydantic's and msgspec's `pattern`): no unprintable character at all.
ID_PATTERN = f"^[^{_UNPRINTABLE}]*$"


def id_problem(value: object) -> str | None:
    """Why `value` is not an acceptable id, or None. Booleans are not ids (JSON `true` is no "1")."""
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters (got {len(value)})"
    if (match := _UNPRINTABLE_PATTERN.search(value)) is not None:
        return f"contains the unprintable character U+{ord(match.group()):04X}"
    return None


def invalid_id_expr(text: pl.Expr) -> pl.Expr:
    """True where a (non-null) text id is too long or holds an unprintable character."""
    return (text.str.len_chars() > MAX_ID_LENGTH) | text.str.contains(_UNPRINTABLE_REGEX)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """`value` with a leading `'` if a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def spreadsheet_safe_expr(text: pl.Expr) -> pl.Expr:
    """`spreadsheet_safe` for a polars text column (nulls stay null)."""
    import polars as pl

    return pl.when(text.str.contains(r"^[=+\-@\t\r]")).then(pl.lit("'") + text).otherwise(text)


def spreadsheet_safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text column of `frame` made safe to open in a spreadsheet; numbers stay numbers."""
    import polars as pl

    return frame.with_columns(
        spreadsheet_safe_expr(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )
