"""`GET /v1/replicas`: who serves which `customer-features` partitions, as this replica sees it
(sharded scoring; one replica holding everyone answers `sharded: false`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State
from retention_shared.auth import ReadCaller
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["ops"])


class ReplicaView(BaseModel):
    replica_id: str
    url: str
    partitions: dict[int, int] = Field(description="Partition → the group generation it came in.")
    owns: list[int] = Field(description="The partitions requests are routed here for.")


class Replicas(BaseModel):
    sharded: bool
    replica_id: str | None = Field(description="This replica.")
    partitions: int | None = Field(description="Partitions of customer-features.")
    replicas: list[ReplicaView]


_EXAMPLE = {
    "sharded": True,
    "replica_id": "scoring-7c9f-41-a1b2c3",
    "partitions": 6,
    "replicas": [
        {
            "replica_id": "scoring-7c9f-41-a1b2c3",
            "url": "http://10.0.3.17:8000",
            "partitions": {"0": 4, "1": 4, "2": 4},
            "owns": [0, 1, 2],
        },
        {
            "replica_id": "scoring-d2e8-43-d4e5f6",
            "url": "http://10.0.5.9:8000",
            "partitions": {"3": 4, "4": 4, "5": 4},
            "owns": [3, 4, 5],
        },
    ],
}


@router.get("/replicas", responses=example_response(_EXAMPLE) | problem_responses(401, 403))
async def replicas(caller: ReadCaller, state: State) -> Replicas:
    """The live replicas (heard of within the heartbeat limit), what each has materialized and
    which partitions it owns: requests for a customer go to the owner of their partition."""
    sharding = state.sharding
    if sharding is None:
        return Replicas(sharded=False, replica_id=None, partitions=None, replicas=[])
    count = sharding.partition_count()
    membership = sharding.membership
    owners = {p: owner.replica_id for p in range(count) if (owner := membership.owner(p))}
    return Replicas(
        sharded=True,
        replica_id=sharding.replica_id,
        partitions=count,
        replicas=[
            ReplicaView(
                replica_id=r.replica_id,
                url=r.url,
                partitions=r.partitions,
                owns=sorted(p for p, owner in owners.items() if owner == r.replica_id),
            )
            for r in sorted(membership.live(), key=lambda r: r.replica_id)
        ],
    )
