"""deploy/k8s: both overlays render, validate against Kubernetes and CRD schemas, and keep the
rules the platform depends on (security contexts, probes, resources, topics, network policy)."""

from __future__ import annotations

import copy
import importlib
import pkgutil
import re

import kubernetes_validate
import pytest

from retention_shared.config import Settings
from retention_shared.topics import Topics
from tests.deploy.kustomize import pod_specs
from tests.deploy.support import (
    BACKENDS,
    CONSOLE,
    KUBERNETES_VERSION,
    OVERLAYS,
    REPO,
    SERVICES,
    WEBHOOKS,
    by_kind,
    crd_errors,
    is_custom_resource,
    load_yaml,
    rendered,
)

WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
INGRESS_NAMESPACE = {"kubernetes.io/metadata.name": "ingress-nginx"}
NAMESPACE = {"dev": "retention-dev", "prod": "retention"}
# Settings a deployment may pass that the shared Settings model does not declare: none.
EXTRA_SETTINGS: set[str] = set()

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def workloads(overlay: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in rendered(overlay) if r["kind"] in WORKLOAD_KINDS}


def test_every_core_manifest_is_valid_kubernetes_in_strict_mode(overlay: str) -> None:
    versions = {KUBERNETES_VERSION, kubernetes_validate.latest_version()}
    failures = []
    for resource in rendered(overlay):
        if is_custom_resource(resource):
            continue
        for version in sorted(versions):
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(
                    f"{resource['kind']}/{resource['metadata']['name']} @{version}: "
                    f"{'/'.join(map(str, error.path))}: {error.message}"
                )
    assert not failures, "\n".join(failures)


def test_strict_validation_does_catch_a_typo(overlay: str) -> None:
    deployment = copy.deepcopy(by_kind(rendered(overlay), "Deployment")["scoring"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_custom_resource_matches_its_crd_schema(overlay: str) -> None:
    custom = [r for r in rendered(overlay) if is_custom_resource(r)]
    kinds = {r["kind"] for r in custom}
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor", "PrometheusRule"}
    failures = {
        f"{r['kind']}/{r['metadata']['name']}": crd_errors(r) for r in custom if crd_errors(r)
    }
    assert not failures


def test_crd_validation_rejects_unknown_and_invalid_fields(overlay: str) -> None:
    topic = copy.deepcopy(by_kind(rendered(overlay), "KafkaTopic")["transactions"])
    topic["spec"]["partition"] = 6
    topic["spec"]["replicas"] = 0
    errors = crd_errors(topic)
    assert any("partition" in e for e in errors) and any("replicas" in e for e in errors)


def test_every_resource_is_known_and_namespaced_in_the_overlay_namespace(overlay: str) -> None:
    for resource in rendered(overlay):
        if resource["kind"] == "Namespace":
            assert resource["metadata"]["name"] == NAMESPACE[overlay]
        else:
            assert resource["metadata"]["namespace"] == NAMESPACE[overlay], resource["kind"]
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "retention"
    assert not by_kind(rendered(overlay), "Secret"), "secrets are created out of band"


def test_workloads_are_the_services_with_features_as_statefulset(overlay: str) -> None:
    kinds = {name: w["kind"] for name, w in workloads(overlay).items()}
    assert kinds == {
        "ingest": "Deployment",
        "trainer": "Deployment",
        "scoring": "Deployment",
        "features": "StatefulSet",
        "console": "Deployment",
        "webhooks": "Deployment",
    }
    features = workloads(overlay)["features"]
    claims = features["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    mounts = features["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts
    partitions = int(
        by_kind(rendered(overlay), "ConfigMap")["retention-config"]["data"][
            "RETENTION_TOPIC_PARTITIONS"
        ]
    )
    assert features["spec"]["replicas"] <= partitions, "features replicas must be <= partitions"


def test_restricted_security_context_probes_and_resources_on_every_container(overlay: str) -> None:
    for name, workload in workloads(overlay).items():
        (pod,) = pod_specs(workload)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["serviceAccountName"] == name
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] != 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod.get("initContainers", []) + pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("privileged", False) is False
            assert security["runAsNonRoot"] is True
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], name
        (container,) = pod["containers"]
        port = SERVICES[name]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["image"].startswith("ghcr.io/retention/retention-" + name + ":")
        env = {e["name"]: e for e in container["env"]}
        assert env[f"RETENTION_{name.upper()}_PORT"]["value"] == str(port)
        assert container["envFrom"] == [{"configMapRef": {"name": "retention-config"}}]
        if name == CONSOLE:
            continue  # its keys and volumes: test_console_talks_to_the_services_with_users_keys
        assert env["RETENTION_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
            "name": "retention-secrets",
            "key": "RETENTION_API_KEYS",
        }


def test_console_talks_to_the_services_with_users_keys(overlay: str) -> None:
    (pod,) = pod_specs(workloads(overlay)[CONSOLE])
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name, port in BACKENDS.items():
        assert env[f"RETENTION_CONSOLE_{name.upper()}_URL"]["value"] == f"http://{name}:{port}"
    # No keys of its own (a user's key is checked by the services' /v1/whoami), no broker
    # credentials: only the session secret, the same in every replica.
    assert "RETENTION_API_KEYS" not in env and "RETENTION_KAFKA_SASL_PASSWORD" not in env
    assert env["RETENTION_CONSOLE_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "retention-secrets",
        "key": "RETENTION_CONSOLE_SESSION_SECRET",
    }
    # No data dir, no model store: /tmp (staged uploads) is all it writes, on disk.
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    (volume,) = pod["volumes"]
    assert "medium" not in volume["emptyDir"] and volume["emptyDir"]["sizeLimit"]
    data = by_kind(rendered(overlay), "ConfigMap")["retention-config"]["data"]
    # Secure cookies wherever users come through the TLS Ingress; dev is port-forwarded HTTP.
    assert data["RETENTION_CONSOLE_COOKIE_SECURE"] == ("false" if overlay == "dev" else "true")


def test_config_map_holds_only_known_settings(overlay: str) -> None:
    data = by_kind(rendered(overlay), "ConfigMap")["retention-config"]["data"]
    known = {f"RETENTION_{field.upper()}" for field in Settings.model_fields} | EXTRA_SETTINGS
    unknown = {key for key in data if key != "BENTOML_HOME"} - known
    assert not unknown
    assert "RETENTION_API_KEYS" not in data, "secrets belong in retention-secrets"
    assert data["RETENTION_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
    assert data["RETENTION_BIND_HOST"] == "0.0.0.0"
    assert data["RETENTION_KAFKA_BOOTSTRAP"] == "retention-kafka-bootstrap:9092"


def test_services_select_their_workload_and_port(overlay: str) -> None:
    services = by_kind(rendered(overlay), "Service")
    for name, port in SERVICES.items():
        service = services[name]
        template_labels = workloads(overlay)[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= template_labels.items()
        assert service["spec"]["ports"] == [
            {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
        ]
    assert services["features-headless"]["spec"]["clusterIP"] == "None"
    assert workloads(overlay)["features"]["spec"]["serviceName"] == "features-headless"


def test_autoscaling_and_disruption_budgets(overlay: str) -> None:
    hpas = by_kind(rendered(overlay), "HorizontalPodAutoscaler")
    assert set(hpas) == {"scoring", "ingest"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdbs = by_kind(rendered(overlay), "PodDisruptionBudget")
    assert set(pdbs) == set(SERVICES)
    for name, pdb in pdbs.items():
        labels = workloads(overlay)[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_network_policies_allow_only_what_each_service_needs(overlay: str) -> None:
    policies = by_kind(rendered(overlay), "NetworkPolicy")
    assert set(policies) == set(SERVICES)
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        ingress_ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
        assert ingress_ports == {SERVICES[name]}
        sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
        assert any(
            peer.get("podSelector", {}).get("matchLabels")
            == {"app.kubernetes.io/name": "prometheus"}
            for peer in sources
        ), "Prometheus must be able to scrape"
        egress_ports = {
            (p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]
        }
        if name == CONSOLE:
            continue  # test_console_network_policy
        assert {"podSelector": {}} in sources, "the console and other pods of the namespace"
        expected = {(53, "UDP"), (53, "TCP"), (9092, "TCP")}
        if name == "trainer":
            expected.add((443, "TCP"))  # S3
        if name == WEBHOOKS:
            expected |= {(443, "TCP"), (80, "TCP")}  # subscribers' URLs
            _public_only(spec)
        assert egress_ports == expected, name
        kafka_rule = next(r for r in spec["egress"] if r["ports"][0]["port"] == 9092)
        assert kafka_rule["to"] == [
            {
                "podSelector": {
                    "matchLabels": {"strimzi.io/cluster": "retention", "strimzi.io/kind": "Kafka"}
                }
            }
        ]


def _public_only(spec: dict) -> None:
    """Webhooks' HTTP(S) egress leaves out the private, loopback and link-local ranges (the
    service refuses them itself too), so a subscriber URL cannot reach the cluster."""
    web = [r for r in spec["egress"] if {p["port"] for p in r["ports"]} == {80, 443}]
    (rule,) = web
    excluded = {cidr for peer in rule["to"] for cidr in peer["ipBlock"].get("except", [])}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"} <= (
        excluded
    )
    assert {"fc00::/7", "fe80::/10", "::1/128"} <= excluded


def test_console_network_policy(overlay: str) -> None:
    """Browsers through the ingress controller and Prometheus in; out only DNS and each
    service's own port on that service's pods (no broker, no S3)."""
    spec = by_kind(rendered(overlay), "NetworkPolicy")[CONSOLE]["spec"]
    sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": INGRESS_NAMESPACE}} in sources
    assert {"podSelector": {}} not in sources, "no other pod needs the console"
    dns, *services = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    reached = {
        rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: [
            (p["port"], p["protocol"]) for p in rule["ports"]
        ]
        for rule in services
    }
    assert all(len(rule["to"]) == 1 for rule in services)
    assert reached == {name: [(port, "TCP")] for name, port in BACKENDS.items()}


def ingress_paths(ingress: dict) -> list[tuple[str, str, str, object]]:
    """(host, path, pathType, backend service) of every rule of an Ingress."""
    return [
        (rule["host"], path["path"], path["pathType"], path["backend"]["service"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def routed(path: str, rules: list[tuple[str, str, str, object]]) -> bool:
    """Whether a request path matches one of the rules, as Kubernetes defines Exact and Prefix
    (a Prefix matches whole path elements: /cohorts matches /cohorts/x, not /cohorts.csv)."""
    for _, rule_path, kind, _ in rules:
        if kind == "Exact" and path == rule_path:
            return True
        prefix = rule_path.rstrip("/")
        if kind == "Prefix" and (path == prefix or path.startswith(prefix + "/") or prefix == ""):
            return True
    return False


def console_paths() -> set[str]:
    """One request path per route of the console: the app's own (static files, ops endpoints)
    and every page module's router (path parameters filled in)."""
    import retention_console.pages
    from retention_console.app import create_app

    routes = [r for r in create_app(Settings(api_keys="")).routes if hasattr(r, "path")]
    for module in pkgutil.iter_modules(retention_console.pages.__path__):
        page = importlib.import_module(f"retention_console.pages.{module.name}")
        routes += getattr(page, "router", None).routes if hasattr(page, "router") else []
    return {re.sub(r"\{[^}]+\}", "x", route.path) for route in routes}


def test_prod_ingress_serves_console_ingest_scoring_and_webhooks_over_tls(overlay: str) -> None:
    ingresses = by_kind(rendered(overlay), "Ingress")
    if overlay == "dev":
        assert not ingresses, "dev is reached with kubectl port-forward"
        return
    assert set(ingresses) == {CONSOLE, "ingest", "scoring", WEBHOOKS}
    services = by_kind(rendered(overlay), "Service")
    policies = by_kind(rendered(overlay), "NetworkPolicy")
    hosts = set()
    for name, ingress in ingresses.items():
        spec = ingress["spec"]
        assert spec["ingressClassName"] == "nginx"
        rules = ingress_paths(ingress)
        (tls,) = spec["tls"]
        assert {host for host, *_ in rules} == set(tls["hosts"]), "every host has TLS"
        assert tls["secretName"] == f"{name}-tls"
        assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
        hosts |= set(tls["hosts"])
        for *_, backend in rules:
            assert backend == {"name": name, "port": {"name": "http"}}
        assert services[name]["spec"]["ports"][0]["name"] == "http"
        # The backend's NetworkPolicy admits the controller these rules go through.
        sources = [peer for rule in policies[name]["spec"]["ingress"] for peer in rule["from"]]
        assert {"namespaceSelector": {"matchLabels": INGRESS_NAMESPACE}} in sources
        for ops in ("/metrics", "/healthz", "/readyz", "/docs", "/openapi.json"):
            assert not routed(ops, rules), f"{name}{ops} must stay inside the cluster"
        if name != CONSOLE:
            assert [(path, kind) for _, path, kind, _ in rules] == [("/v1", "Prefix")]
    assert len(hosts) == 4


def test_prod_ingress_routes_every_console_page(overlay: str) -> None:
    if overlay == "dev":
        return
    ingress = by_kind(rendered(overlay), "Ingress")[CONSOLE]
    rules = ingress_paths(ingress)
    missing = {
        path
        for path in console_paths() - {"/metrics", "/healthz", "/readyz"}
        if not routed(path, rules)
    }
    assert not missing, f"add these console routes to overlays/prod/ingress.yaml: {missing}"
    annotations = ingress["metadata"]["annotations"]
    # Sessions live in one pod's memory: replicas need the sticky cookie.
    if workloads(overlay)[CONSOLE]["spec"]["replicas"] > 1:
        assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
        assert annotations["nginx.ingress.kubernetes.io/session-cookie-secure"] == "true"
    # Uploads through the data page: the controller's 1m default would refuse them.
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "500m"
    assert Settings().max_upload_bytes == 500 * 1024 * 1024


def test_strimzi_kafka_in_kraft_mode_with_node_pool(overlay: str) -> None:
    resources = rendered(overlay)
    (kafka,) = by_kind(resources, "Kafka").values()
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    assert {"name": "plain", "port": 9092, "type": "internal", "tls": False} in kafka["spec"][
        "kafka"
    ]["listeners"]
    (pool,) = by_kind(resources, "KafkaNodePool").values()
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    if overlay == "dev":
        assert pool["spec"]["replicas"] == 1
        assert pool["spec"]["storage"]["type"] == "ephemeral"
        assert config["default.replication.factor"] == 1
    else:
        assert pool["spec"]["replicas"] == 3
        volumes = pool["spec"]["storage"]["volumes"]
        assert pool["spec"]["storage"]["type"] == "jbod"
        assert [v["type"] for v in volumes] == ["persistent-claim"]
        assert volumes[0]["deleteClaim"] is False
        assert config["default.replication.factor"] == 3
        assert config["min.insync.replicas"] == 2
        assert config["offsets.topic.replication.factor"] == 3


def test_one_kafka_topic_per_architecture_topic(overlay: str) -> None:
    resources = rendered(overlay)
    data = by_kind(resources, "ConfigMap")["retention-config"]["data"]
    topics = {t["spec"]["topicName"]: t for t in by_kind(resources, "KafkaTopic").values()}
    specs = {spec.name: spec for spec in Topics.with_prefix(data["RETENTION_TOPIC_PREFIX"]).specs()}
    assert set(topics) == set(specs)
    pool = next(iter(by_kind(resources, "KafkaNodePool").values()))
    for name, topic in topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "retention"
        assert topic["spec"]["partitions"] == int(data["RETENTION_TOPIC_PARTITIONS"])
        assert topic["spec"]["replicas"] == int(data["RETENTION_TOPIC_REPLICATION_FACTOR"])
        assert topic["spec"]["replicas"] <= pool["spec"]["replicas"]
        # Each topic's configs are the declaration's (retention_shared.topics.TOPICS).
        configs = {key: str(value) for key, value in topic["spec"]["config"].items()}
        assert configs == specs[name].configs, name
    assert topics["transactions"]["spec"]["config"]["retention.ms"] == -1, "replay needs history"


def test_replicas_per_overlay(overlay: str) -> None:
    replicas = {name: w["spec"]["replicas"] for name, w in workloads(overlay).items()}
    hpas = by_kind(rendered(overlay), "HorizontalPodAutoscaler")
    for single in ("trainer", WEBHOOKS):  # one ReadWriteOnce volume each
        assert replicas[single] == 1
        assert workloads(overlay)[single]["spec"]["strategy"] == {"type": "Recreate"}
    if overlay == "dev":
        assert set(replicas.values()) == {1}
        assert all(h["spec"]["minReplicas"] == 1 for h in hpas.values())
    else:
        assert all(replicas[name] >= 3 for name in ("ingest", "scoring", "features"))
        assert replicas[CONSOLE] >= 2, "one pod going away must not take the console down"
        assert all(h["spec"]["minReplicas"] >= 3 for h in hpas.values())


def test_service_monitors_scrape_every_service(overlay: str) -> None:
    monitors = by_kind(rendered(overlay), "ServiceMonitor")
    services = by_kind(rendered(overlay), "Service")
    assert set(monitors) == set(SERVICES)
    for name, monitor in monitors.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= services[name]["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"] == [
            {
                "port": "http",
                "path": "/metrics",
                "honorLabels": True,
                "interval": "15s",
                "scrapeTimeout": "10s",
            }
        ]


def test_prometheus_rule_carries_the_compose_alert_rules(overlay: str) -> None:
    (rule,) = by_kind(rendered(overlay), "PrometheusRule").values()
    compose_rules = load_yaml(REPO / "deploy" / "prometheus" / "alerts.yml")
    assert rule["spec"]["groups"] == compose_rules["groups"]
