"""Dependencies of the webhooks routes: the store, the deliverer, the networks a target may be
in, and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retention_shared.config import Settings
from retention_webhooks.delivery import Deliverer
from retention_webhooks.store import WebhookStore
from retention_webhooks.targets import IPNetwork


async def get_store(request: Request) -> WebhookStore:
    return request.app.state.store


async def get_deliverer(request: Request) -> Deliverer:
    return request.app.state.deliverer


async def get_allowed_networks(request: Request) -> tuple[IPNetwork, ...]:
    return request.app.state.allowed_networks


async def get_settings(request: Request) -> Settings:
    return request.app.state.ctx.settings


Store = Annotated[WebhookStore, Depends(get_store)]
DelivererDep = Annotated[Deliverer, Depends(get_deliverer)]
AllowedNetworks = Annotated[tuple[IPNetwork, ...], Depends(get_allowed_networks)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
