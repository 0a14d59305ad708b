"""Is the broker's log of a partition still the one the stored state was built from?

An in-memory broker that restarts comes back with empty logs, and a topic deleted and created
again starts at offset 0: a consumer that resumed at its stored offset would wait past the new
log's end, or skip its first records, and never say so. The check: the last order the state
stored names the offset it came from; that offset must still hold that order. Either the log
is too short for it, or it holds another record — then the log was lost.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from retention_features.decoding import decode_orders
from retention_shared.config import Settings
from retention_shared.events import EventDecodeError
from retention_shared.kafka.clients import make_consumer

log = logging.getLogger(__name__)

# (tenant_id, order_id, kind) of a stored order, and the offset it was read from.
StoredMark = tuple[int, str, str, str]


async def lost_logs(
    settings: Settings, marks: dict[TopicPartition, StoredMark], timeout: float = 10.0
) -> dict[TopicPartition, str]:
    """The partitions whose log no longer holds their mark, each with what was found instead.

    A check that cannot finish in time reports nothing: a slow broker is not a lost log.
    """
    if not marks:
        return {}
    consumer = make_consumer(settings, fetch_max_wait_ms=100, auto_offset_reset="none")
    await consumer.start()
    lost: dict[TopicPartition, str] = {}
    try:
        consumer.assign(list(marks))
        for tp, (offset, *_rest) in marks.items():
            consumer.seek(tp, offset)
        pending = set(marks)
        async with asyncio.timeout(timeout):
            while pending:
                try:
                    fetched = await consumer.getmany(*pending, timeout_ms=200)
                except Exception as error:  # OffsetOutOfRange: the log no longer reaches it
                    for tp in list(pending):
                        lost[tp] = f"offset {marks[tp][0]} is out of the log's range ({error})"
                    break
                for tp in list(pending):
                    highwater = consumer.highwater(tp)
                    records = [r for r in fetched.get(tp, []) if r.offset == marks[tp][0]]
                    if records:
                        found = _mark_of(records[0].value, records[0].offset)
                        if found != marks[tp]:
                            lost[tp] = f"offset {marks[tp][0]} holds another record now"
                        pending.discard(tp)
                    elif highwater is not None and highwater <= marks[tp][0]:
                        lost[tp] = f"the log ends at {highwater}, before offset {marks[tp][0]}"
                        pending.discard(tp)
    except TimeoutError:
        log.warning("could not check the partitions' logs in time; assuming they are intact")
        return {}
    finally:
        await consumer.stop()
    return lost


def _mark_of(payload: bytes, offset: int) -> StoredMark | None:
    decoded = decode_orders([payload])[0]
    if isinstance(decoded, EventDecodeError):
        return None
    return (offset, decoded.tenant_id, decoded.order.order_id, decoded.order.kind)
