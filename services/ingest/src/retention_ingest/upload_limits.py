"""How much one upload may unpack to: bytes once decompressed, and data rows.

`RETENTION_MAX_UPLOAD_BYTES` bounds what is sent; these bound what it becomes — an 835 KB gzip
can hold millions of rows. What a file declares (a gzip's size field, a workbook's or Parquet
file's metadata) is checked before the upload is accepted; what it really holds is counted while
it is read, and the upload fails as soon as either limit is passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from retention_ingest.errors import IngestError, IngestErrorCode
from retention_shared.config import Settings

_DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


@dataclass(frozen=True)
class UploadLimits:
    max_unpacked_bytes: int = _DEFAULTS["max_upload_unpacked_bytes"]
    max_rows: int = _DEFAULTS["max_upload_rows"]

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(settings.max_upload_unpacked_bytes, settings.max_upload_rows)

    def check_unpacked(self, size: int, what: str = "the file") -> None:
        """Raises `upload_too_large` when `size` unpacked bytes are over the limit."""
        if size > self.max_unpacked_bytes:
            raise IngestError(
                IngestErrorCode.UPLOAD_TOO_LARGE,
                f"{what} unpacks to more than {self.max_unpacked_bytes} bytes "
                f"(RETENTION_MAX_UPLOAD_UNPACKED_BYTES); split it",
                "file",
            )

    def check_rows(self, rows: int, what: str = "the file") -> None:
        """Raises `too_many_rows` when `rows` data rows are over the limit."""
        if rows > self.max_rows:
            raise IngestError(
                IngestErrorCode.TOO_MANY_ROWS,
                f"{what} has more than {self.max_rows} data rows "
                f"(RETENTION_MAX_UPLOAD_ROWS); split it",
                "file",
            )
