"""The AsyncAPI 3.0 document of every topic, generated from the one declaration (`topics.TOPICS`)
and the event models (`events`): `uv run python -m retention_shared.asyncapi > docs/asyncapi.yaml`.

FastStream's generator describes one application's own subscribers and publishers; this document
describes the whole system (every service's sends and receives, the parties outside it, keys and
topic configs), so it is written here, from the declaration, and never by hand.
"""

from __future__ import annotations

import json
import re
import sys
from importlib.metadata import version
from typing import Any

from pydantic.json_schema import models_json_schema

from retention_shared.topics import EXTERNAL, SERVICES, TOPICS, MessageKey, TopicDeclaration

__all__ = ["document", "render", "topics_table"]

KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/"

DESCRIPTION = """\
Every topic of Retention, its key, the events it carries and who sends and receives them.
Values are JSON of the versioned event models in `retention_shared.events`: each carries
`event_type` (one topic may carry several types) and `schema_version`, the major version of its
contract. A new optional field is a minor change that keeps the major; a consumer ignores fields
it does not know and rejects an unknown major. Topic names take the configurable prefix
`RETENTION_TOPIC_PREFIX` (none by default). Generated from `retention_shared.topics.TOPICS`:
`uv run python -m retention_shared.asyncapi > docs/asyncapi.yaml`.
"""


def _message_name(topic: TopicDeclaration) -> list[str]:
    if topic.events:
        return [event.__name__ for event in topic.events]
    assert topic.raw_schema is not None, f"{topic.name} declares neither events nor a schema"
    return [topic.raw_schema["title"]]


def _key_schema(key: MessageKey) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": f"{key.name}: {key.description}"}
    if key.pattern is not None:
        schema["pattern"] = key.pattern
    return schema


def _headers(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(headers),
        "properties": {
            name: {"type": "string", "description": text} for name, text in headers.items()
        },
    }


def _summary(doc: str | None) -> str:
    """The first sentence of a model's docstring, on one line."""
    text = " ".join((doc or "").split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""


def _schemas() -> dict[str, Any]:
    """Every event's JSON Schema (and the models they nest), referenced from the messages."""
    models = [event for topic in TOPICS for event in topic.events]
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=SCHEMAS + "{model}"
    )
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    for topic in TOPICS:
        if topic.raw_schema is not None:
            schemas[topic.raw_schema["title"]] = topic.raw_schema
    return schemas


def _channel(topic: TopicDeclaration) -> dict[str, Any]:
    description = topic.description
    if topic.tombstone:
        description += f" A record with a null value (a tombstone) is written {topic.tombstone}."
    configuration: dict[str, Any] = {
        "cleanup.policy": ["compact"] if topic.compacted else ["delete"]
    }
    if topic.retention_ms is not None:
        configuration["retention.ms"] = topic.retention_ms
    return {
        "address": topic.name,
        "title": topic.name,
        "description": description,
        "messages": {
            name: {"$ref": f"#/components/messages/{name}"} for name in _message_name(topic)
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "topicConfiguration": configuration,
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "x-key": topic.key.name,
        "x-producers": list(topic.producers),
        "x-consumers": list(topic.consumers),
    }


def _messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        for name in _message_name(topic):
            assert name not in messages, f"{name} is declared on two topics; keys are per message"
            model = next((e for e in topic.events if e.__name__ == name), None)
            if model is not None:
                summary = _summary(model.__doc__)
            else:
                assert topic.raw_schema is not None, (
                    f"{topic.name} declares neither events nor a schema"
                )
                summary = topic.raw_schema["description"]
            messages[name] = {
                "name": name,
                "title": name,
                "summary": summary,
                "contentType": "application/json",
                **({"headers": _headers(topic.headers)} if topic.headers else {}),
                "payload": {"$ref": SCHEMAS + name},
                "bindings": {
                    "kafka": {"key": _key_schema(topic.key), "bindingVersion": KAFKA_BINDING}
                },
            }
    return messages


def _operations() -> dict[str, Any]:
    """One send and one receive operation per party and topic, services first."""
    parties = [*SERVICES, *EXTERNAL]
    operations: dict[str, Any] = {}
    for party in parties:
        for topic in TOPICS:
            for action, names in (("send", topic.producers), ("receive", topic.consumers)):
                if party not in names:
                    continue
                operations[f"{party}.{action}.{topic.name}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{topic.name}"},
                    "title": f"{party} {action}s {topic.name}",
                    "messages": [
                        {"$ref": f"#/channels/{topic.name}/messages/{name}"}
                        for name in _message_name(topic)
                    ],
                    "tags": [
                        {"name": party},
                        {"name": "service" if party in SERVICES else "external"},
                    ],
                }
    return operations


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a JSON-able dict."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Retention events",
            "version": version("retention-shared"),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0"},
            "tags": [
                *({"name": name} for name in SERVICES),
                *({"name": name, "description": text} for name, text in EXTERNAL.items()),
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": (
                    "The embedded broker (Tansu) of `retention up`, the demo and the tests; "
                    "RETENTION_KAFKA_BOOTSTRAP moves it."
                ),
            },
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": (
                    "Apache Kafka as docker-compose runs it (from the host: localhost:29092); "
                    "on Kubernetes, Strimzi's retention-kafka-bootstrap:9092."
                ),
            },
        },
        "channels": {topic.name: _channel(topic) for topic in TOPICS},
        "operations": _operations(),
        "components": {"schemas": _schemas(), "messages": _messages()},
    }


# --- YAML -------------------------------------------------------------------------------------
# A JSON document written as block YAML: strings as JSON strings (a subset of YAML's double-quoted
# scalars), so no YAML library is needed to write it and every reader parses it the same way.

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_.$/\-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _key(key: str) -> str:
    plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS
    return key if plain else json.dumps(key)


def _scalar(value: Any) -> str:
    return json.dumps(value)  # \uXXXX for anything outside ASCII: YAML reads it, and no
    # unprintable character (ID_PATTERN lists them) reaches the file raw


def _lines(value: Any, indent: str) -> list[str]:
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{indent}{_key(key)}:")
                lines.extend(_lines(item, indent + "  "))
            else:
                lines.append(f"{indent}{_key(key)}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict | list) and item:
                first, *rest = _lines(item, indent + "  ")
                lines.append(f"{indent}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{indent}- {_scalar(item)}")
    return lines


def render(doc: dict[str, Any]) -> str:
    header = "# Generated by `uv run python -m retention_shared.asyncapi`; do not edit by hand.\n"
    return header + "\n".join(_lines(doc, "")) + "\n"


# --- Markdown ---------------------------------------------------------------------------------


def topics_table() -> str:
    """The topics as a Markdown table, for README and docs/architecture.md (a test keeps the
    copies there equal to this)."""
    rows = [
        "| topic | key | value | producers → consumers |",
        "| --- | --- | --- | --- |",
    ]
    for topic in TOPICS:
        name = f"`{topic.name}`" + (" (compacted)" if topic.compacted else "")
        value = " / ".join(f"`{n}`" for n in _message_name(topic))
        if topic.headers:
            value += ", header " + ", ".join(f"`{h}`" for h in topic.headers)
        flow = f"{', '.join(topic.producers)} → {', '.join(topic.consumers) or '—'}"
        rows.append(f"| {name} | `{topic.key.name}` | {value} | {flow} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    sys.stdout.write(render(document()))


if __name__ == "__main__":
    main()
