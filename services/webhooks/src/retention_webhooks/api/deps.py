"""Dependencies of the webhooks routes: the store, the deliverer, the networks a target may be
in, and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from retention_shared.app_state import app_state
from retention_shared.config import Settings
from retention_webhooks.delivery import Deliverer
from retention_webhooks.store import WebhookStore
from retention_webhooks.targets import IPNetwork

Store = Annotated[WebhookStore, Depends(app_state("store"))]
DelivererDep = Annotated[Deliverer, Depends(app_state("deliverer"))]
AllowedNetworks = Annotated[tuple[IPNetwork, ...], Depends(app_state("allowed_networks"))]
SettingsDep = Annotated[Settings, Depends(app_state("ctx.settings"))]
