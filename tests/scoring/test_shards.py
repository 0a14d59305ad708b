"""Routing decisions of sharded scoring (`retention_scoring.shards`): who owns a partition
while replicas join, leave and go silent, and which partition a customer lives in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import DefaultPartitioner

from retention_scoring.shards import Forward, Local, Membership, NoOwner, customer_partition
from retention_shared.events import ScoringReplica

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _replica(
    name: str, partitions: dict[int, int], ago: float = 0.0, **clocks: int
) -> ScoringReplica:
    return ScoringReplica(
        replica_id=name,
        url=f"http://{name}:8000",
        partitions=partitions,
        clocks=clocks,
        announced_at=NOW - timedelta(seconds=ago),
    )


def _membership(*replicas: ScoringReplica) -> Membership:
    membership = Membership(now=lambda: NOW)
    for replica in replicas:
        membership.apply(replica.replica_id, replica)
    return membership


def test_a_customer_lives_where_the_producer_puts_their_key() -> None:
    for customer in ["17850", "12346", "=HYPERLINK(1)", "ö-42", "x" * 200]:
        key = f"acme:{customer}".encode()
        for partitions in (1, 6, 7):
            expected = DefaultPartitioner()(key, list(range(partitions)), [])
            assert customer_partition("acme", customer, partitions) == expected


def test_the_previous_owner_answers_until_the_new_one_announced_a_newer_generation() -> None:
    # a held 0-3 since generation 1; the group moved 2 and 3 to b in generation 2.
    before = _membership(_replica("a", {0: 2, 1: 2, 2: 1, 3: 1}))
    assert before.route(2, "b") == Forward("a", "http://a:8000")
    assert before.route(2, "a") == Local()
    assert before.superseded("a", {0: 2, 1: 2, 2: 1, 3: 1}) == set()

    after = _membership(_replica("a", {0: 2, 1: 2, 2: 1, 3: 1}), _replica("b", {2: 2, 3: 2}))
    assert after.route(2, "a") == Forward("b", "http://b:8000")
    assert after.route(1, "b") == Forward("a", "http://a:8000")
    assert after.superseded("a", {0: 2, 1: 2, 2: 1, 3: 1}) == {2, 3}
    assert after.superseded("b", {2: 2, 3: 2}) == set()


def test_equal_generations_go_to_the_smallest_replica_id_on_every_replica() -> None:
    membership = _membership(_replica("b", {0: 3}), _replica("a", {0: 3}))
    assert membership.route(0, "a") == Local()
    assert membership.route(0, "b") == Forward("a", "http://a:8000")


def test_a_stopped_or_silent_replica_owns_nothing() -> None:
    membership = _membership(_replica("a", {0: 1}), _replica("b", {1: 1}, ago=31.0))
    assert membership.route(1, "a") == NoOwner(1)
    membership.apply("a", None)  # its tombstone
    assert membership.route(0, "c") == NoOwner(0)


def test_a_gather_asks_each_owner_for_exactly_its_partitions() -> None:
    membership = _membership(
        _replica("a", {0: 2, 1: 2, 2: 1}), _replica("b", {2: 2, 3: 2}), _replica("c", {5: 2})
    )
    shares, missing = membership.plan(range(6))
    assert shares == {"a": [0, 1], "b": [2, 3], "c": [5]}
    assert missing == [4]


def test_the_tenant_clock_is_the_latest_any_live_replica_holds() -> None:
    membership = _membership(
        _replica("a", {0: 1}, acme=100, other=5),
        _replica("b", {1: 1}, acme=250),
        _replica("gone", {2: 1}, ago=60.0, acme=999),
    )
    assert membership.clock("acme") == 250
    assert membership.clock("other") == 5
    assert membership.clock("nobody") == 0
