"""Dependencies of the features routes: the transactions consumer, which owns the partitions'
state files the routes read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from retention_features.consumers.transactions import TransactionsConsumer
from retention_shared.app_state import app_state

Consumer = Annotated[TransactionsConsumer, Depends(app_state("consumer"))]
