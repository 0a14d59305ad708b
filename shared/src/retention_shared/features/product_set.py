"""A customer's distinct product ids, kept as 8 bytes each: the count `unique_products` needs.

`RunningCustomer` only ever asks how many distinct products a customer bought, so the ids
themselves need not be kept (a Python set of strings cost ~60-100 B per product, most of a
customer's running state). Each id is replaced by a stable 64-bit hash (BLAKE2b, 8-byte digest,
of its UTF-8 bytes: the same in every process and release, unlike `hash()`), kept sorted and
unique in one `bytes` object (33 B of overhead, less than a numpy array's ~112). New ids wait
in a short list and are merged in one numpy union when the count is read or the list grows.

The count equals the number of distinct ids unless two of them share a hash: for a customer
with n distinct products that has probability about n²/2**65 (n = 10,000: ~3e-12), and it
would undercount by one. The store keeps the ids themselves, so nothing is lost for good.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np

# Pending hashes merged once there are this many, so a customer never idles with a long list.
_MERGE_AT = 256
# Product catalogues are small (the UCI file: ~4,000 ids): a hit saves the hash (~0.5 µs).
_CACHED_IDS = 1 << 16


def product_hash(product_id: str) -> int:
    """The stable 64-bit hash of a product id."""
    return int.from_bytes(blake2b(product_id.encode(), digest_size=8).digest(), "little")


class _HashCache(dict[str, int]):
    """Product id -> hash; a plain dict lookup (faster than `lru_cache`), emptied when full."""

    def __missing__(self, product_id: str) -> int:
        if len(self) >= _CACHED_IDS:
            self.clear()
        value = self[product_id] = product_hash(product_id)
        return value


_hashes = _HashCache()


class ProductSet:
    """Distinct product ids as sorted unique uint64 hashes; `len` is the distinct count."""

    __slots__ = ("_pending", "_sorted")

    def __init__(self, product_ids: Iterable[str] = ()) -> None:
        self._sorted = b""  # little-endian uint64, ascending, unique
        self._pending: list[int] | None = None
        self.update(product_ids)

    def update(self, product_ids: Iterable[str]) -> None:
        """Add ids (duplicates and ids already in the set change nothing)."""
        pending = self._pending
        if pending is None:
            pending = self._pending = list(map(_hashes.__getitem__, product_ids))
            if not pending:
                self._pending = None
                return
        else:
            pending.extend(map(_hashes.__getitem__, product_ids))
        if len(pending) >= _MERGE_AT:
            self.compact()

    def compact(self) -> None:
        """Merge the pending hashes into the sorted array (the count is exact either way)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        new = np.array(pending, dtype="<u8")
        if self._sorted:
            new = np.concatenate((np.frombuffer(self._sorted, dtype="<u8"), new))
        # Sort and drop repeats by hand: np.unique costs ~3x as much on these short arrays.
        new.sort()
        first = np.empty(len(new), dtype=bool)
        first[0] = True
        np.not_equal(new[1:], new[:-1], out=first[1:])
        self._sorted = new[first].tobytes()

    def __len__(self) -> int:
        self.compact()
        return len(self._sorted) // 8

    def __contains__(self, product_id: object) -> bool:
        if not isinstance(product_id, str):
            return False
        self.compact()
        hashes = np.frombuffer(self._sorted, dtype="<u8")
        wanted = np.uint64(_hashes[product_id])
        at = int(np.searchsorted(hashes, wanted))
        return at < len(hashes) and bool(hashes[at] == wanted)
