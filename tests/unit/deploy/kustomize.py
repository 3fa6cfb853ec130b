"""The part of ``kustomize build`` that deploy/kubernetes uses, to render it in a test:
``resources`` (files and directories), ``patches`` (one strategic-merge patch per file,
found by kind and name), ``replicas``, ``images`` and ``namespace``. Any other field of a
kustomization is refused, so the manifests cannot outgrow what the tests render."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Final

from .support import load_all, load_yaml

SUPPORTED: Final = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "patches", "replicas", "images"}
)
# Kubernetes' patch merge keys for the lists we patch; every other list is replaced whole.
MERGE_KEYS: Final = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
SCALABLE: Final = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
CLUSTER_SCOPED: Final = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})


class KustomizeError(Exception):
    pass


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # a container's ports merge by containerPort, a Service's by port
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``base`` as ``kubectl patch --type strategic`` would, for maps,
    lists with a merge key, and everything else replaced (``null`` deletes a key)."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(str(k).startswith("$") for k in patch):
            raise KustomizeError(f"patch directives are not supported: {sorted(patch)}")
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(base, list):
        key = _merge_key(field, base + patch)
        if key is None:
            return copy.deepcopy(patch)
        merged_list = list(base)
        for item in patch:
            at = [i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)]
            if at:
                merged_list[at[0]] = strategic_merge(merged_list[at[0]], item, field)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _only(objects: list[dict[str, Any]], kind: str, name: str, kinds: frozenset[str]) -> int:
    found = [
        i
        for i, o in enumerate(objects)
        if o["kind"] in kinds | {kind} and o["metadata"]["name"] == name
    ]
    if len(found) != 1:
        raise KustomizeError(f"{kind}/{name}: {len(found)} objects match, not one")
    return found[0]


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    template = obj.get("spec", {}).get("template", {})
    return [template["spec"]] if "spec" in template else []


def _set_image(image: str, rule: dict[str, str]) -> str:
    name = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
    if name != rule["name"]:
        return image
    return f"{rule.get('newName', name)}:{rule['newTag']}" if "newTag" in rule else image


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` prints, in the order of ``resources``."""
    kustomization = load_yaml(directory / "kustomization.yaml")
    if unknown := set(kustomization) - SUPPORTED:
        raise KustomizeError(f"{directory}: fields the test cannot render: {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects.extend(build(path) if path.is_dir() else load_all(path))
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"only patches by path are supported: {patch}")
        documents = load_all(directory / patch["path"])
        if len(documents) != 1:
            raise KustomizeError(f"{patch['path']}: one patch per file (kustomize's rule)")
        (document,) = documents
        at = _only(objects, document["kind"], document["metadata"]["name"], frozenset())
        objects[at] = strategic_merge(objects[at], document)
    for rule in kustomization.get("replicas", []):
        at = _only(objects, "", rule["name"], SCALABLE)
        objects[at]["spec"]["replicas"] = rule["count"]
    for rule in kustomization.get("images", []):
        for obj in objects:
            for spec in _pod_specs(obj):
                for container in spec.get("containers", []) + spec.get("initContainers", []):
                    container["image"] = _set_image(container["image"], rule)
    if namespace := kustomization.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects
