"""What the webhooks API answers: subscriptions (the secret only on creation) and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from retention_webhooks.messages import EventType
from retention_webhooks.store import Delivery, DeliveryState, Subscription

MAX_DESCRIPTION = 200


def _printable(text: str) -> str:
    if not text.isprintable():
        raise ValueError("must be printable text (no control characters)")
    return text


def _distinct(types: list[EventType]) -> list[EventType]:
    if len(set(types)) != len(types):
        raise ValueError("names an event type twice")
    return types


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/retention",
                    "event_types": ["score.changed", "model.published"],
                    "description": "CRM sync",
                }
            ]
        },
    )

    url: str = Field(
        max_length=2048,
        description="Where to POST: an https:// (or http://) URL whose host resolves to public "
        "addresses only.",
    )
    event_types: Annotated[list[EventType], AfterValidator(_distinct)] = Field(
        min_length=1,
        description="The event types to send: one or more of "
        + ", ".join(f"`{t.value}`" for t in EventType)
        + ".",
    )
    description: Annotated[str, AfterValidator(_printable)] | None = Field(
        None, max_length=MAX_DESCRIPTION, description="Free text, shown back as sent."
    )


_WEBHOOK_EXAMPLE = {
    "id": "wh_5f0c8e2a9b1d4c7e3a6f8b20",
    "url": "https://crm.example.com/hooks/retention",
    "event_types": ["score.changed", "model.published"],
    "description": "CRM sync",
    "created_at": "2024-05-01T09:00:00Z",
}


class Webhook(BaseModel):
    """A subscription as listed: never with its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    id: str
    url: str
    event_types: list[EventType]
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, subscription: Subscription) -> Webhook:
        return cls(
            id=subscription.id,
            url=subscription.url,
            event_types=[EventType(t) for t in subscription.event_types],
            description=subscription.description,
            created_at=subscription.created_at,
        )


class WebhookCreated(Webhook):
    """A new subscription with its signing secret: shown this once, never again."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _WEBHOOK_EXAMPLE | {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw0w8XmZ3D+lU="}
            ]
        }
    )

    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: the HMAC key (its decoded bytes) of "
        "`webhook-signature`. Keep it; it is not shown again."
    )


class WebhookList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"webhooks": [_WEBHOOK_EXAMPLE]}]})

    webhooks: list[Webhook] = Field(description="The tenant's subscriptions, oldest first.")


_DELIVERY_EXAMPLE = {
    "id": "dlv_8d1f0a3c5e7b9d2f4a6c8e0b",
    "webhook_id": "wh_5f0c8e2a9b1d4c7e3a6f8b20",
    "message_id": "msg_2b7e1c9a4f6d8e0b3a5c7e9f1d2b4a6c",
    "type": "score.changed",
    "state": "retrying",
    "attempts": 2,
    "last_status": 503,
    "last_error": "HTTP 503",
    "created_at": "2024-05-01T09:00:00Z",
    "last_attempt_at": "2024-05-01T09:00:31Z",
    "next_attempt_at": "2024-05-01T09:01:20Z",
    "delivered_at": None,
}


class DeliveryView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DELIVERY_EXAMPLE]})

    id: str
    webhook_id: str = Field(description="The subscription it goes to.")
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    type: EventType
    state: DeliveryState = Field(
        description="`pending` (not tried yet), `retrying`, `delivered` or `parked` (every "
        "attempt failed; `POST .../redeliver` sends it again)."
    )
    attempts: int
    last_status: int | None = Field(description="HTTP status of the last attempt, if answered.")
    last_error: str | None = Field(description="Why the last attempt failed, if it did.")
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When it is tried next, while open.")
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryView:
        return cls(
            id=delivery.id,
            webhook_id=delivery.subscription_id,
            message_id=delivery.message_id,
            type=EventType(delivery.type),
            state=delivery.state,
            attempts=delivery.attempts,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
        )


class DeliveryPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"deliveries": [_DELIVERY_EXAMPLE], "next_cursor": None}]}
    )

    deliveries: list[DeliveryView] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
