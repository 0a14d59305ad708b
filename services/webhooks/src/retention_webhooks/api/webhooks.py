"""`/v1/webhooks`: a tenant's subscriptions and their delivery logs (role admin; the caller's
tenant only: another tenant's id is a 404, as if it did not exist)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from retention_shared.auth import AdminCaller
from retention_shared.cursors import CursorError, decode_cursor, encode_cursor
from retention_shared.problems import problem_responses
from retention_webhooks.api.deps import AllowedNetworks, DelivererDep, SettingsDep, Store
from retention_webhooks.api.views import (
    DeliveryPage,
    DeliveryView,
    SubscriptionRequest,
    Webhook,
    WebhookCreated,
    WebhookList,
)
from retention_webhooks.errors import webhook_not_found
from retention_webhooks.signing import new_secret
from retention_webhooks.store import DeliveryState, Subscription, WebhookStore
from retention_webhooks.targets import TargetRefused, checked_target

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

MAX_SUBSCRIPTIONS_PER_TENANT = 50
_LOG = "deliveries"
WebhookId = Annotated[str, Path(max_length=64, description="The subscription's id (`wh_...`).")]
DeliveryId = Annotated[str, Path(max_length=64, description="The delivery's id (`dlv_...`).")]


async def _owned(store: WebhookStore, tenant_id: str, subscription_id: str) -> Subscription:
    found = await asyncio.to_thread(store.subscription, tenant_id, subscription_id)
    if found is None:
        raise webhook_not_found(subscription_id)
    return found


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Subscribe a URL to events",
    description="Subscribes `url` to the event types; the answer holds the signing secret, "
    "shown this once. Every later event of those types for the tenant is POSTed there, signed "
    "as Standard Webhooks says (docs/webhooks.md). A URL whose host resolves to a private, "
    "loopback, link-local, multicast, reserved or unspecified address is refused (422).",
    responses=problem_responses(401, 403, 409, 422),
)
async def subscribe(
    body: SubscriptionRequest, caller: AdminCaller, store: Store, allowed: AllowedNetworks
) -> WebhookCreated:
    try:
        await checked_target(body.url, allowed)
    except TargetRefused as refused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={"field": "body.url", "problem": str(refused)},
        ) from None
    if await asyncio.to_thread(store.count, caller.tenant_id) >= MAX_SUBSCRIPTIONS_PER_TENANT:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={
                "field": "body",
                "problem": f"the tenant has {MAX_SUBSCRIPTIONS_PER_TENANT} webhooks, the most "
                "it may have; delete one first",
            },
        )
    secret = new_secret()
    created = await asyncio.to_thread(
        store.subscribe,
        caller.tenant_id,
        body.url,
        [t.value for t in body.event_types],
        body.description,
        secret,
    )
    return WebhookCreated(**Webhook.of(created).model_dump(), secret=secret)


@router.get(
    "",
    response_model=WebhookList,
    summary="The tenant's webhooks",
    description="Every subscription of the caller's tenant, oldest first, without secrets.",
    responses=problem_responses(401, 403),
)
async def list_webhooks(caller: AdminCaller, store: Store) -> WebhookList:
    found = await asyncio.to_thread(store.subscriptions, caller.tenant_id)
    return WebhookList(webhooks=[Webhook.of(s) for s in found])


@router.get(
    "/{webhook_id}",
    response_model=Webhook,
    summary="One webhook",
    description="The subscription, without its secret.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_webhook(webhook_id: WebhookId, caller: AdminCaller, store: Store) -> Webhook:
    return Webhook.of(await _owned(store, caller.tenant_id, webhook_id))


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unsubscribe",
    description="Deletes the subscription and its delivery log; nothing more is sent to it.",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_webhook(webhook_id: WebhookId, caller: AdminCaller, store: Store) -> Response:
    if not await asyncio.to_thread(store.unsubscribe, caller.tenant_id, webhook_id):
        raise webhook_not_found(webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log",
    description="The subscription's deliveries, newest first: the message (`webhook-id`), "
    "type, attempts, last status or error, times and state.",
    responses=problem_responses(401, 403, 404, 422),
)
async def deliveries(
    webhook_id: WebhookId,
    caller: AdminCaller,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=500, description="Deliveries per page.")] = 50,
    state: Annotated[
        DeliveryState | None, Query(description="Only deliveries in this state.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> DeliveryPage:
    await _owned(store, caller.tenant_id, webhook_id)
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(_LOG, cursor, (int, str))
        except CursorError as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail={"field": "query.cursor", "problem": str(error)},
            ) from None
    rows = await asyncio.to_thread(
        store.deliveries,
        webhook_id,
        limit + 1,
        after,
        state,  # type: ignore[arg-type]
    )
    page = rows[:limit]
    next_cursor = encode_cursor(_LOG, page[-1][0]) if len(rows) > limit else None
    return DeliveryPage(deliveries=[DeliveryView.of(d) for _, d in page], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryView,
    summary="Send a parked delivery again",
    description="Puts a parked delivery back in line, due now, with a fresh round of attempts "
    "(the same `webhook-id`). Only a parked delivery can be redelivered (409 otherwise).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def redeliver(
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    caller: AdminCaller,
    store: Store,
    settings: SettingsDep,
    deliverer: DelivererDep,
) -> DeliveryView:
    await _owned(store, caller.tenant_id, webhook_id)
    found = await asyncio.to_thread(
        store.redeliver,
        caller.tenant_id,
        webhook_id,
        delivery_id,
        settings.webhooks_max_attempts,
    )
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={
                "field": "path.delivery_id",
                "problem": f"no delivery '{delivery_id}' of webhook '{webhook_id}'",
            },
        )
    delivery, redelivered = found
    if not redelivered:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={
                "field": "path.delivery_id",
                "problem": f"delivery '{delivery_id}' is {delivery.state.value}; only a parked "
                "one can be redelivered",
            },
        )
    deliverer.wake()
    return DeliveryView.of(delivery)
