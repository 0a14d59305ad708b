"""A consumer-group member that applies records in batches and owns its offsets.

The hot paths (features' state, the trainer's lake, webhook deliveries) are raw aiokafka group
consumers, not per-message FastStream handlers: they take a whole poll at once (thousands of
records: one store transaction, one wait for acknowledgements per batch) and decide themselves
when an offset counts as done. What they share is written here once:

- **the loop**: poll a batch (`max_batch` records at most), hand the records not applied yet to
  `handle`, measure lag; an unexpected error is logged and the loop goes on (a stall shows in
  readiness, never as a dead task);
- **positions**: per owned partition, the next offset to apply. Records before it (a fetch made
  before a seek) are dropped, so each offset is applied once; on a `gapless` topic a batch
  starting past it means records were skipped, and the partition is read again from it;
- **offsets**: `commit(next_offsets)` moves the positions once the subclass's work is durable,
  and commits them to the group — at once, or, where the subclass keeps its offsets in its own
  store (`offsets_in_kafka = False`), once a second for Kafka tools to see;
- **rebalance**: `assign` says where each assigned partition resumes (by default the group's
  committed offset, else the log's first), `revoke` lets it go; both wait for the batch in
  flight (`lock`), so a partition is never half-applied when it moves;
- **failures**: `retry_later` rewinds to the positions after a pause (doubling up to 30 s) when
  the broker or a store failed; `apply_isolating` halves a batch whose records are at fault and
  `dead_letter`s a record that fails `poison_max_attempts` times alone (`dead_letters`);
- **lag and lost logs**: each poll compares the fetch high watermarks with the positions
  (`watermarks`; on a compacted topic, past the gaps the fetch position skipped): lag feeds
  `health` (readiness: failing, or stuck behind) and the optional per-partition gauge; a high
  watermark below a position means the broker lost the log, and
  `log_lost` says where to resume (by default the new log's first offset).

A subclass lives in a service's `consumers/<topic>.py` and implements `handle`; the other hooks
have defaults. Everything a subclass sends goes through `producer` (a `BulkProducer`, started and
stopped with the consumer) and `dead_letters`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import ClassVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import Gauge

from retention_shared.health import CheckResult
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.clients import make_consumer
from retention_shared.kafka.consumer_health import ConsumerHealth
from retention_shared.kafka.dead_letters import DeadLetters, apply_batch
from retention_shared.kafka.watermarks import drained, ends, high_watermarks
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel

__all__ = ["Batches", "GroupConsumer", "NotCaughtUp"]

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord]]
# After a batch fails to be applied, wait this long, doubling up to the maximum.
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 30.0
PROGRESS_COMMIT_SECONDS = 1.0
# Short fetch waits: Tansu answers a fetch only at its deadline when little is new.
FETCH_MAX_WAIT_MS = 100


class NotCaughtUp(TimeoutError):
    """The consumer did not reach the wanted offsets in time."""


class GroupConsumer(abc.ABC):
    """Consumes the declared `topics` (names without prefix, which must name `ctx`'s service as
    a consumer) in group `group_id`, `max_batch` records per poll at most."""

    # Where the offsets live: the group (committed after each batch is durable), or the
    # subclass's own store (it resumes from there in `assign`; the group gets them once a second).
    offsets_in_kafka: ClassVar[bool] = True
    # The topics have no gaps in their offsets (not compacted), so a batch that starts past a
    # position was fetched before a seek: the partition is read again from the position.
    gapless: ClassVar[bool] = False
    # Whether the consumer sends anything (a `BulkProducer` and the dead-letter path).
    publishes: ClassVar[bool] = True
    poll_timeout_ms: ClassVar[int] = 500
    # Bulk lingering (off unless set): a poll of at least `bulk_records` records is a backlog or
    # an upload, not a live stream; then the loop keeps polling for up to `bulk_linger_seconds`
    # (or until `max_batch`) before applying, so a consumer whose work is per key per batch (a
    # vector per customer) does it fewer times. A live stream's small polls are not held.
    # The linger polls in slices of `bulk_quiet_seconds` and ends early once a slice brings
    # nothing while the held records reach their partitions' high watermarks: the backlog is
    # drained, so the rest of the linger would only delay its last batch.
    bulk_records: ClassVar[int | None] = None
    bulk_linger_seconds: ClassVar[float] = 0.0
    bulk_quiet_seconds: ClassVar[float] = 0.1

    def __init__(
        self,
        ctx: ServiceContext,
        topics: Sequence[str],
        group_id: str,
        *,
        max_batch: int,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes: int | None = None,
        lag: Gauge | None = None,
    ) -> None:
        self.ctx = ctx
        self.topics = [ctx.topic_to_consume(topic) for topic in topics]
        self.group_id = ctx.settings.consumer_group(group_id)
        self.max_batch = max_batch
        self.lag = lag  # labelled by partition
        self._fetch_options: dict[str, int] = {"fetch_max_wait_ms": fetch_max_wait_ms}
        if max_partition_fetch_bytes is not None:
            self._fetch_options["max_partition_fetch_bytes"] = max_partition_fetch_bytes
        # Per owned partition, the next offset to apply: everything before it is done.
        self.positions: dict[TopicPartition, int] = {}
        self.health = ConsumerHealth()
        # Held while a batch is applied and while partitions are assigned or revoked.
        self.lock = asyncio.Lock()
        self.counts = ctx.counts
        self.producer = BulkProducer(ctx.settings) if self.publishes else None
        self._dead_letters = DeadLetters(ctx, self.producer) if self.publishes else None
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_seconds = RETRY_SECONDS
        self._uncommitted: dict[TopicPartition, int] = {}
        self._moved = asyncio.Condition()  # positions moved

    # --- what a subclass implements ---------------------------------------------------------

    @abc.abstractmethod
    async def handle(self, batches: Batches) -> None:
        """Apply the records (per partition, in offset order, none applied before), then
        `commit` what is done — or `retry_later` when the broker or a store failed."""

    async def assign(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each newly assigned partition resumes: the group's committed offset, else the
        log's first. A subclass that keeps its offsets loads its state and answers from it."""
        beginnings = await self.first_offsets(tps)
        starts = {}
        for tp in tps:
            committed = await self.consumer.committed(tp)
            starts[tp] = committed if committed is not None else beginnings[tp]
        return starts

    async def revoke(self, tps: list[TopicPartition]) -> None:  # noqa: B027 (a hook)
        """The partitions leave this member (a rebalance, or the consumer stops)."""

    async def log_lost(self, tp: TopicPartition, why: str) -> int:
        """The broker lost the partition's log (`why`): where to resume. By default the new
        log's first offset (what was applied of the old log stays applied)."""
        log.warning(
            "the broker lost this partition's log; consuming the new log from its start",
            extra={
                "group": self.group_id,
                "topic": tp.topic,
                "partition": tp.partition,
                "detail": why,
            },
        )
        return (await self.first_offsets([tp]))[tp]

    async def observed(self, highwaters: dict[TopicPartition, int]) -> None:  # noqa: B027 (a hook)
        """After each poll's lag measurement (`highwaters`: the partitions fetched so far)."""

    async def after_poll(self) -> None:  # noqa: B027 (a hook)
        """After each poll, outside `lock` (maintenance)."""

    async def started(self) -> None:  # noqa: B027 (a hook)
        """Once the consumer joined, before the first poll."""

    # --- what a subclass calls --------------------------------------------------------------

    @property
    def dead_letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise RuntimeError(f"{self.group_id} publishes nothing")
        return self._dead_letters

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError(f"{self.group_id} is not started")
        return self._consumer

    async def first_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's first offset (an explicit offset: a lazy seek_to_beginning can lose
        to the group's committed offset)."""
        return await self.consumer.beginning_offsets(tps) if tps else {}

    async def commit(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        """The records before these offsets are done (durable): move the positions on and
        commit them to the group — now, or within a second where the subclass keeps them."""
        self.health.progressed()
        self._retry_seconds = RETRY_SECONDS
        owned = {tp: offset for tp, offset in next_offsets.items() if tp in self.positions}
        async with self._moved:
            self.positions.update(owned)
            self._moved.notify_all()
        if not self.offsets_in_kafka:
            self._uncommitted.update(owned)
            return
        try:
            await self.consumer.commit(owned)
        except Exception as error:  # e.g. a rebalance: read again, applied once
            log.warning(
                "offset commit failed; the batch may be read again",
                extra={"group": self.group_id, "error": str(error)},
            )

    async def retry_later(self, tps: Iterable[TopicPartition], error: BaseException) -> None:
        """The broker or a store failed, not the records: rewind `tps` to their positions and
        pause (1 s, doubling up to 30 s while it keeps failing); readiness says so meanwhile."""
        log.warning(
            "could not apply a batch; reading it again from the last commit",
            extra={
                "group": self.group_id,
                "error": f"{type(error).__name__}: {error}",
                "retry_in": self._retry_seconds,
            },
        )
        self.health.failed(error)
        for tp in tps:
            if tp in self.positions:
                self.consumer.seek(tp, self.positions[tp])
        await asyncio.sleep(self._retry_seconds)
        self._retry_seconds = min(MAX_RETRY_SECONDS, self._retry_seconds * 2)

    async def apply_isolating(
        self, batches: Batches, apply: Callable[[Batches], Awaitable[bool]]
    ) -> None:
        """Apply `batches` with `apply` (which raises `RecordFault` when the records are at
        fault, and returns False after `retry_later`); a record that fails alone
        `poison_max_attempts` times goes to `dead_letter`."""
        await apply_batch(batches, apply, self.dead_letter, self.dead_letters.attempts)

    async def dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord, error: BaseException
    ) -> bool:
        """Send a poison record to `transactions.rejected` and commit past it; False (after
        `retry_later`) if the broker did not take it."""
        reject = self.dead_letters.poisoned(record, error)
        try:
            await self.dead_letters.send([reject])
        except Exception as failure:
            await self.retry_later([tp], failure)
            return False
        await self.commit({tp: record.offset + 1})
        self.counts.consumed(tp.topic, rejected=1)
        return True

    async def wait_until(self, targets: Mapping[TopicPartition, int], timeout: float) -> None:
        """Until every partition's position reaches its target (`NotCaughtUp` after `timeout`)."""

        def behind() -> dict[TopicPartition, int]:
            return {tp: t for tp, t in targets.items() if self.positions.get(tp, 0) < t}

        async with self._moved:
            try:
                async with asyncio.timeout(timeout):
                    await self._moved.wait_for(lambda: not behind())
            except TimeoutError:
                lagging = ", ".join(
                    f"{tp.topic}[{tp.partition}] {self.positions.get(tp)}/{target}"
                    for tp, target in sorted(behind().items())
                )
                raise NotCaughtUp(
                    f"{self.group_id} did not catch up with {', '.join(self.topics)} within "
                    f"{timeout:.0f}s (partition applied/wanted offset: {lagging})"
                ) from None

    async def wait_caught_up(self, timeout: float) -> None:
        """Until everything on the topics now (their high watermarks) is applied."""
        await self.wait_until(await high_watermarks(self.ctx.settings, self.topics), timeout)

    def owned(self) -> dict[str, list[int]]:
        """The owned partitions, by topic."""
        found: dict[str, list[int]] = {}
        for tp in sorted(self.positions):
            found.setdefault(tp.topic, []).append(tp.partition)
        return found

    async def check(self) -> CheckResult:
        """Readiness: partitions assigned, the last batch applied, not stuck behind."""
        if not self.positions:
            return False, "no partitions assigned yet"
        ok, detail = self.health.check()
        owned = ", ".join(f"{topic} {partitions}" for topic, partitions in self.owned().items())
        return ok, f"partitions of {owned}; {detail}"

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.producer is not None:
            await self.producer.start()
        self._consumer = make_consumer(self.ctx.settings, self.group_id, **self._fetch_options)
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))
        await self._consumer.start()
        await self.started()
        self._tasks.append(asyncio.create_task(self._run(), name=f"consume {self.group_id}"))
        if not self.offsets_in_kafka:
            self._tasks.append(asyncio.create_task(self._commit_progress()))

    async def stop(self) -> None:
        await cancel(self._tasks)
        self._tasks.clear()
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group: the others take the partitions over
        if self.producer is not None:
            await self.producer.stop()
        await self._revoked(list(self.positions))

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # never a dead task (a stall with lag shows in readiness)
                log.exception("consuming %s failed; retrying", ", ".join(self.topics))
                await asyncio.sleep(RETRY_SECONDS)

    async def _poll(self) -> None:
        batches = await self.consumer.getmany(
            timeout_ms=self.poll_timeout_ms, max_records=self.max_batch
        )
        if self.bulk_records is not None and _count(batches) >= self.bulk_records:
            await self._linger(batches)
        async with self.lock:
            work = {}
            for tp, records in batches.items():
                if tp in self.positions and (unapplied := self._unapplied(tp, records)):
                    work[tp] = unapplied
            if work:
                await self.handle(work)
            await self._observe()
        await self.after_poll()

    async def _linger(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Add further polls to `batches` (in place) for up to `bulk_linger_seconds`, up to
        `max_batch` records, or until the backlog is drained: a poll of `bulk_quiet_seconds`
        brought nothing and every held partition's records reach its high watermark (records
        still on the broker, e.g. a fetch not answered yet, are worth the wait; none are not).
        A poll that does not continue a partition's records (a seek or a rebalance in between)
        ends it; that partition is fetched again from where they end."""
        deadline = time.monotonic() + self.bulk_linger_seconds
        while (total := _count(batches)) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(min(left, self.bulk_quiet_seconds) * 1000)),
                max_records=self.max_batch - total,
            )
            if not more and drained(self.consumer, _next_offsets(batches)):
                return
            broken = False
            for tp, records in more.items():
                held = batches.get(tp)
                if not held:
                    batches[tp] = records
                elif records[0].offset == held[-1].offset + 1:
                    held.extend(records)
                else:
                    self.consumer.seek(tp, held[-1].offset + 1)
                    broken = True
            if broken:
                return

    def _unapplied(self, tp: TopicPartition, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """The records not applied yet (a batch fetched before a rebalance or a rewind can arrive
        after the partition was re-seeked); none, and a re-read, if a gapless topic skipped some."""
        expected = self.positions[tp]
        if records and records[0].offset < expected:
            records = [record for record in records if record.offset >= expected]
        if self.gapless and records and records[0].offset > expected:
            self.consumer.seek(tp, expected)
            return []
        return records

    async def _observe(self) -> None:
        behind = 0
        highwaters = {}
        for end in ends(self.consumer, self.positions):
            if end.lost:
                self._seek(end.tp, await self.log_lost(end.tp, end.why_lost()))
                continue
            # A compacted topic has gaps: the fetch position moves past them, the last applied
            # offset + 1 stays before a gap at the log's end.
            fetched = await self.consumer.position(end.tp)
            lag = max(0, end.highwater - max(end.position, fetched))
            if self.lag is not None:
                self.lag.labels(str(end.tp.partition)).set(lag)
            behind += lag
            highwaters[end.tp] = end.highwater
        self.health.behind(behind)
        await self.observed(highwaters)

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset
        self.consumer.seek(tp, offset)

    async def _commit_progress(self) -> None:
        """Commit the positions to the group once a second, off the batch path (informational
        where the subclass keeps its offsets: waiting for it per batch cost a round trip)."""
        while True:
            await asyncio.sleep(PROGRESS_COMMIT_SECONDS)
            owned = {tp: o for tp, o in self._uncommitted.items() if tp in self.positions}
            self._uncommitted.clear()
            if owned:
                with contextlib.suppress(Exception):  # e.g. a rebalance in between
                    await self.consumer.commit(owned)

    async def _assigned(self, tps: list[TopicPartition]) -> None:
        async with self.lock:
            starts = await self.assign(tps)
            async with self._moved:
                for tp, offset in starts.items():
                    self._seek(tp, offset)
                self._moved.notify_all()

    async def _revoked(self, tps: list[TopicPartition]) -> None:
        # Waits for the batch in flight: a revoked partition is never half-applied.
        async with self.lock:
            await self.revoke(tps)
            for tp in tps:
                self.positions.pop(tp, None)
                self._uncommitted.pop(tp, None)
                if self.lag is not None:
                    with contextlib.suppress(KeyError):  # no lag was observed for it yet
                        self.lag.remove(str(tp.partition))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    def __init__(self, owner: GroupConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner._revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner._assigned(list(assigned))


def _count(batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> int:
    return sum(len(records) for records in batches.values())


def _next_offsets(
    batches: Mapping[TopicPartition, list[ConsumerRecord]],
) -> dict[TopicPartition, int]:
    return {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
