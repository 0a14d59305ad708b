"""`orders.raw`: orders straight from upstream producers, in the tenant's own column names.

A record is one order: a JSON object whose keys are the tenant's columns, with its lines either
under `lines` or, for a one-line order, at the top level. The tenant comes from the `tenant`
header. Columns are read with the tenant's saved mapping (`PUT /v1/mappings/default`), or
recognized when they are a known public layout. Every record passes through the same cleaning as
files; what cannot become an event goes to `transactions.rejected` with its reasons. The offset
is committed only after the handler returns, i.e. after the broker acknowledged the outputs. A
record the handler fails on is delivered again, and after `poison_max_attempts` failures goes to
`transactions.rejected` as `poison`; a broker that does not acknowledge is waited for, without
counting against the record (`dead_lettering`).
"""

from __future__ import annotations

import json

from faststream import AckPolicy
from faststream.kafka import KafkaMessage

from retention_ingest import metrics
from retention_ingest.amendments import fingerprints, judge
from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.cleaning import CleaningPlan
from retention_ingest.dates import DateFormat
from retention_ingest.errors import IngestError
from retention_ingest.mapping import resolve_mapping
from retention_ingest.order_events import order_event_payloads
from retention_ingest.publishing import BrokerUnavailable, MessageTooLarge, OrderPublisher
from retention_ingest.records import clean_records, flatten_record
from retention_ingest.store import IngestStore
from retention_shared.consuming import (
    TransientFailure,
    dead_lettering,
    raw_body,
    record_location,
    reject_record,
)
from retention_shared.events import RejectReason
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext


def register(ctx: ServiceContext, store: IngestStore, publisher: OrderPublisher) -> None:
    @ctx.broker.subscriber(
        ctx.topics.orders_raw,
        group_id="retention-ingest",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
    )
    @dead_lettering(ctx)
    async def on_raw_order(body: bytes, message: KafkaMessage) -> None:
        tenant_id = (message.headers or {}).get("tenant")
        if not tenant_id:
            reason = RejectReason(code="missing_tenant", field="tenant", message="no tenant header")
            await reject_record(ctx, message, [reason])
            return
        try:
            record = json.loads(body)
            if not isinstance(record, dict):
                raise ValueError("a record must be a JSON object")
        except (UnicodeDecodeError, ValueError) as error:
            reason = RejectReason(code="not_json", field=None, message=str(error))
            await reject_record(ctx, message, [reason], tenant_id=tenant_id)
            return
        rows = flatten_record(record)
        saved_mapping, saved_timezone = store.mapping(tenant_id)
        columns = sorted({column for row in rows for column in row})
        try:
            _, mapping = resolve_mapping(columns, saved_mapping)
        except IngestError as error:
            reason = RejectReason(code=error.code.value, field=error.field, message=error.message)
            await reject_record(ctx, message, [reason], tenant_id=tenant_id)
            return
        date_format = (
            DateFormat.of_mapping(mapping.date_format) if mapping.date_format else DateFormat.iso()
        )
        plan = CleaningPlan(
            mapping,
            date_format,
            saved_timezone or ctx.settings.default_timezone,
            bounds=OrderBounds.from_settings(ctx.settings),
            received_at=utc_now(),
        )
        result = clean_records([rows], plan, tenant_id=tenant_id, source=record_location(message))
        if result.events.height:
            sent = fingerprints(result.events)
            conflicts = judge(
                sent, store.fingerprints(tenant_id, [(f.order_id, f.kind) for f in sent])
            ).conflicts
            if conflicts:  # a record carries no version: other content is a conflict
                reasons = [
                    RejectReason(
                        code="amended_without_version",
                        field=differs[0],
                        message=f"order {sent[row].order_id} was sent before with other "
                        f"{', '.join(differs)}; amend it over HTTP with a higher version",
                    )
                    for row, differs in conflicts.items()
                ]
                await reject_record(ctx, message, reasons, tenant_id=tenant_id)
                return
            keys = [
                f"{t}:{c}".encode()
                for t, c in result.events.select("tenant_id", "customer_id").iter_rows()
            ]
            try:
                await publisher.publish(tenant_id, keys, order_event_payloads(result.events))
            except BrokerUnavailable as error:  # not the record's fault: delivered again later
                raise TransientFailure(str(error)) from error
            except MessageTooLarge as error:  # no retry can help: reject, do not redeliver
                reason = RejectReason(code="message_too_large", field="lines", message=str(error))
                await reject_record(ctx, message, [reason], tenant_id=tenant_id)
                return
            store.save_fingerprints(tenant_id, sent, amend=True)
        rejected = result.outcomes[0].rejected_lines
        if rejected:
            reasons = [
                RejectReason(code=r.reason, field=r.field, message=f"line {r.line}")
                for r in rejected
            ]
            await reject_record(ctx, message, reasons, tenant_id=tenant_id)
        metrics.count_rows(tenant_id, result.accepted_rows, result.rejected_by_reason)
        if result.events.height:
            MESSAGES.labels(ctx.name, ctx.topics.orders_raw, "consumed", "ok").inc()
