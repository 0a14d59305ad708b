"""Shared helpers for the deployment tests: paths, YAML loading, CRD schema validation."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.deploy.kustomize import build, group_of
from tests.support.paths import REPO

SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = {
    "scoring": 8000,
    "ingest": 8001,
    "features": 8002,
    "trainer": 8003,
    "console": 8004,
    "webhooks": 8005,
}
# The web console is the one service without a broker, a data dir, a model store or API keys of
# its own (it asks the services' GET /v1/whoami whose key a user signed in with); the tests hold
# it to that where they check those of the others.
CONSOLE = "console"
# Webhooks keep a data dir (subscriptions, delivery log) but no model store, and reach the
# internet (subscribers' URLs); the console does not call them.
WEBHOOKS = "webhooks"
# The services the console calls.
BACKENDS = {name: port for name, port in SERVICES.items() if name not in (CONSOLE, WEBHOOKS)}
# Oldest Kubernetes minor the manifests target; also validated against the newest shipped.
KUBERNETES_VERSION = "1.31.0"
CRD_FILES = {
    ("kafka.strimzi.io", "Kafka"): "strimzi-kafka.crd.yaml",
    ("kafka.strimzi.io", "KafkaNodePool"): "strimzi-kafkanodepool.crd.yaml",
    ("kafka.strimzi.io", "KafkaTopic"): "strimzi-kafkatopic.crd.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "prometheus-operator-servicemonitor.crd.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "prometheus-operator-prometheusrule.crd.yaml",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """The overlay rendered once per session (callers must not mutate the result)."""
    return tuple(build(K8S / "overlays" / overlay))


def by_kind(resources: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def is_custom_resource(resource: dict[str, Any]) -> bool:
    return (group_of(resource), resource["kind"]) in CRD_FILES


# --- CRD schemas ------------------------------------------------------------------------------


def structural_to_json_schema(schema: Any) -> Any:
    """An openAPIV3Schema as a JSON Schema that rejects unknown fields.

    The API server prunes unknown fields of a structural schema (and `kubectl apply
    --validate=strict` reports them); here an object with `properties`, no
    `additionalProperties` and no `x-kubernetes-preserve-unknown-fields` gets
    `additionalProperties: false`. `x-kubernetes-int-or-string` becomes integer-or-string.
    """
    if isinstance(schema, list):
        return [structural_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: structural_to_json_schema(value)
        for key, value in schema.items()
        if not key.startswith("x-kubernetes-")
    }
    pattern = out.get("pattern")
    if isinstance(pattern, str) and pattern.startswith("^(?i)"):
        # Go's RE2 takes a flag group anywhere; Python only at the start of the pattern.
        out["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
    crd = load_yaml(SCHEMAS / CRD_FILES[(group, kind)])
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise AssertionError(f"{kind} {group}/{version} is not a served version: {sorted(served)}")
    schema = structural_to_json_schema(copy.deepcopy(served[version]["schema"]["openAPIV3Schema"]))
    # metadata is validated by the API server itself; allow any object here.
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(resource: dict[str, Any]) -> list[str]:
    version = resource["apiVersion"].split("/")[-1]
    validator = crd_validator(group_of(resource), resource["kind"], version)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(resource)
    ]
