"""Every protected route of every service declares the API-key scheme in its OpenAPI document, so
Swagger's Authorize button works and generated clients send the key; the ops routes do not."""

from pathlib import Path

import pytest

from retention_features.app import create_app as features_app
from retention_ingest.app import create_app as ingest_app
from retention_scoring.app import create_app as scoring_app
from retention_shared.config import Settings
from retention_trainer.app import create_app as trainer_app

APPS = {
    "ingest": ingest_app,
    "features": features_app,
    "trainer": trainer_app,
    "scoring": scoring_app,
}
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics"}


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_v1_route_declares_the_api_key_and_ops_routes_do_not(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    settings = Settings(
        api_keys="k:default:admin", kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path
    )
    document = APPS[service](settings).openapi()
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    protected = [(p, m) for p, m, op in operations if op.get("security") == [{"ApiKey": []}]]
    unprotected = {p for p, m, op in operations if "security" not in op}
    assert {p for p, _ in protected} == {p for p in document["paths"] if p.startswith("/v1/")}
    assert unprotected == OPEN_ROUTES & set(document["paths"])
