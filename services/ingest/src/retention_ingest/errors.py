"""Why a whole input (a file, a mapping) cannot be ingested; row-level problems are reject reasons.

Every `IngestError` carries a stable `code` the service maps to an HTTP 4xx (when detectable at
upload time) or to a failed upload state, a `field` when one column or setting is to blame, and a
message written for the person who sent the file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class IngestErrorCode(StrEnum):
    EMPTY_FILE = "empty_file"  # no bytes, or only whitespace
    NO_ROWS = "no_rows"  # a header (or schema) but not one data row
    EMPTY_SHEET = "empty_sheet"  # an Excel sheet without data rows
    NO_USABLE_ROWS = "no_usable_rows"  # rows were read, every one was rejected
    UNKNOWN_FORMAT = "unknown_format"  # not CSV/TSV/XLSX/Parquet/CDNOW text, gzip or not
    NOT_UTF8 = "not_utf8"
    TRUNCATED_FILE = "truncated_file"
    MALFORMED_CSV = "malformed_csv"  # a row with another number of fields than the header
    WRONG_DELIMITER = "wrong_delimiter"
    INVALID_MAPPING = "invalid_mapping"
    MISSING_COLUMN = "missing_column"  # the mapping names a column the file does not have
    UNKNOWN_LAYOUT = "unknown_layout"  # no mapping given and the columns match no known layout
    UNPARSEABLE_DATE_COLUMN = "unparseable_date_column"
    # A mapped (Parquet) column whose type never reads as its field: lists, structs, booleans...
    UNREADABLE_COLUMN = "unreadable_column"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    UPLOAD_TOO_LARGE = "upload_too_large"  # unpacks to more than max_upload_unpacked_bytes
    TOO_MANY_ROWS = "too_many_rows"  # more data rows than max_upload_rows


class IngestError(ValueError):
    """An input that cannot be ingested at all; `code` is stable, `message` is for the user."""

    def __init__(self, code: IngestErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        # Set for `no_usable_rows`: the counts and rejects that explain the failure.
        self.result: Any = None

    def as_detail(self) -> dict[str, str | None]:
        """The body of the 4xx answer (or of a failed upload's status)."""
        return {"code": self.code.value, "field": self.field, "problem": self.message}

    def __repr__(self) -> str:
        return f"IngestError({self.code.value!r}, {self.message!r}, field={self.field!r})"
