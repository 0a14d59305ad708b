"""A small Python renderer for the subset of kustomize that deploy/k8s uses.

The `kustomize` binary cannot be installed where the tests run, so this module builds a
kustomization the way `kustomize build` does for these features, and refuses any other field
(so an overlay that starts using, say, `configMapGenerator` fails loudly instead of rendering
something kustomize would not):

- `resources`: files (multi-document YAML) and directories holding a `kustomization.yaml`,
  built recursively, in order;
- `patches`: strategic-merge patches (from `path` or inline `patch`, matched by the patch's own
  kind/name or by `target`) and JSON 6902 patches (a list of operations, with `target`);
  `target` may select by `group`, `version`, `kind`, `name` (regex) and `labelSelector`;
- `namespace`: set on every namespaced resource;
- `labels` (`pairs`, `includeTemplates`; `includeSelectors: false` only) and `commonLabels` is
  refused (it would also rewrite selectors);
- `replicas` (`name`, `count`) for Deployment, StatefulSet, ReplicaSet;
- `images` (`name`, `newName`, `newTag`, `digest`) in pod-template containers and init containers.

Transformers run in kustomize's order: patches, namespace, labels, replicas, images.
Strategic merge follows Kubernetes' merge keys for the lists used in pod specs (containers and
init containers by `name`, `env` and `volumes` by `name`, `volumeMounts` by `mountPath`,
container `ports` by `containerPort`); other lists are replaced; `null` deletes a key. Custom
resources get a JSON merge patch (lists replaced), as kustomize does without an OpenAPI schema.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "patches"}
SUPPORTED_FIELDS |= {"replicas", "images"}

CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
}
REPLICA_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


class KustomizeError(ValueError):
    pass


def group_of(resource: Resource) -> str:
    api_version = resource.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


def resource_id(resource: Resource) -> tuple[str, str, str, str]:
    meta = resource.get("metadata", {})
    return (group_of(resource), resource["kind"], meta.get("namespace", ""), meta["name"])


def load_yaml_documents(path: Path) -> list[Resource]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def build(directory: Path) -> list[Resource]:
    """Render the kustomization in `directory` like `kustomize build directory`."""
    directory = Path(directory)
    kustomization_file = directory / "kustomization.yaml"
    if not kustomization_file.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    spec = yaml.safe_load(kustomization_file.read_text(encoding="utf-8")) or {}
    unsupported = set(spec) - SUPPORTED_FIELDS
    if unsupported:
        raise KustomizeError(
            f"{kustomization_file}: fields not implemented by this renderer: {sorted(unsupported)}"
        )

    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(build(path) if path.is_dir() else load_yaml_documents(path))
    _check_unique(resources, kustomization_file)

    for patch in spec.get("patches", []):
        _apply_patch_entry(resources, patch, directory)
    if "namespace" in spec:
        _set_namespace(resources, spec["namespace"])
    for label_spec in spec.get("labels", []):
        _add_labels(resources, label_spec)
    for replica in spec.get("replicas", []):
        _set_replicas(resources, replica)
    for image in spec.get("images", []):
        _set_image(resources, image)
    _check_unique(resources, kustomization_file)
    return resources


def _check_unique(resources: list[Resource], where: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for resource in resources:
        rid = resource_id(resource)
        if rid in seen:
            raise KustomizeError(f"{where}: duplicate resource {rid}")
        seen.add(rid)


# --- patches ----------------------------------------------------------------------------------


def _apply_patch_entry(resources: list[Resource], entry: dict[str, Any], directory: Path) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"patch fields not implemented: {sorted(unknown)}")
    if "path" in entry:
        text = (directory / entry["path"]).read_text(encoding="utf-8")
    elif "patch" in entry:
        text = entry["patch"]
    else:
        raise KustomizeError("a patch needs `path` or `patch`")
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    target = entry.get("target")

    if len(documents) == 1 and isinstance(documents[0], list):
        if target is None:
            raise KustomizeError("a JSON 6902 patch needs a target")
        matched = _select(resources, target)
        for resource in matched:
            apply_json6902(resource, documents[0])
        return

    for document in documents:
        if not isinstance(document, dict):
            raise KustomizeError(f"not a strategic-merge patch: {document!r}")
        if target is not None:
            matched = _select(resources, target)
        else:
            matched = [
                r
                for r in resources
                if r["kind"] == document["kind"]
                and group_of(r) == group_of(document)
                and r["metadata"]["name"] == document["metadata"]["name"]
            ]
            if not matched:
                raise KustomizeError(
                    f"patch target {document['kind']}/{document['metadata']['name']} not found"
                )
        for resource in matched:
            patch = copy.deepcopy(document)
            if target is not None:
                patch.pop("metadata", None)
            merged = strategic_merge(resource, patch, builtin=group_of(resource) in BUILTIN_GROUPS)
            resource.clear()
            resource.update(merged)


def _select(resources: list[Resource], target: dict[str, Any]) -> list[Resource]:
    unknown = set(target) - {"group", "version", "kind", "name", "labelSelector"}
    if unknown:
        raise KustomizeError(f"patch target fields not implemented: {sorted(unknown)}")
    matched = []
    for resource in resources:
        if "group" in target and group_of(resource) != target["group"]:
            continue
        if "version" in target and resource["apiVersion"].split("/")[-1] != target["version"]:
            continue
        if "kind" in target and resource["kind"] != target["kind"]:
            continue
        if "name" in target and not re.fullmatch(target["name"], resource["metadata"]["name"]):
            continue
        if "labelSelector" in target:
            labels = resource["metadata"].get("labels", {})
            wanted = dict(part.split("=", 1) for part in target["labelSelector"].split(","))
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
        matched.append(resource)
    if not matched:
        raise KustomizeError(f"patch target {target} matches no resource")
    return matched


def strategic_merge(base: Any, patch: Any, *, builtin: bool, field: str = "") -> Any:
    """Merge `patch` into `base` (both plain YAML data); returns a new object."""
    if isinstance(patch, dict) and "$patch" in patch:
        raise KustomizeError("$patch directives are not implemented")
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, builtin=builtin, field=key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if builtin and isinstance(base, list) and isinstance(patch, list):
        key = _merge_key(field, base + patch)
        if key is not None:
            merged_list = copy.deepcopy(base)
            for item in patch:
                for index, existing in enumerate(merged_list):
                    if existing.get(key) == item.get(key):
                        merged_list[index] = strategic_merge(existing, item, builtin=builtin)
                        break
                else:
                    merged_list.append(copy.deepcopy(item))
            return merged_list
    return copy.deepcopy(patch)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if field == "ports" and all("containerPort" in item for item in items):
        return "containerPort"
    key = MERGE_KEYS.get(field)
    if key and all(key in item for item in items):
        return key
    return None


def apply_json6902(resource: Resource, operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        op, path = operation["op"], operation["path"]
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]
        parent = resource
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op in ("add", "replace"):
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, value)
                else:
                    parent[index] = value
            else:
                if op == "replace" and last not in parent:
                    raise KustomizeError(f"replace of missing path {path}")
                parent[last] = value
        elif op == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif op == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != operation["value"]:
                raise KustomizeError(f"test failed at {path}")
        else:
            raise KustomizeError(f"JSON 6902 op {op!r} not implemented")


# --- transformers -----------------------------------------------------------------------------


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED_KINDS:
            resource.setdefault("metadata", {})["namespace"] = namespace


def _add_labels(resources: list[Resource], label_spec: dict[str, Any]) -> None:
    unknown = set(label_spec) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown or label_spec.get("includeSelectors", False):
        raise KustomizeError("labels: only `pairs` and `includeTemplates` are implemented")
    pairs = label_spec["pairs"]
    for resource in resources:
        resource.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if label_spec.get("includeTemplates", False):
            template = resource.get("spec", {}).get("template")
            if isinstance(template, dict):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_replicas(resources: list[Resource], replica: dict[str, Any]) -> None:
    matched = [
        r
        for r in resources
        if r["kind"] in REPLICA_KINDS and r["metadata"]["name"] == replica["name"]
    ]
    if not matched:
        raise KustomizeError(f"replicas: no workload named {replica['name']}")
    for resource in matched:
        resource["spec"]["replicas"] = replica["count"]


def pod_specs(resource: Resource) -> list[dict[str, Any]]:
    """The pod specs inside a workload (template, or a CronJob's job template)."""
    spec = resource.get("spec", {})
    found = []
    if isinstance(spec.get("template"), dict) and "spec" in spec["template"]:
        found.append(spec["template"]["spec"])
    job_template = spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    if "spec" in job_template:
        found.append(job_template["spec"])
    return found


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def _set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    for resource in resources:
        for pod_spec in pod_specs(resource):
            for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
                current = container.get("image", "")
                if _image_name(current) != image["name"]:
                    continue
                name = image.get("newName", image["name"])
                if "digest" in image:
                    container["image"] = f"{name}@{image['digest']}"
                elif "newTag" in image:
                    container["image"] = f"{name}:{image['newTag']}"
                else:
                    tag = current[len(_image_name(current)) :]
                    container["image"] = f"{name}{tag}"
