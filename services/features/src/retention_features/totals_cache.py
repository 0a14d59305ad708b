"""A partition's customers' running totals in memory; the partition's SQLite file stays the truth.

A customer is loaded from the store the first time a batch touches them (their whole history,
which includes the batch's own rows, already inserted in the open transaction) and is then
advanced order by order; an order the totals cannot take exactly (`RunningCustomer.can_add`)
reloads the customer. After a batch is rolled back all totals are dropped (`forget`) and rebuilt
from the store when next needed. The least recently touched customers are evicted beyond
`capacity`, which bounds memory; an evicted customer is simply loaded again. While a partition
is rebuilt into an empty store, nothing needs loading at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from retention_features.decoding import DecodedOrder
from retention_features.store import PartitionStore
from retention_shared.features.running import RunningCustomer, RunningVector

CustomerKey = tuple[str, str]
DEFAULT_CAPACITY = 200_000


class RunningCustomers:
    """The running totals of one partition's customers (only its consumer thread uses it)."""

    def __init__(
        self, store: PartitionStore, *, empty: bool = False, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        self.store = store
        self.capacity = capacity
        self._customers: OrderedDict[CustomerKey, RunningCustomer] = OrderedDict()
        # Every customer with stored orders is in memory: true for a partition being rebuilt
        # into an empty store until a customer is evicted or forgotten. It spares the reads.
        self._complete = empty

    def __len__(self) -> int:
        return len(self._customers)

    def apply(self, orders: Iterable[DecodedOrder]) -> None:
        """Advance the customers by orders just inserted into the store (in offset order)."""
        reload: set[CustomerKey] = set()
        customers = self._customers
        for decoded in orders:
            key = (decoded.tenant_id, decoded.customer_id)
            if key in reload:
                continue
            customer = customers.get(key)
            if customer is None and self._complete:
                customers[key] = customer = RunningCustomer()
            if customer is not None and customer.can_add(decoded.order):
                customer.add(decoded.order)
            else:  # not loaded yet (its history has this order already), or not addable
                reload.add(key)
        self._load(reload)

    def vectors(
        self, as_of: dict[CustomerKey, int]
    ) -> tuple[dict[CustomerKey, RunningVector], list[CustomerKey]]:
        """Each customer's vector at their clock; and those the totals cannot serve (their clock
        is before an order of theirs, or before what was kept), for a full recompute. A customer
        without stored orders has no vector, as in `compute_features`."""
        customers = self._customers
        if not self._complete:
            self._load([key for key in as_of if key not in customers])
        served, unserved = {}, []
        for key, clock in as_of.items():
            customer = customers.get(key)
            if customer is None:  # no stored orders (only a duplicate of another's order)
                continue
            customers.move_to_end(key)
            if customer.last_key is None:
                del customers[key]
            elif customer.serves(clock):
                served[key] = customer.vector(clock)
            else:
                unserved.append(key)
        while len(customers) > self.capacity:
            customers.popitem(last=False)
            self._complete = False
        return served, unserved

    def reload(self, keys: Iterable[CustomerKey]) -> None:
        """Rebuild these customers from the store (an amendment changed their orders)."""
        keys = list(keys)
        for key in keys:
            self._customers.pop(key, None)
        self._load(keys)

    def forget(self) -> None:
        """Drop every customer's totals: some may hold orders of a batch that was rolled back."""
        self._complete = False
        self._customers.clear()

    def _load(self, keys: Iterable[CustomerKey]) -> None:
        keys = list(keys)
        if not keys:
            return
        for key, orders in self.store.history_orders(keys).items():
            self._customers[key] = RunningCustomer.from_orders(orders)
