"""Generate ``devservers_sdk/localcluster/apiserver/builtin_schemas.json`` from the official ``kubernetes`` client.

The emulator needs the OpenAPI schemas of the built-in kinds it serves, for two things: the per-group
``/openapi/v3/...`` documents that kubectl reads, and ``fieldValidation=Strict`` (rejecting
``spec.containers[0].imagee``). The real server derives them from the Go types; the closest thing we can
read without Go is the Python client, whose models are generated from that same OpenAPI document: every
model carries ``openapi_types`` (attribute -> type expression), ``attribute_map`` (attribute -> JSON key)
and, being pydantic models, whether a field is required and its description.

What the models do not carry, and how we make up for it:

* The Go package of each type, which the real schema names use (``io.k8s.api.core.v1.PodSpec``).
  We take the package from the class prefix when there is one (``AdmissionregistrationV1ServiceReference``)
  and otherwise from the first API group, in a fixed order (autoscaling/v1, core, then the groups of
  ``BUILTIN_TYPES``), whose kinds reach the type;
  ``_META_TYPES`` pins the apimachinery types every group reaches. Only kubectl explain shows the names.
* ``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key`` / list types: the Go struct tags are
  not in the Python client, so ``_LIST_SEMANTICS`` restates them for the lists that strategic merge and
  server-side apply commonly touch. kubectl does not read them from us (the emulator's openapi documents
  do not advertise strategic merge patch, so kubectl falls back to its compiled-in Go types, which are
  exact); they are there for the emulator's own patch code.
* Quantity and IntOrString are ``str``/``object`` in the models; we publish them as the real server does
  (``x-kubernetes-int-or-string``) so the schemas accept both numbers and strings.

Only the kinds in ``BUILTIN_TYPES`` (and their lists) and the types they reach are emitted, plus the
apimachinery types the openapi documents refer to (Status, DeleteOptions) and autoscaling/v1 Scale.
Descriptions are kept for kinds and fields because they make ``kubectl explain`` useful; the file stays
well under the 1.5 MB budget.

Run from the repository root after upgrading the ``kubernetes`` client::

    .venv/bin/python tools/generate_builtin_schemas.py

``tests/localcluster/test_builtin_schemas_fresh.py`` fails when the committed file is stale.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "devservers_sdk" / "localcluster" / "apiserver" / "builtin_schemas.json"
REF_PREFIX = "#/components/schemas/"

_CLASS_NAME = re.compile(
    r"^(?P<prefix>[A-Z][a-z]+)?(?P<version>V\d+(?:alpha\d+|beta\d+)?)(?P<name>[A-Z]\w*)$"
)

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_TYPES = frozenset(
    {
        "ObjectMeta",
        "ListMeta",
        "OwnerReference",
        "ManagedFieldsEntry",
        "LabelSelector",
        "LabelSelectorRequirement",
        "Condition",
        "Status",
        "StatusDetails",
        "StatusCause",
        "DeleteOptions",
        "Preconditions",
        "FieldSelectorRequirement",
    }
)

# Class prefix (or API class stem) -> Go package, where it is not simply io.k8s.api.<lowercase>.
_PACKAGES = {
    "Core": "io.k8s.api.core",
    "RbacAuthorization": "io.k8s.api.rbac",
    "Rbac": "io.k8s.api.rbac",
    "Apiextensions": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
    "Apiregistration": "io.k8s.kube-aggregator.pkg.apis.apiregistration",
    "FlowcontrolApiserver": "io.k8s.api.flowcontrol",
}

# Kinds an API class does not return but whose group owns them: autoscaling/v1 Scale is served by the
# apps and core APIs as a subresource.
_EXTRA_GROUP_KINDS = {("Autoscaling", "v1"): ("V1Scale",)}

# (type, JSON field) -> extensions, restating the Go struct tags of the commonly merged lists.
_MERGE_BY_NAME = {
    "x-kubernetes-patch-strategy": "merge",
    "x-kubernetes-patch-merge-key": "name",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}
_MERGE_BY_TYPE = {
    "x-kubernetes-patch-strategy": "merge",
    "x-kubernetes-patch-merge-key": "type",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
_CONTAINER_LISTS = {
    "ports": {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "containerPort",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
    },
    "env": _MERGE_BY_NAME,
    "volumeMounts": {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "mountPath",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["mountPath"],
    },
    "volumeDevices": {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "devicePath",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["devicePath"],
    },
}
_LIST_SEMANTICS: dict[tuple[str, str], dict[str, Any]] = {
    ("ObjectMeta", "finalizers"): {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"},
    ("ObjectMeta", "ownerReferences"): {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "uid",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["uid"],
    },
    ("PodSpec", "containers"): _MERGE_BY_NAME,
    ("PodSpec", "initContainers"): _MERGE_BY_NAME,
    ("PodSpec", "ephemeralContainers"): _MERGE_BY_NAME,
    ("PodSpec", "imagePullSecrets"): _MERGE_BY_NAME,
    ("PodSpec", "schedulingGates"): _MERGE_BY_NAME,
    ("PodSpec", "volumes"): {**_MERGE_BY_NAME, "x-kubernetes-patch-strategy": "merge,retainKeys"},
    ("PodSpec", "resourceClaims"): {**_MERGE_BY_NAME, "x-kubernetes-patch-strategy": "merge,retainKeys"},
    ("PodSpec", "hostAliases"): {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "ip",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["ip"],
    },
    ("PodSpec", "topologySpreadConstraints"): {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "topologyKey",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
    },
    **{("Container", field): ext for field, ext in _CONTAINER_LISTS.items()},
    **{("EphemeralContainer", field): ext for field, ext in _CONTAINER_LISTS.items()},
    ("PodStatus", "conditions"): _MERGE_BY_TYPE,
    ("PodStatus", "podIPs"): {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "ip",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["ip"],
    },
    ("ServiceSpec", "ports"): {
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "port",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["port", "protocol"],
    },
    ("DeploymentSpec", "strategy"): {"x-kubernetes-patch-strategy": "retainKeys"},
    ("DeploymentStatus", "conditions"): _MERGE_BY_TYPE,
    ("ReplicaSetStatus", "conditions"): _MERGE_BY_TYPE,
    ("StatefulSetStatus", "conditions"): _MERGE_BY_TYPE,
    ("NamespaceStatus", "conditions"): _MERGE_BY_TYPE,
    ("NodeStatus", "conditions"): _MERGE_BY_TYPE,
    ("NodeStatus", "addresses"): _MERGE_BY_TYPE,
    ("PersistentVolumeClaimStatus", "conditions"): _MERGE_BY_TYPE,
    ("PodDisruptionBudgetStatus", "conditions"): _MERGE_BY_TYPE,
}

_INT_OR_STRING_NAME = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY_NAME = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = {"$ref": REF_PREFIX + _INT_OR_STRING_NAME}
_QUANTITY = {"$ref": REF_PREFIX + _QUANTITY_NAME}
# Fields the models type as plain ``object`` but whose Go type is IntOrString.
_INT_OR_STRING_FIELDS = frozenset(
    {
        ("HTTPGetAction", "port"),
        ("TCPSocketAction", "port"),
        ("ServicePort", "targetPort"),
        ("RollingUpdateDeployment", "maxUnavailable"),
        ("RollingUpdateDeployment", "maxSurge"),
        ("RollingUpdateStatefulSetStrategy", "maxUnavailable"),
        ("PodDisruptionBudgetSpec", "minAvailable"),
        ("PodDisruptionBudgetSpec", "maxUnavailable"),
        ("RollingUpdateDaemonSet", "maxUnavailable"),
        ("RollingUpdateDaemonSet", "maxSurge"),
    }
)
# Resource maps (requests, limits, capacity, hard, ...) hold Quantities, which the models type as str.
_QUANTITY_MAP_FIELDS = frozenset(
    {
        "requests",
        "limits",
        "capacity",
        "allocatable",
        "hard",
        "used",
        "overhead",
        "allocatedResources",
        "max",
        "min",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    }
)
_QUANTITY_FIELDS = frozenset({("EmptyDirVolumeSource", "sizeLimit"), ("ResourceFieldSelector", "divisor")})


def _models() -> Any:
    import kubernetes.client.models as models

    return models


def _client() -> Any:
    import kubernetes.client as client

    return client


def _api_stem(group: str) -> str:
    """``rbac.authorization.k8s.io`` -> ``RbacAuthorization``, the Python client's API class stem."""
    if not group:
        return "Core"
    return "".join(part.capitalize() for part in group.removesuffix(".k8s.io").split("."))


def _package(stem: str, version: str) -> str:
    base = _PACKAGES.get(stem, f"io.k8s.api.{stem.lower()}")
    return f"{base}.{version}"


@functools.cache
def _api_class_kinds(stem: str, version: str) -> tuple[str, ...]:
    """The model classes an API group's client class returns, in source order."""
    import inspect

    api_class = getattr(_client(), f"{stem}{version.capitalize()}Api", None)
    if api_class is None:
        return []
    found = re.findall(r"'20[01]': \"(\w+)\"", inspect.getsource(api_class))
    return tuple(dict.fromkeys(name for name in found if hasattr(_models(), name)))


def _class_for_kind(group: str, version: str, kind: str) -> str:
    stem = _api_stem(group)
    wanted = {f"{version.capitalize()}{kind}", f"{stem}{version.capitalize()}{kind}"}
    for name in _api_class_kinds(stem, version):
        if name in wanted:
            return name
    for name in sorted(wanted, key=len, reverse=True):
        if hasattr(_models(), name):
            return name
    raise LookupError(f"no model class for {group}/{version} {kind}")


def _referenced_classes(type_expr: str) -> list[str]:
    return [t for t in re.findall(r"\w+", type_expr) if _CLASS_NAME.match(t) and hasattr(_models(), t)]


class _Namer:
    """Assigns each model class its Go-style schema name (see the module docstring)."""

    def __init__(self, group_order: list[tuple[str, str]]) -> None:
        self.package_of: dict[str, str] = {}
        for stem, version in group_order:
            roots = _api_class_kinds(stem, version) + _EXTRA_GROUP_KINDS.get((stem, version), ())
            queue = deque((cls_name, _package(stem, version)) for cls_name in roots)
            while queue:
                cls_name, package = queue.popleft()
                if cls_name in self.package_of:
                    continue
                if _base_name(cls_name) in _META_TYPES:
                    # Whatever only apimachinery types reach (ListMeta's ShardInfo) is apimachinery too.
                    package = _META
                self.package_of[cls_name] = package
                for type_expr in getattr(getattr(_models(), cls_name), "openapi_types", {}).values():
                    queue.extend((child, package) for child in _referenced_classes(type_expr))

    def name(self, cls_name: str) -> str:
        match = _CLASS_NAME.match(cls_name)
        if match is None:
            raise ValueError(cls_name)
        base, version, prefix = match["name"], match["version"].lower(), match["prefix"]
        if prefix:
            return f"{_package(prefix, version)}.{base}"
        package = self.package_of.get(cls_name, _META if base in _META_TYPES else _package("Core", version))
        return f"{package}.{base}"


def _base_name(cls_name: str) -> str:
    match = _CLASS_NAME.match(cls_name)
    return match["name"] if match else cls_name


def _schema_for(type_expr: str, namer: _Namer, owner: str, field: str) -> dict[str, Any]:
    type_expr = type_expr.strip()
    if type_expr.startswith("List["):
        return {"type": "array", "items": _schema_for(type_expr[5:-1], namer, owner, "")}
    if type_expr.startswith("Dict[str, "):
        value = type_expr[len("Dict[str, ") : -1]
        if value == "str" and field in _QUANTITY_MAP_FIELDS:
            return {"type": "object", "additionalProperties": dict(_QUANTITY)}
        return {"type": "object", "additionalProperties": _schema_for(value, namer, owner, "")}
    scalar = {
        "str": {"type": "string"},
        "int": {"type": "integer", "format": "int64"},
        "float": {"type": "number", "format": "double"},
        "bool": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date"},
        "bytes": {"type": "string", "format": "byte"},
    }
    if type_expr in scalar:
        if type_expr == "str" and (owner, field) in _QUANTITY_FIELDS:
            return dict(_QUANTITY)
        return dict(scalar[type_expr])
    if type_expr == "object":
        if (owner, field) in _INT_OR_STRING_FIELDS:
            return dict(_INT_OR_STRING)
        # RawExtension / JSON: any value; unknown-field checks do not descend into it.
        return {"x-kubernetes-preserve-unknown-fields": True}
    return {"$ref": REF_PREFIX + namer.name(type_expr)}


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    text = doc.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in text.splitlines()).strip()


def _model_schema(cls_name: str, namer: _Namer) -> dict[str, Any]:
    cls = getattr(_models(), cls_name)
    base = _base_name(cls_name)
    properties: dict[str, Any] = {}
    required = []
    fields = getattr(cls, "model_fields", {})
    for attr, type_expr in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        prop = _schema_for(type_expr, namer, base, json_name)
        info = fields.get(attr)
        description = getattr(info, "description", None)
        if "$ref" in prop:
            # As in the real v3 documents: a sibling of $ref (the description) is ignored by OpenAPI 3.0.
            prop = {"allOf": [prop]}
        if description:
            prop["description"] = description
        prop.update(_LIST_SEMANTICS.get((base, json_name), {}))
        properties[json_name] = prop
        if info is not None and info.is_required():
            required.append(json_name)
    schema: dict[str, Any] = {"type": "object"}
    description = _first_paragraph(cls.__doc__)
    if description and not description.startswith("Attributes:"):
        schema["description"] = description
    schema["properties"] = properties
    if required:
        schema["required"] = sorted(required)
    return schema


def build() -> dict[str, Any]:
    """The document written to builtin_schemas.json (pure; the freshness test calls it too)."""
    sys.path.insert(0, str(REPO))
    from devservers_sdk.localcluster.apiserver.resources import BUILTIN_TYPES

    # autoscaling/v1 goes before core, which also returns Scale (for replicationcontrollers/scale) but
    # whose own types autoscaling/v1 never reaches.
    order: list[tuple[str, str]] = [("Autoscaling", "v1"), ("Core", "v1")]
    for rt in BUILTIN_TYPES:
        key = (_api_stem(rt.group), rt.version)
        if key not in order:
            order.append(key)
    namer = _Namer(order)

    kinds: dict[str, str] = {}
    roots: list[tuple[str, str, str, str]] = []
    for rt in BUILTIN_TYPES:
        # Create-only review kinds have no list.
        listable = "list" in rt.verbs
        for kind in (rt.kind, rt.list_kind) if listable else (rt.kind,):
            cls_name = _class_for_kind(rt.group, rt.version, kind)
            roots.append((rt.group, rt.version, kind, cls_name))
    # Referenced by the openapi documents' operations rather than by any kind.
    extra_roots = ["V1Status", "V1DeleteOptions", "V1Scale"]

    schemas: dict[str, dict[str, Any]] = {}
    queue = deque([cls for *_, cls in roots] + extra_roots)
    while queue:
        cls_name = queue.popleft()
        name = namer.name(cls_name)
        if name in schemas:
            continue
        schemas[name] = _model_schema(cls_name, namer)
        for type_expr in getattr(_models(), cls_name).openapi_types.values():
            queue.extend(_referenced_classes(type_expr))

    for group, version, kind, cls_name in roots:
        name = namer.name(cls_name)
        schemas[name].setdefault("x-kubernetes-group-version-kind", []).append(
            {"group": group, "kind": kind, "version": version}
        )
        kinds[f"{group}/{version}/{kind}"] = name
    scale = namer.name("V1Scale")
    schemas[scale]["x-kubernetes-group-version-kind"] = [
        {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    ]
    kinds["autoscaling/v1/Scale"] = scale
    schemas[_QUANTITY_NAME] = {
        "description": "Quantity is a fixed-point representation of a number, written as a number or "
        "a string "
        "such as 100m, 1.5Gi or 1e3.",
        "x-kubernetes-int-or-string": True,
    }
    schemas[_INT_OR_STRING_NAME] = {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "x-kubernetes-int-or-string": True,
    }
    # The PATCH request body: kube-openapi publishes it as a bare object.
    schemas[f"{_META}.Patch"] = {
        "type": "object",
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
        "request body.",
    }

    import kubernetes

    return {
        "generator": "tools/generate_builtin_schemas.py",
        # The major version only: it names the Kubernetes API the models describe (37 = 1.37), and a patch
        # release of the client, which a fresh install picks up, must not make the committed file stale.
        "source": f"kubernetes python client {kubernetes.__version__.split('.')[0]}",
        "kinds": dict(sorted(kinds.items())),
        "schemas": dict(sorted(schemas.items())),
    }


def render(document: dict[str, Any]) -> str:
    """Serialise deterministically: one schema per line keeps diffs reviewable and the file small."""
    lines = ["{"]
    lines.append(f'"generator": {json.dumps(document["generator"])},')
    lines.append(f'"source": {json.dumps(document["source"])},')
    lines.append(f'"kinds": {json.dumps(document["kinds"], sort_keys=True, separators=(",", ":"))},')
    lines.append('"schemas": {')
    items = list(document["schemas"].items())
    for index, (name, schema) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}:{json.dumps(schema, sort_keys=True, separators=(',', ':'))}{comma}")
    lines.append("}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    text = render(build())
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)} ({len(text.encode()) // 1024} KiB)")


if __name__ == "__main__":
    main()
