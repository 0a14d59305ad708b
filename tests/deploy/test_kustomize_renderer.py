"""The Python kustomize renderer does what `kustomize build` does for the features we use."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.kustomize import KustomizeError, build

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "web",
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {"limits": {"cpu": "1"}},
                    },
                    {"name": "sidecar", "image": "registry.local:5000/side:1.0"},
                ]
            },
        },
    },
}
TOPIC = {
    "apiVersion": "kafka.strimzi.io/v1beta2",
    "kind": "KafkaTopic",
    "metadata": {"name": "t1"},
    "spec": {"partitions": 6, "replicas": 1, "config": {"a": 1}},
}


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        yaml.safe_dump_all(data, sort_keys=False)
        if isinstance(data, list) and data and isinstance(data[0], dict) and "kind" in data[0]
        else yaml.safe_dump(data, sort_keys=False)
    )
    path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(
        tmp_path / "base" / "app.yaml", [DEPLOYMENT, TOPIC, {**TOPIC, "metadata": {"name": "t2"}}]
    )
    write(
        tmp_path / "base" / "kustomization.yaml",
        {"resources": ["app.yaml"], "labels": [{"pairs": {"part-of": "x"}}]},
    )
    return tmp_path


def overlay(tree: Path, spec: dict, extra: dict[str, object] | None = None) -> list[dict]:
    write(tree / "overlay" / "kustomization.yaml", {"resources": ["../base"], **spec})
    for name, data in (extra or {}).items():
        write(tree / "overlay" / name, data)
    return build(tree / "overlay")


def test_namespace_labels_replicas_and_images(tree: Path) -> None:
    out = overlay(
        tree,
        {
            "namespace": "ns",
            "labels": [{"pairs": {"env": "dev"}, "includeTemplates": True}],
            "replicas": [{"name": "web", "count": 5}],
            "images": [
                {"name": "web", "newName": "reg/web", "newTag": "1.2"},
                {"name": "registry.local:5000/side", "newTag": "2.0"},
            ],
        },
    )
    web = next(r for r in out if r["kind"] == "Deployment")
    assert web["metadata"]["namespace"] == "ns"
    assert web["metadata"]["labels"] == {"app": "web", "part-of": "x", "env": "dev"}
    assert web["spec"]["template"]["metadata"]["labels"] == {"app": "web", "env": "dev"}
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}  # selectors untouched
    assert web["spec"]["replicas"] == 5
    images = [c["image"] for c in web["spec"]["template"]["spec"]["containers"]]
    assert images == ["reg/web:1.2", "registry.local:5000/side:2.0"]


def test_strategic_merge_uses_merge_keys_for_builtin_kinds(tree: Path) -> None:
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"name": "B", "value": "2"}],
                            "resources": {"limits": {"memory": "1Gi"}},
                        }
                    ]
                }
            }
        },
    }
    out = overlay(tree, {"patches": [{"path": "p.yaml"}]}, {"p.yaml": patch})
    containers = next(r for r in out if r["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers[0]["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert containers[0]["image"] == "web"


def test_json6902_with_target_applies_to_every_match(tree: Path) -> None:
    ops = "- op: replace\n  path: /spec/replicas\n  value: 3\n- op: add\n  path: /spec/config/b\n  value: 2\n"
    out = overlay(tree, {"patches": [{"target": {"kind": "KafkaTopic"}, "patch": ops}]})
    topics = [r for r in out if r["kind"] == "KafkaTopic"]
    assert [t["spec"]["replicas"] for t in topics] == [3, 3]
    assert topics[0]["spec"]["config"] == {"a": 1, "b": 2}


def test_merge_patch_on_custom_resource_replaces_lists_and_null_deletes(tree: Path) -> None:
    patch = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": "t1"},
        "spec": {"config": {"a": None, "c": [1]}},
    }
    out = overlay(tree, {"patches": [{"path": "p.yaml"}]}, {"p.yaml": patch})
    assert next(r for r in out if r["metadata"]["name"] == "t1")["spec"]["config"] == {"c": [1]}


def test_unsupported_fields_and_missing_targets_fail_loudly(tree: Path) -> None:
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        overlay(tree, {"configMapGenerator": [{"name": "x"}]})
    with pytest.raises(KustomizeError, match="matches no resource"):
        overlay(
            tree, {"patches": [{"target": {"kind": "Nope"}, "patch": "- op: remove\n  path: /a\n"}]}
        )
    with pytest.raises(KustomizeError, match="no workload"):
        overlay(tree, {"replicas": [{"name": "ghost", "count": 1}]})
