"""What the scoring routes accept: ids, feature values, money, and lists of bands or tiers.

Feature values keep the bounds of `scorable.py`, so every accepted vector has a defined score.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import Request
from pydantic import AfterValidator, Field, Strict

from retention_scoring.errors import unprocessable
from retention_scoring.scorable import MAX_FEATURE_MAGNITUDE
from retention_shared.safe_text import id_problem

__all__ = [
    "MIN_MONEY",
    "CustomerId",
    "FeatureValue",
    "FiniteNumber",
    "choices",
    "instant",
    "wants_csv",
]

# Money is exact to millionths (the features' unit): a smaller amount is not an amount.
MIN_MONEY = 1e-6


def _acceptable_id(value: str) -> str:
    if (problem := id_problem(value)) is not None:
        raise ValueError(problem)
    return value


CustomerId = Annotated[str, AfterValidator(_acceptable_id)]
# Strict: JSON `true` or "10" is not a number; NaN and infinities are refused by name.
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
# Python's JSON reads NaN and Infinity, so they do reach validation.
FeatureValue = Annotated[FiniteNumber, Field(ge=-MAX_FEATURE_MAGNITUDE, le=MAX_FEATURE_MAGNITUDE)]


E = TypeVar("E", bound=StrEnum)


def choices(values: Iterable[str] | None, kind: type[E], field: str) -> tuple[E, ...] | None:
    """Enum members from query values, each a name or a comma list (`High,VIP`); None if absent.

    422 naming `field` for an empty or unknown entry.
    """
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",")]
    allowed = ", ".join(member.value for member in kind)
    if not names or any(not name for name in names):
        raise unprocessable(field, f"an empty entry; use one or more of {allowed}")
    known = {member.value: member for member in kind}
    for name in names:
        if name not in known:
            raise unprocessable(field, f"{name!r} is not one of {allowed}")
    return tuple(dict.fromkeys(known[name] for name in names))


def instant(value: str | None) -> datetime | None:
    """An ISO 8601 instant as a gathered share sends it (`as_of`, null when it has none)."""
    return None if value is None else datetime.fromisoformat(value)


def wants_csv(request: Request) -> bool:
    """The client asked for CSV (`Accept: text/csv`) and did not prefer JSON before it."""
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept.split("text/csv")[0]
