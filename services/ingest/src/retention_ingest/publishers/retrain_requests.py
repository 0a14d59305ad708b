"""`retrain-requests`: ask the trainer for a run of a tenant (`RetrainRequested`), keyed by
tenant — sent when an upload's orders are all published."""

from __future__ import annotations

from retention_shared.events import RetrainReason, RetrainRequested
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["RetrainRequestsPublisher"]


class RetrainRequestsPublisher:
    def __init__(self, ctx: ServiceContext) -> None:
        self._topic = TopicPublisher(ctx, "retrain-requests")

    async def upload_done(self, tenant_id: str, upload_id: str) -> None:
        """Ask for a run of the tenant: the upload's orders are on `transactions`."""
        request = RetrainRequested(
            tenant_id=tenant_id, reason=RetrainReason.UPLOAD, detail=f"upload {upload_id}"
        )
        await self._topic.publish(request, key=tenant_id.encode())
