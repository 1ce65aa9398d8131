"""A small kustomize-style renderer for the tests: just the features deploy/ uses.

Supported kustomization keys: ``resources`` (files and directories of other kustomizations),
``configMapGenerator`` (``files`` with optional ``key=path``, ``literals``, ``behavior`` create / replace /
merge), ``labels`` (``pairs``, ``includeTemplates``; ``includeSelectors: true`` is refused), ``patches``
(strategic merge from ``path``, with an optional ``target`` of kind / name), ``images`` (``name``,
``newName``, ``newTag``), ``namePrefix``. Any other key is an error, so the renderer never silently skips
something ``kubectl apply -k`` would do.

As in kustomize, a kustomization's transformers (labels, patches, images, namePrefix) apply to every
resource it gathers, its bases' included; generated ConfigMaps get a content-hash name suffix at the end and
every reference to them (volumes, ``configMapKeyRef``, ``configMapRef``, projected sources) is rewritten. Files
must lie in or below the kustomization's directory (kustomize's default load restrictor); directories may be
anywhere (``../../base``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "labels", "patches", "images", "namePrefix"}
GENERATED = "__generated__"  # marker on generated ConfigMaps until the name suffix is applied

# Strategic-merge keys of the lists deploy/ patches (from the Kubernetes API's patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class KustomizeError(Exception):
    pass


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _file(root: Path, rel: str) -> Path:
    p = root / rel
    if not _inside(root, p):
        raise KustomizeError(f"{root}: {rel} is not in or below the kustomization directory")
    if not p.is_file():
        raise KustomizeError(f"{root}: no file {rel}")
    return p


def kustomization(root: Path) -> dict[str, Any]:
    path = root / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{root}: no kustomization.yaml")
    with path.open() as f:
        k = yaml.safe_load(f) or {}
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{path}: keys not supported by this renderer: {sorted(unknown)}")
    return dict(k)


def build(root: Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``root`` like ``kustomize build``."""
    objs = _render(root)
    renames: dict[str, str] = {}
    for obj in objs:
        if obj.pop(GENERATED, False):
            name = obj["metadata"]["name"]
            digest = hashlib.sha256(
                json.dumps({"kind": obj["kind"], "name": name, "data": obj.get("data", {})}, sort_keys=True).encode()
            ).hexdigest()[:10]
            renames[name] = f"{name}-{digest}"
            obj["metadata"]["name"] = renames[name]
    for obj in objs:
        for pod in pod_specs(obj):
            _rename_configmap_refs(pod, renames)
    return objs


def _render(root: Path) -> list[dict[str, Any]]:
    k = kustomization(root)
    objs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        p = root / res
        if p.is_dir():
            objs += _render(p)
        else:
            objs += [copy.deepcopy(d) for d in load_docs(_file(root, res))]
    for gen in k.get("configMapGenerator", []):
        _generate(root, gen, objs)
    prefix = k.get("namePrefix", "")
    if prefix:
        for obj in objs:
            obj["metadata"]["name"] = prefix + obj["metadata"]["name"]
    for spec in k.get("labels", []):
        _labels(spec, objs)
    for patch in k.get("patches", []):
        _patch(root, patch, objs)
    for image in k.get("images", []):
        _images(image, objs)
    _check_unique(root, objs)
    return objs


def _generate(root: Path, gen: dict[str, Any], objs: list[dict[str, Any]]) -> None:
    name = gen["name"]
    data: dict[str, str] = {}
    for entry in gen.get("files", []):
        key, _, rel = entry.rpartition("=")
        path = _file(root, rel)
        data[key or path.name] = path.read_text()
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    behavior = gen.get("behavior", "create")
    existing = [o for o in objs if o.get(GENERATED) and o["metadata"]["name"] == name]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{root}: configMapGenerator {name} already exists (use behavior: replace/merge)")
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data,
                     GENERATED: True})
    elif behavior in ("replace", "merge"):
        if len(existing) != 1:
            raise KustomizeError(f"{root}: configMapGenerator {name} with behavior {behavior} has no base to change")
        cm = existing[0]
        cm["data"] = data if behavior == "replace" else {**cm.get("data", {}), **data}
    else:
        raise KustomizeError(f"{root}: unknown behavior {behavior!r}")


def _labels(spec: dict[str, Any], objs: list[dict[str, Any]]) -> None:
    if spec.get("includeSelectors"):
        raise KustomizeError("labels.includeSelectors: true is not supported (selectors are immutable: "
                             "keep them explicit)")
    pairs = {str(k): str(v) for k, v in spec["pairs"].items()}
    for obj in objs:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        template = obj.get("spec", {}).get("template") if spec.get("includeTemplates") else None
        if isinstance(template, dict):
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _patch(root: Path, patch: dict[str, Any], objs: list[dict[str, Any]]) -> None:
    if "path" not in patch or set(patch) - {"path", "target"}:
        raise KustomizeError(f"{root}: only patches with path (and target) are supported: {patch}")
    docs = load_docs(_file(root, patch["path"]))
    for doc in docs:
        target = patch.get("target") or {"kind": doc["kind"], "name": doc["metadata"]["name"]}
        if set(target) - {"kind", "name"}:
            raise KustomizeError(f"{root}: patch target supports kind and name only: {target}")
        hits = [i for i, o in enumerate(objs) if all(
            (o["kind"] if key == "kind" else o["metadata"]["name"]) == value for key, value in target.items())]
        if not hits:
            raise KustomizeError(f"{root}: patch {patch['path']} matches no resource ({target})")
        for i in hits:
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
            body["metadata"] = {k: v for k, v in doc.get("metadata", {}).items() if k != "name"}
            objs[i] = strategic_merge(objs[i], body)


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge of ``patch`` into ``base``: maps merge, a null deletes, lists named in
    :data:`MERGE_KEYS` merge by their key, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    merge_key = MERGE_KEYS.get(key)
    if merge_key and isinstance(base, list) and isinstance(patch, list):
        out_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = next((j for j, b in enumerate(out_list) if b.get(merge_key) == item.get(merge_key)), None)
            if match is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[match] = strategic_merge(out_list[match], item)
        return out_list
    return copy.deepcopy(patch)


def _images(image: dict[str, Any], objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        for pod in pod_specs(obj):
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                ref = c.get("image", "")
                name, sep, tag = ref.rpartition(":")
                if not sep or "/" in tag:
                    name, tag = ref, ""
                if name != image["name"]:
                    continue
                c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}".rstrip(":")


def _check_unique(root: Path, objs: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in objs:
        ident = (obj["kind"], obj["metadata"]["name"])
        if ident in seen:
            raise KustomizeError(f"{root}: {ident} appears twice")
        seen.add(ident)


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec of a workload (Deployment, DaemonSet, StatefulSet, Job), or none."""
    spec = obj.get("spec", {})
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return [template["spec"]]
    return []


def _rename_configmap_refs(pod: dict[str, Any], renames: dict[str, str]) -> None:
    def fix(ref: dict[str, Any] | None) -> None:
        if ref and ref.get("name") in renames:
            ref["name"] = renames[ref["name"]]

    for vol in pod.get("volumes", []):
        fix(vol.get("configMap"))
        for src in vol.get("projected", {}).get("sources", []):
            fix(src.get("configMap"))
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for env in c.get("env", []):
            fix(env.get("valueFrom", {}).get("configMapKeyRef"))
        for env_from in c.get("envFrom", []):
            fix(env_from.get("configMapRef"))
