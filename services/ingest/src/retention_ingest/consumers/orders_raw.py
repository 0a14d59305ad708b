"""`orders.raw`: orders straight from upstream producers, canonical or in the tenant's columns.

A record is one order, a JSON object, with the tenant in the `tenant` header. Its keys are read,
in this order: with the tenant's saved mapping (`PUT /v1/mappings/default`); as a known public
layout; else, when it names canonical fields (`order_id`, `customer_id`, `order_datetime`), as
the body of `POST /v1/orders`, with that route's shape, cleaning, bounds, reason codes and
versioned amendments (`canonical`), so it becomes the event the same order sent over HTTP
becomes. In the tenant's columns, lines are under `lines` or, for a one-line order, at the top
level, and the record carries no version. Every record passes through the same cleaning as
files; what cannot become an event goes to `transactions.rejected` with its reasons (a shape
HTTP answers with 422 as `invalid_order`, naming the same field). The offset
is committed only after the handler returns, i.e. after the broker acknowledged the outputs. A
record the handler fails on is delivered again, and after `poison_max_attempts` failures goes to
`transactions.rejected` as `poison`; a broker that does not acknowledge is waited for, without
counting against the record (the Kafka kit's `subscriber`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl
from faststream.kafka import KafkaMessage

from retention_ingest import telemetry
from retention_ingest.amendments import Fingerprint, fingerprints, judge
from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.canonical import (
    canonical_plan,
    field_path,
    looks_canonical,
    prepare_orders,
    read_order,
)
from retention_ingest.cleaning import CleaningPlan
from retention_ingest.dates import DateFormat
from retention_ingest.errors import IngestError
from retention_ingest.mapping import resolve_mapping
from retention_ingest.order_events import order_event_payloads
from retention_ingest.publishers.transactions import (
    BrokerUnavailable,
    MessageTooLarge,
    OrderPublisher,
)
from retention_ingest.publishers.transactions_rejected import RejectedOrders
from retention_ingest.records import RecordsResult, clean_records, flatten_record
from retention_ingest.store import IngestStore
from retention_shared.events import RejectReason
from retention_shared.kafka.dead_letters import TransientFailure, record_location
from retention_shared.kafka.subscribers import record_of, subscriber
from retention_shared.service import ServiceContext

# A record in the tenant's columns carries no version: an amendment goes over HTTP.
_NO_VERSION = "amend it over HTTP with a higher version"


GROUP_ID = "retention-ingest"


def register(ctx: ServiceContext, store: IngestStore, publisher: OrderPublisher) -> None:
    rejects = RejectedOrders(ctx)

    @subscriber(ctx, "orders.raw", group_id=GROUP_ID)
    async def on_raw_order(body: bytes, message: KafkaMessage) -> None:
        tenant_id = (message.headers or {}).get("tenant")
        if not tenant_id:
            reason = RejectReason(code="missing_tenant", field="tenant", message="no tenant header")
            await rejects.reject(message, [reason])
            return
        try:
            record = json.loads(body)
            if not isinstance(record, dict):
                raise ValueError("a record must be a JSON object")
        except (UnicodeDecodeError, ValueError) as error:
            reason = RejectReason(code="not_json", field=None, message=str(error))
            await rejects.reject(message, [reason], tenant_id=tenant_id)
            return
        rows = flatten_record(record)
        saved_mapping, saved_timezone = store.mapping(tenant_id)
        columns = sorted({column for row in rows for column in row})
        received_at = utc_now()
        source = record_location(record_of(message))
        try:
            _, mapping = resolve_mapping(columns, saved_mapping)
        except IngestError as error:
            # The tenant's mapping and the public layouts come first; a record they cannot read
            # that names canonical fields is the body of POST /v1/orders, read as HTTP reads it.
            if not looks_canonical(record):
                reason = RejectReason(
                    code=error.code.value, field=error.field, message=error.message
                )
                await rejects.reject(message, [reason], tenant_id=tenant_id)
                return
            order = read_order(record)
            if isinstance(order, list):
                await rejects.reject(message, order, tenant_id=tenant_id)
                return
            prepared = prepare_orders(
                [order],
                canonical_plan(ctx.settings, saved_timezone, received_at),
                tenant_id=tenant_id,
                source=source,
                store=store,
            )
            await publish(
                message,
                tenant_id,
                prepared.result,
                prepared.events,
                prepared.sent,
                prepared.conflicts,
                field_path,
                "send it with a higher version to amend it",
            )
            return
        date_format = (
            DateFormat.of_mapping(mapping.date_format) if mapping.date_format else DateFormat.iso()
        )
        plan = CleaningPlan(
            mapping,
            date_format,
            saved_timezone or ctx.settings.default_timezone,
            bounds=OrderBounds.from_settings(ctx.settings),
            received_at=received_at,
        )
        result = clean_records([rows], plan, tenant_id=tenant_id, source=source)
        sent = fingerprints(result.events) if result.events.height else []
        stored = store.fingerprints(tenant_id, [(f.order_id, f.kind) for f in sent])
        conflicts = judge(sent, stored).conflicts if sent else {}
        await publish(
            message, tenant_id, result, result.events, sent, conflicts, _line_field, _NO_VERSION
        )

    async def publish(
        message: KafkaMessage,
        tenant_id: str,
        result: RecordsResult,
        events: pl.DataFrame,
        sent: list[Fingerprint],
        conflicts: dict[int, list[str]],
        field_of: Callable[[str | None, int], str | None],
        amend_hint: str,
    ) -> None:
        """Publish a record's events (none when one conflicts with an order sent before), then
        reject the lines cleaning dropped, each naming its field with `field_of`."""
        if conflicts:  # other content at a version not higher than the one sent before
            reasons = [
                RejectReason(
                    code="amended_without_version",
                    field=differs[0],
                    message=f"order {sent[row].order_id} was sent before with other "
                    f"{', '.join(differs)}; {amend_hint}",
                )
                for row, differs in conflicts.items()
            ]
            await rejects.reject(message, reasons, tenant_id=tenant_id)
            return
        if events.height:
            keys = [
                f"{t}:{c}".encode()
                for t, c in events.select("tenant_id", "customer_id").iter_rows()
            ]
            try:
                await publisher.publish(tenant_id, keys, order_event_payloads(events))
            except BrokerUnavailable as error:  # not the record's fault: delivered again later
                raise TransientFailure(str(error)) from error
            except MessageTooLarge as error:  # no retry can help: reject, do not redeliver
                reason = RejectReason(code="message_too_large", field="lines", message=str(error))
                await rejects.reject(message, [reason], tenant_id=tenant_id)
                return
            store.save_fingerprints(tenant_id, sent, amend=True)
        rejected = result.outcomes[0].rejected_lines
        if rejected:
            reasons = [
                RejectReason(
                    code=r.reason, field=field_of(r.field, r.line), message=f"line {r.line}"
                )
                for r in rejected
            ]
            await rejects.reject(message, reasons, tenant_id=tenant_id)
        telemetry.count_rows(tenant_id, result.accepted_rows, result.rejected_by_reason)
        if events.height:
            ctx.counts.consumed(record_of(message).topic, ok=1)


def _line_field(field: str | None, _line: int) -> str | None:
    # A record in the tenant's columns: the canonical field alone, as before.
    return field
