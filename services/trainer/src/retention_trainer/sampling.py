"""Customer sampling of a run's training examples on a large tenant.

Training holds customers × cutoffs in memory and its CPU grows with them (docs/capacity.md), so
above ``max_customers`` a run's *training* examples use a deterministic sample of the tenant's
customers; the test cutoff's validation, test and baselines are still measured on every customer
(docs/trainer.md, "Customer sampling").

Above a second, separate cap, ``max_evaluation_customers``, the *earlier* rolling origins (their
validation, test and baselines) and the bootstrap's resamples use a sample too, drawn by the same
rule (:func:`evaluation_sample`): their cost grew with every customer while the numbers they give
(means over origins, interval widths) settle long before. The test cutoff's validation, test and
baselines, which the gate decides on, stay on every customer.

**Rule.** Each customer gets the first 8 bytes (big-endian) of
``blake2b(tenant_id + "\\x1f" + customer_id, digest_size=8)``; the ``max_customers`` customers with
the smallest keys (ties by customer id) are kept. So the sample is exactly ``max_customers``
customers, the same in every run and every process (no salted ``hash``), and a tenant growing by
new customers keeps most of its sample.
"""

from __future__ import annotations

import hashlib

import polars as pl

from retention_bundle.backtest_report import CustomerSampling

__all__ = [
    "DEFAULT_MAX_CUSTOMERS",
    "DEFAULT_MAX_EVALUATION_CUSTOMERS",
    "HASH_RULE",
    "describe_sampling",
    "evaluation_sample",
    "sample_customers",
    "sampled_orders",
    "sampled_rows",
]

# Tenants up to this many customers train on all of them (docs/trainer.md has the measurements).
DEFAULT_MAX_CUSTOMERS = 50_000
# Above this many customers the earlier rolling origins and the bootstrap use a sample. At least
# the training cap, so the evaluation sample holds the training sample (smallest keys first).
DEFAULT_MAX_EVALUATION_CUSTOMERS = 50_000
HASH_RULE = (
    "the max_customers customers with the smallest blake2b-64(tenant_id + '\\x1f' + customer_id)"
)


def _key(tenant: str, customer: str) -> int:
    digest = hashlib.blake2b(f"{tenant}\x1f{customer}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def sample_customers(
    orders: pl.DataFrame, tenant: str, max_customers: int | None
) -> tuple[frozenset[str] | None, CustomerSampling]:
    """The customers the run trains on (None: all of them) and the report's record of it.

    ``max_customers`` None or 0 turns sampling off."""
    if max_customers is not None and max_customers < 0:
        raise ValueError("max_customers must be 0 (no cap) or positive")
    customers = orders["customer_id"].unique().to_list()
    total = len(customers)
    if not max_customers or total <= max_customers:
        return None, CustomerSampling(
            sampled=False,
            customers=total,
            trained_customers=total,
            share=1.0,
            max_customers=max_customers or None,
            rule=None,
        )
    kept = _smallest_keys(customers, tenant, max_customers)
    return frozenset(str(c) for c in kept), CustomerSampling(
        sampled=True,
        customers=total,
        trained_customers=max_customers,
        share=max_customers / total,
        max_customers=max_customers,
        rule=HASH_RULE,
    )


def _smallest_keys(customers: list[object], tenant: str, cap: int) -> list[object]:
    return sorted(customers, key=lambda c: (_key(tenant, str(c)), str(c)))[:cap]


def evaluation_sample(
    orders: pl.DataFrame, tenant: str, max_evaluation_customers: int | None
) -> frozenset[str] | None:
    """The customers the earlier rolling origins and the bootstrap evaluate (None: all of them):
    the same rule as the training sample, with its own cap (None or 0: no cap)."""
    if max_evaluation_customers is not None and max_evaluation_customers < 0:
        raise ValueError("max_evaluation_customers must be 0 (no cap) or positive")
    customers = orders["customer_id"].unique().to_list()
    if not max_evaluation_customers or len(customers) <= max_evaluation_customers:
        return None
    return frozenset(str(c) for c in _smallest_keys(customers, tenant, max_evaluation_customers))


def sampled_rows(frame: pl.DataFrame, sample: frozenset[str] | None) -> pl.DataFrame:
    """The rows of ``frame`` (any frame with ``customer_id``) of the sampled customers."""
    if sample is None:
        return frame
    return frame.filter(pl.col("customer_id").is_in(list(sample)))


def sampled_orders(orders: pl.DataFrame, sample: frozenset[str] | None) -> pl.DataFrame:
    """The orders of the sampled customers (all of them when ``sample`` is None)."""
    return sampled_rows(orders, sample)


def describe_sampling(sampling: CustomerSampling) -> str:
    """One or two sentences for the Markdown reports."""
    return _describe_training(sampling) + _describe_evaluation(sampling)


def _describe_evaluation(sampling: CustomerSampling) -> str:
    if not sampling.evaluation_sampled or sampling.evaluated_customers is None:
        return ""
    cap = sampling.max_evaluation_customers or sampling.evaluated_customers
    return (
        f" The earlier rolling origins and the bootstrap intervals used a sample of "
        f"{sampling.evaluated_customers:,} customers (evaluation cap {cap:,}, same rule); "
        "the test cutoff's numbers used every customer."
    )


def _describe_training(sampling: CustomerSampling) -> str:
    if not sampling.sampled:
        cap = (
            f"at or below the cap of {sampling.max_customers:,}"
            if sampling.max_customers
            else "no cap"
        )
        return f"Training used all {sampling.customers:,} customers ({cap})."
    return (
        f"Training used a sample of {sampling.trained_customers:,} of {sampling.customers:,} "
        f"customers ({sampling.share:.1%}, cap {sampling.max_customers:,}; {sampling.rule}); "
        "validation, test and baselines used every customer."
    )
