"""`upload-events`: an uploaded file was read to its end and its orders published
(`UploadCompleted`, with the counts), keyed by tenant — what a CRM hears as `upload.completed`.

Sent before the upload's status says done, so a client that saw "done" can count on the event
being on the topic.
"""

from __future__ import annotations

from retention_shared.events import UploadCompleted
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["UploadEventsPublisher"]


class UploadEventsPublisher:
    def __init__(self, ctx: ServiceContext) -> None:
        self._topic = TopicPublisher(ctx, "upload-events")

    async def completed(self, event: UploadCompleted) -> None:
        await self._topic.publish(event, key=event.tenant_id.encode())
