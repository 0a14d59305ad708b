"""Dependencies of the features routes: the transactions consumer, which owns the partitions'
state files the routes read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retention_features.consumers.transactions import TransactionsConsumer


async def get_consumer(request: Request) -> TransactionsConsumer:
    return request.app.state.consumer


Consumer = Annotated[TransactionsConsumer, Depends(get_consumer)]
