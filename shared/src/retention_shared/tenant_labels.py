"""How `/metrics` names a tenant (`RETENTION_METRICS_TENANT_LABELS`).

`/metrics` answers without a key, so a tenant label in plain text tells anyone who can reach it
which retailers are served and how much each one sends, scores and earns. `hashed` keeps tenants
apart on dashboards without naming them (the first 12 hex digits of SHA-256: an operator who
knows a tenant id finds its series, nobody reads the ids off the page); `dropped` puts every
tenant under `-`.
"""

from __future__ import annotations

import hashlib

from retention_shared.config import TenantLabels

__all__ = ["DROPPED", "tenant_label"]

DROPPED = "-"
HASH_DIGITS = 12


def tenant_label(mode: TenantLabels, tenant_id: str) -> str:
    """The value of a `tenant` label for `tenant_id` under `mode`."""
    if mode is TenantLabels.HASHED:
        return hashlib.sha256(tenant_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]
    if mode is TenantLabels.DROPPED:
        return DROPPED
    return tenant_id
