"""Finding the record a batch fails on, so one bad record never holds up a partition.

Consumers apply records in batches. When applying a batch fails because of what is in it (a
`RecordFault`, as opposed to the broker or the disk failing), the batch is halved until the
record at fault stands alone — a few steps, where one record at a time would publish and commit
once per record. A record that fails `attempts` times alone is poison: the consumer sends it to
the dead-letter path and moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K")
R = TypeVar("R")


class RecordFault(Exception):
    """Applying records failed because of the records themselves; `__cause__` says how."""


async def apply_isolating(
    records: Sequence[R],
    apply: Callable[[Sequence[R]], Awaitable[bool]],
    dead_letter: Callable[[R, BaseException], Awaitable[bool]],
    attempts: int,
) -> bool:
    """Apply `records` in order with `apply`, halving what raises `RecordFault`; each record
    that still fails alone after `attempts` tries goes to `dead_letter`. Returns False as soon
    as `apply` or `dead_letter` does (a failure that is not the records': stop and retry later).
    """
    if len(records) > 1:
        try:
            return await apply(records)
        except RecordFault:
            middle = len(records) // 2
            return await apply_isolating(
                records[:middle], apply, dead_letter, attempts
            ) and await apply_isolating(records[middle:], apply, dead_letter, attempts)
    failure: BaseException | None = None
    for _ in range(attempts):
        try:
            return await apply(records)
        except RecordFault as fault:
            failure = fault.__cause__ or fault
    assert failure is not None
    return await dead_letter(records[0], failure)


async def apply_batch(
    work: dict[K, list[R]],
    apply: Callable[[dict[K, list[R]]], Awaitable[bool]],
    dead_letter: Callable[[K, R, BaseException], Awaitable[bool]],
    attempts: int,
) -> None:
    """Apply a batch of several partitions' records at once; if its records are at fault, each
    partition's records in halves (`apply_isolating`), stopping at a failure that is not."""
    try:
        await apply(work)
    except RecordFault as fault:
        log.warning(
            "a batch failed on its records; applying it in halves to find the one at fault",
            extra={"error": repr(fault.__cause__)},
        )
        for key, records in work.items():
            applied = await apply_isolating(
                records,
                lambda part, key=key: apply({key: list(part)}),
                lambda record, error, key=key: dead_letter(key, record, error),
                attempts,
            )
            if not applied:
                return  # the rest is read again from the last commit
