"""What a caller may ask of one run beyond the settings (`POST /v1/retrain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """Per-run overrides of the settings (from `POST /v1/retrain`)."""

    # Spacing of the training cutoffs; sparser is faster and usually less accurate.
    cutoff_every_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        return cls(**data)
