"""Tenant labels on `/metrics`: as they are, a short hash, or dropped (`-`), on every metric
that labels tenants, however the call site passes the value."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from retention_shared.config import Settings, TenantLabels
from retention_shared.metrics import TenantCounter, TenantGauge, use_tenant_labels
from retention_shared.tenant_labels import tenant_label

TENANT = "acme-retail"
HASHED = hashlib.sha256(TENANT.encode()).hexdigest()[:12]


@pytest.fixture
def mode() -> Iterator[None]:
    yield
    use_tenant_labels(TenantLabels.PLAIN)


def test_the_helper_follows_the_setting() -> None:
    assert tenant_label(TenantLabels.PLAIN, TENANT) == TENANT
    assert tenant_label(TenantLabels.HASHED, TENANT) == HASHED
    assert tenant_label(TenantLabels.DROPPED, TENANT) == "-"
    assert tenant_label(TenantLabels.HASHED, "\ud800") != tenant_label(TenantLabels.HASHED, "x")
    assert Settings(metrics_tenant_labels="hashed").metrics_tenant_labels is TenantLabels.HASHED


@pytest.mark.parametrize(
    ("setting", "shown"), [("plain", TENANT), ("hashed", HASHED), ("dropped", "-")]
)
def test_tenant_metrics_expose_the_label_the_setting_asks_for(
    mode: None, setting: str, shown: str
) -> None:
    use_tenant_labels(TenantLabels(setting))
    registry = CollectorRegistry()
    rows = TenantCounter("rows_total", "rows", ["tenant", "outcome"], registry=registry)
    info = TenantGauge("model_info", "model", ["tenant", "version"], registry=registry)
    rows.labels(TENANT, "accepted").inc(3)
    rows.labels(tenant=TENANT, outcome="rejected").inc()
    info.labels(TENANT, "v1").set(1)
    info.labels(TENANT, "v2").set(1)
    info.remove(TENANT, "v1")
    text = generate_latest(registry).decode()
    if shown != TENANT:
        assert TENANT not in text
    assert f'rows_total{{outcome="accepted",tenant="{shown}"}} 3.0' in text
    assert f'rows_total{{outcome="rejected",tenant="{shown}"}} 1.0' in text
    assert f'model_info{{tenant="{shown}",version="v2"}} 1.0' in text
    assert 'version="v1"' not in text


def test_every_metric_labelled_by_tenant_follows_the_setting() -> None:
    """A metric defined with a `tenant` label as a plain Counter or Gauge would name tenants
    whatever the setting says."""
    import importlib

    from prometheus_client import REGISTRY

    from retention_shared.metrics import TenantLabelled

    for service in ("ingest", "features", "trainer", "scoring"):
        importlib.import_module(f"retention_{service}.app")  # imports every metric it defines
    labelled = [
        collector
        for collector in list(REGISTRY._collector_to_names)
        if "tenant" in getattr(collector, "_labelnames", ())
    ]
    assert len(labelled) >= 12
    plain = [c._name for c in labelled if not isinstance(c, TenantLabelled)]
    assert plain == []
