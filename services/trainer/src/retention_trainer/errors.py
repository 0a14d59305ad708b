"""The trainer's own errors: why an analytics question about the champion cannot be answered yet
(the routes answer them as RFC 9457 problems, in the shared format)."""

from __future__ import annotations

__all__ = ["ChampionUnreadable", "NoChampion", "NoOrders"]


class NoChampion(LookupError):
    """The tenant has no champion model yet."""


class NoOrders(LookupError):
    """The tenant's lake holds no orders (a champion whose customers were all erased)."""


class ChampionUnreadable(RuntimeError):
    """The champion's bundle is not in the model store (or cannot be read)."""
