"""`customer-erasures` → the customer out of ingest's stored rejects, kept uploads and store
(`retention_ingest.erasure`); every instance reads every request (a group per data directory)."""

from __future__ import annotations

from retention_ingest.erasure import IngestErasure
from retention_ingest.store import IngestStore
from retention_shared.erasure import instance_name, subscribe_erasures
from retention_shared.service import ServiceContext


def register(ctx: ServiceContext, store: IngestStore) -> None:
    state_dir = ctx.settings.data_dir / "ingest"
    instance = instance_name(state_dir)
    erasure = IngestErasure(store, state_dir / "uploads")
    subscribe_erasures(ctx, f"retention-ingest.erasures.{instance}", instance, erasure.erase)
