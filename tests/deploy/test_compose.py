"""docker-compose.yml: valid against the Compose Specification, and wired the way the platform
needs (KRaft Kafka, topics, the four services, the console, MinIO, Prometheus, Grafana, secrets
from .env)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from retention_shared.topics import Topics
from tests.deploy.support import BACKENDS, CONSOLE, REPO, SCHEMAS, SERVICES, WEBHOOKS, load_yaml

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def test_compose_file_matches_the_compose_specification(compose: dict) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_schema_rejects_a_misspelled_key(compose: dict) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = {**compose, "services": {**compose["services"], "x": {"image": "a", "helthcheck": {}}}}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_kafka_runs_in_kraft_mode_and_topic_init_creates_every_topic(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in json.dumps(compose).lower()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"

    init = compose["services"]["topic-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = init["entrypoint"][-1]
    # `create <topic> [--config key=value]...`: every declared topic, with the declaration's configs.
    created = {
        line.split()[1]: dict(re.findall(r"--config (\S+)=(\S+)", line))
        for line in script.splitlines()
        if line.strip().startswith("create ")
    }
    assert created == {spec.name: spec.configs for spec in Topics.with_prefix("").specs()}
    assert created["customer-features"] == {"cleanup.policy": "compact"}
    assert created["transactions"] == {"retention.ms": "-1"}, "replay needs history"
    assert "--partitions" in script and init["environment"]["PARTITIONS"].endswith(":-6}")


def test_every_service_builds_from_the_dockerfile_and_runs_locked_down(compose: dict) -> None:
    for name, port in SERVICES.items():
        service = compose["services"][name]
        assert service["build"] == {
            "context": ".",
            "dockerfile": "deploy/Dockerfile",
            "args": {"SERVICE": name},
        }
        assert (REPO / service["build"]["dockerfile"]).is_file()
        assert service["image"] == f"retention-{name}:${{RETENTION_IMAGE_TAG:-dev}}"
        env = service["environment"]
        assert env["RETENTION_BIND_HOST"] == "0.0.0.0"
        assert env[f"RETENTION_{name.upper()}_PORT"] == str(port)
        assert f"{port}:{port}" in service["ports"]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["user"] == "10001:10001"
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
        assert service["deploy"]["resources"]["limits"]["memory"]


def test_the_broker_services_get_the_broker_and_the_secrets_from_env(compose: dict) -> None:
    for name in (*BACKENDS, WEBHOOKS):
        service = compose["services"][name]
        env = service["environment"]
        assert env["RETENTION_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
        assert env["RETENTION_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["env_file"] == [{"path": ".env", "required": True}]
        assert service["tmpfs"] == ["/tmp"]
        assert service["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        # Infrastructure secrets and the console's in .env are blanked for the services.
        assert env["MINIO_ROOT_PASSWORD"] == "" and env["GF_SECURITY_ADMIN_PASSWORD"] == ""
        assert env["RETENTION_CONSOLE_SESSION_SECRET"] == ""


def test_the_console_reaches_the_services_by_name_with_only_its_own_secret(compose: dict) -> None:
    console = compose["services"][CONSOLE]
    env = console["environment"]
    for name, port in BACKENDS.items():
        assert env[f"RETENTION_CONSOLE_{name.upper()}_URL"] == f"http://{name}:{port}"
        # Started once the services answer, but also when one does not: it reports outages.
        assert console["depends_on"][name] == {"condition": "service_healthy", "required": False}
    assert set(console["depends_on"]) == set(BACKENDS), "no broker, no topics, no bucket"
    # No env_file: the console never holds API keys or S3 credentials; users bring their key.
    assert "env_file" not in console
    assert not any(key.startswith(("RETENTION_KAFKA", "AWS_", "RETENTION_API_KEYS")) for key in env)
    assert env["RETENTION_CONSOLE_SESSION_SECRET"].startswith(
        "${RETENTION_CONSOLE_SESSION_SECRET:?"
    )
    assert env["RETENTION_CONSOLE_COOKIE_SECURE"] == "${RETENTION_CONSOLE_COOKIE_SECURE:-false}"
    # Staged uploads go to a volume on disk, not to a tmpfs counted as memory.
    assert console["volumes"] == ["console-tmp:/tmp"] and "tmpfs" not in console


def test_state_lives_in_named_volumes(compose: dict) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, source
            else:
                assert (REPO / source).exists(), source
    assert "features-state:/data" in services["features"]["volumes"]
    assert "trainer-data:/data" in services["trainer"]["volumes"]
    assert "models:/data/bentoml" in services["trainer"]["volumes"]
    assert "models:/data/bentoml" in services["scoring"]["volumes"]
    assert services[WEBHOOKS]["volumes"] == ["webhooks-data:/data"], "secrets and log kept"


def test_trainer_uses_minio_for_the_lake(compose: dict) -> None:
    trainer = compose["services"]["trainer"]
    assert trainer["environment"]["RETENTION_LAKE_URL"].startswith("s3://")
    assert trainer["environment"]["RETENTION_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert trainer["depends_on"]["bucket-init"]["condition"] == "service_completed_successfully"
    assert (
        compose["services"]["bucket-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    )


def test_every_dependency_exists_and_waits_on_a_real_condition(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency] or dependency in SERVICES
            if condition["condition"] == "service_completed_successfully":
                assert services[dependency]["restart"] == "no"
        long_running = service.get("restart") != "no"
        if long_running:
            assert "healthcheck" in service, name


def test_prometheus_and_grafana_are_provisioned(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in prometheus["volumes"]
    )
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    grafana = compose["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]


def test_secrets_come_from_a_git_ignored_env_file_with_a_committed_example(compose: dict) -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    example_vars = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert "RETENTION_API_KEYS" in example_vars
    text = COMPOSE.read_text()
    # Every interpolated variable without a default must be in .env.example.
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required and required <= example_vars, required - example_vars
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    assert interpolated <= example_vars, interpolated - example_vars
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "PASSWORD" in line or "SECRET" in line or line.startswith("RETENTION_API_KEYS"):
            assert "CHANGE-ME" in line, line
