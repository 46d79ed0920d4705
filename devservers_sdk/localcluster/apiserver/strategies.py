"""Per-kind behaviour of the API server: defaults, validation, immutable fields and deletion rules.

The real apiserver gives every kind a "strategy" (``pkg/registry/<group>/<kind>/strategy.go``) plus
admission plugins that fill in defaults. Only what clients of this project can observe is reproduced:
pod and StatefulSet defaults that ``kubectl get -o yaml`` shows, validation whose 422 messages users read,
the fields that may not change after creation, and the deletion quirks (pods wait for the kubelet,
namespaces for their contents, CRDs for their custom resources). Custom resources are validated against
their CRD schema in ``api.py`` and need nothing here beyond metadata checks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import admission, errors, openapi, schema
from .resources import VIRTUAL_KINDS, ResourceType
from .store import copy_document

if TYPE_CHECKING:
    from .api import ClusterAPI

Cause = dict[str, str]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_SUBDOMAIN_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                      "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                      "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                  "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035_MESSAGE = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_SELECTABLE_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): _COMMON_FIELDS | {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                                    "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                                    "status.podIPs", "status.nominatedNodeName"},
    ("", "events"): _COMMON_FIELDS | {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                                      "involvedObject.uid", "involvedObject.apiVersion",
                                      "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                                      "reportingComponent", "source", "type"},
    ("", "secrets"): _COMMON_FIELDS | {"type"},
    ("", "namespaces"): _COMMON_FIELDS | {"status.phase"},
    ("", "nodes"): _COMMON_FIELDS | {"spec.unschedulable"},
    ("", "persistentvolumes"): _COMMON_FIELDS | {"name"},
    ("apps", "replicasets"): _COMMON_FIELDS | {"status.replicas"},
}

# Kinds whose metadata.generation tracks spec changes (custom resources always do).
_GENERATION_KINDS = frozenset({"Pod", "StatefulSet", "Deployment", "ReplicaSet", "CustomResourceDefinition",
                               "PodDisruptionBudget", "ValidatingAdmissionPolicy"})
_CREATE_ON_UPDATE = frozenset({("", "events"), ("", "endpoints"), ("coordination.k8s.io", "leases"),
                               ("events.k8s.io", "events")})
_RETURNS_DELETED_OBJECT = frozenset({("", "pods"), ("", "services"), ("", "namespaces"),
                                     ("", "persistentvolumeclaims"), ("", "persistentvolumes"),
                                     ("apiextensions.k8s.io", "customresourcedefinitions")})

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
DEFAULT_STORAGE_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds")


class ServiceIPAllocator:
    """Hands out ClusterIPs from 10.96.0.0/16; they are labels only (no kube-proxy routes them here)."""

    def __init__(self, cidr: str = "10.96.0.0/16") -> None:
        self._network = ipaddress.ip_network(cidr)
        self._used: set[str] = {str(self._network.network_address + 1)}
        self._next = 10

    def allocate(self) -> str:
        size = self._network.num_addresses
        for _ in range(size):
            candidate = str(self._network.network_address + self._next)
            self._next = self._next + 1 if self._next + 1 < size - 1 else 10
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise errors.StatusError(500, "InternalError", "the service ClusterIP range is full")

    def reserve(self, ip: str) -> bool:
        if ip in self._used:
            return False
        self._used.add(ip)
        return True

    def release(self, ip: str) -> None:
        self._used.discard(ip)


# -- small helpers ---------------------------------------------------------------------------------


def get_path(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def field_selectable(rt: ResourceType, field: str) -> bool:
    return field in _SELECTABLE_FIELDS.get(rt.group_resource, _COMMON_FIELDS)


def has_generation(rt: ResourceType, obj: dict[str, Any]) -> bool:
    return not rt.builtin or rt.kind in _GENERATION_KINDS


def allows_create_on_update(rt: ResourceType) -> bool:
    return rt.group_resource in _CREATE_ON_UPDATE


def allows_unconditional_update(rt: ResourceType) -> bool:
    return rt.builtin


def default_propagation(rt: ResourceType) -> str:
    return "Background"


def returns_deleted_object(rt: ResourceType) -> bool:
    return rt.group_resource in _RETURNS_DELETED_OBJECT


def grace_period(rt: ResourceType, obj: dict[str, Any], requested: Any) -> int:
    """Pods on a node get a grace period for the kubelet to stop them; everything else goes at once."""
    if rt.group_resource != ("", "pods"):
        return 0
    spec = obj.get("spec", {})
    if not spec.get("nodeName") or obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is None:
        requested = spec.get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(requested))
    except (TypeError, ValueError):
        return 0


def waits_for_grace(rt: ResourceType, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    return (rt.group_resource == ("", "pods") and bool(meta.get("deletionTimestamp"))
            and meta.get("deletionGracePeriodSeconds", 0) > 0)


def needs_finalization(rt: ResourceType, obj: dict[str, Any]) -> bool:
    """Namespaces carry ``spec.finalizers`` that the namespace controller clears once they are empty."""
    return rt.group_resource == ("", "namespaces") and bool(obj.get("spec", {}).get("finalizers"))


def finalizers_on_delete(rt: ResourceType, obj: dict[str, Any]) -> list[str]:
    """The finalizers an object holds once a delete begins: a CRD takes the cleanup finalizer only then (its
    REST storage adds it on the first delete), so its custom resources go before it does."""
    finalizers = list(obj["metadata"].get("finalizers") or [])
    first_delete = not obj["metadata"].get("deletionTimestamp")
    if rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions") and first_delete \
            and CRD_CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CRD_CLEANUP_FINALIZER)
    return finalizers


def prepare_for_deletion(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.group_resource == ("", "namespaces"):
        obj.setdefault("status", {})["phase"] = "Terminating"
    elif rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions"):
        conditions = obj.setdefault("status", {}).setdefault("conditions", [])
        if any(c.get("type") == "Terminating" for c in conditions):
            return
        conditions.append({"type": "Terminating", "status": "True", "reason": "InstanceDeletionPending",
                           "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will "
                                      "begin soon", "lastTransitionTime": obj["metadata"]["deletionTimestamp"]})


def scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    assert rt.scale is not None
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": get_path(obj, rt.scale.status_replicas_path) or 0}
    if rt.builtin:
        # apps/v1 kinds have no status field for it: the registry renders spec.selector as a string.
        from .selectors import SelectorError, label_selector_from_dict

        try:
            selector = str(label_selector_from_dict(get_path(obj, "spec.selector")))
        except SelectorError:
            selector = ""
        if selector:
            status["selector"] = selector
    elif rt.scale.label_selector_path:
        selector = get_path(obj, rt.scale.label_selector_path)
        if selector:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": _scale_spec(get_path(obj, rt.scale.spec_replicas_path) or 0),
        "status": status,
    }


def _scale_spec(replicas: int) -> dict[str, Any]:
    # autoscaling/v1 ScaleSpec.replicas is omitempty: a Scale of zero says nothing (clients read it as 0).
    return {"replicas": replicas} if replicas else {}


def answer_review(rt: ResourceType, obj: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    if rt.plural == "selfsubjectreviews":
        # Like kube-apiserver's selfsubjectreview REST: a new object (nothing of the request's metadata),
        # with UserInfo's omitempty fields left out when empty.
        from .api import now_rfc3339

        info = {"username": user.get("username", ""), "uid": user.get("uid", ""),
                "groups": list(user.get("groups") or []),
                "extra": {key: list(values) for key, values in sorted((user.get("extra") or {}).items())}}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"creationTimestamp": now_rfc3339()},
                "status": {"userInfo": {key: value for key, value in info.items() if value}}}
    answer = copy_document(obj)
    answer["status"] = {"allowed": True, "reason": "the local cluster does not enforce RBAC"}
    return answer


def unknown_builtin_fields(rt: ResourceType, obj: dict[str, Any]) -> list[str]:
    from . import openapi

    return openapi.unknown_fields(rt.group, rt.version, rt.kind, obj)


_GO_TYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}


def decoding_error(component: str, obj: Any) -> str | None:
    """The first error Go's ``encoding/json`` would hit decoding ``obj`` into the built-in type
    ``component`` (an OpenAPI component name), worded like it, or None. Built-in kinds are decoded into
    typed structs before anything else happens, so a wrong JSON type is a 400, never a stored object."""
    from . import openapi

    if component not in openapi.builtin_components():
        return None
    return _decoding_error({"$ref": openapi.REF_PREFIX + component}, obj, "", component.rsplit(".", 1)[-1])


def builtin_decoding_error(rt: ResourceType, obj: Any) -> str | None:
    from . import openapi

    name = openapi.builtin_schema_name(rt.group, rt.version, rt.kind) if rt.builtin else None
    return decoding_error(name, obj) if name else None


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _resolve_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    type_name = None
    for _ in range(64):
        if "$ref" in schema:
            type_name = schema["$ref"].rsplit(".", 1)[-1]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**openapi.resolve_ref(schema["$ref"]), **rest}
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            break
    return schema, type_name


_resolved_builtin = openapi.BuiltinSchemaMemo(_resolve_schema)


def _resolved_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``_resolve_schema``, remembered: these are the built-in schemas (``openapi.BuiltinSchemaMemo``)."""
    if "$ref" not in schema and "allOf" not in schema:
        return schema, None
    return _resolved_builtin(schema)


def _decoding_error(schema: dict[str, Any], value: Any, path: str, struct: str) -> str | None:
    if value is None:  # null decodes to the zero value anywhere
        return None
    schema, type_name = _resolved_schema(schema)
    kind = schema.get("type") if isinstance(schema.get("type"), str) else None
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        expected = type_name or "intstr.IntOrString"
    elif kind is None:
        return None  # RawExtension, JSON, FieldsV1: anything goes
    else:
        check = _TYPE_CHECKS.get(kind)
        ok = check(value) if check is not None else True
        expected = _GO_TYPES.get(kind) or (f"v1.{type_name}" if type_name else
                                          "[]interface {}" if kind == "array" else "map[string]interface {}")
    if not ok:
        found = ("string" if isinstance(value, str) else "bool" if isinstance(value, bool) else
                 "number" if isinstance(value, (int, float)) else
                 "array" if isinstance(value, list) else "object")
        where = f"Go struct field {struct}.{path}" if path else "Go value"
        return f"json: cannot unmarshal {found} into {where} of type {expected}"
    if isinstance(value, dict):
        raw_properties = schema.get("properties")
        properties: dict[str, Any] = raw_properties if isinstance(raw_properties, dict) else {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                problem = _decoding_error(properties[key], item, f"{path}.{key}" if path else key,
                                          type_name or struct)
            elif isinstance(additional, dict):
                problem = _decoding_error(additional, item, path, struct)
            else:
                continue
            if problem:
                return problem
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            problem = _decoding_error(schema["items"], item, path, struct)
            if problem:
                return problem
    return None


# -- metadata --------------------------------------------------------------------------------------


def _name_causes(rt: ResourceType, name: str) -> list[Cause]:
    if rt.group_resource in VIRTUAL_KINDS:
        return []  # review requests are answered, never stored, and need no name
    if not name:
        return [errors.cause("metadata.name", "Required value: name or generateName is required",
                             "FieldValueRequired")]
    if rt.group_resource in (("", "namespaces"),):
        pattern, message, limit = DNS1123_LABEL, _LABEL_MESSAGE, 63
    elif rt.group_resource == ("", "services"):
        pattern, message, limit = DNS1035_LABEL, _DNS1035_MESSAGE, 63
    else:
        pattern, message, limit = DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE, 253
    causes = []
    if len(name) > limit:
        causes.append(errors.cause("metadata.name", f'Invalid value: "{name}": must be no more than {limit} '
                                                    "characters"))
    if not pattern.match(name):
        causes.append(errors.cause("metadata.name", f'Invalid value: "{name}": {message}'))
    return causes


def _qualified_name_causes(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if "/" in key and len(prefix.encode()) > 253:
        problems.append("prefix part must be no more than 253 bytes")
    elif "/" in key and (not prefix or not DNS1123_SUBDOMAIN.match(prefix)):
        problems.append("prefix part " + _SUBDOMAIN_MESSAGE)
    if not name:
        problems.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        problems.append("name part must be no more than 63 bytes")
    elif not QUALIFIED_NAME.match(name):
        problems.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                        "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return [errors.cause(field, f'Invalid value: "{key}": {p}') for p in problems]


def validate_metadata(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [errors.cause("metadata", "Required value", "FieldValueRequired")]
    name = meta.get("name") or ""
    causes = _name_causes(rt, name) if isinstance(name, str) else [
        errors.cause("metadata.name", "Invalid value: must be a string")]
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(errors.cause("metadata.labels", "Invalid value: must be a map of strings"))
        labels = {}
    for key, value in labels.items():
        causes.extend(_qualified_name_causes("metadata.labels", key))
        if not isinstance(value, str):
            causes.append(errors.cause("metadata.labels", f"Invalid value: {json.dumps(value)}: must be a string"))
        elif len(value.encode()) > 63:
            causes.append(errors.cause("metadata.labels", f'Invalid value: "{value}": must be no more than 63 '
                                                          "bytes"))
        elif not LABEL_VALUE.match(value):
            causes.append(errors.cause(
                "metadata.labels", f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        causes.append(errors.cause("metadata.annotations", "Invalid value: must be a map of strings"))
    else:
        for key in annotations:
            causes.extend(_qualified_name_causes("metadata.annotations", key))
        if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
            causes.append(errors.cause("metadata.annotations", "Too long: must have at most 262144 bytes",
                                       "FieldValueTooLong"))
    finalizers = meta.get("finalizers") or []
    if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
        causes.append(errors.cause("metadata.finalizers", "Invalid value: must be a list of strings"))
    for index, ref in enumerate(meta.get("ownerReferences") or []):
        if not isinstance(ref, dict):
            causes.append(errors.cause(f"metadata.ownerReferences[{index}]", "Invalid value: must be an object"))
            continue
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                causes.append(errors.cause(f"metadata.ownerReferences[{index}].{field}", "Required value",
                                           "FieldValueRequired"))
    controllers = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("controller")]
    if len(controllers) > 1:
        causes.append(errors.cause("metadata.ownerReferences", "Invalid value: only one reference can have "
                                                               "Controller set to true"))
    return causes


# -- create / update preparation -------------------------------------------------------------------


def prepare_for_create(rt: ResourceType, obj: dict[str, Any], api: ClusterAPI) -> None:
    if rt.has_status and rt.group_resource not in (("", "namespaces"),):
        obj.pop("status", None)
    kind = (rt.group, rt.kind) if rt.builtin else None
    if kind == ("", "Pod"):
        _default_pod_spec(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec", {}))}
    elif kind == ("apps", "StatefulSet"):
        _default_statefulset(obj)
        obj["status"] = {"replicas": 0, "availableReplicas": 0}
    elif kind in (("apps", "Deployment"), ("apps", "ReplicaSet")):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if rt.kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        obj["status"] = {}
    elif kind == ("", "Service"):
        _default_service(obj, api)
    elif kind == ("", "PersistentVolumeClaim"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        if "storageClassName" not in spec:
            default_class = _default_storage_class(api)
            if default_class:
                spec["storageClassName"] = default_class
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if PVC_PROTECTION_FINALIZER not in finalizers:
            finalizers.append(PVC_PROTECTION_FINALIZER)
        obj["status"] = {"phase": "Pending"}
    elif kind == ("", "PersistentVolume"):
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        obj["status"] = {"phase": "Pending"}
    elif kind == ("", "Namespace"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif kind == ("", "Secret"):
        _normalise_secret(obj)
    elif kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        admission.default_policy(obj)
    elif kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        admission.default_binding(obj)
    elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        _default_crd(obj)
        obj["status"] = _crd_status(obj)
    elif kind == ("", "Node"):
        obj.setdefault("status", {})


def prepare_for_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any], api: ClusterAPI,
                       subresource: str | None) -> None:
    if subresource == "status" or not rt.builtin:
        return
    kind = (rt.group, rt.kind)
    if kind == ("", "Pod"):
        _default_pod_spec(new.setdefault("spec", {}))
    elif kind == ("apps", "StatefulSet"):
        _default_statefulset(new)
    elif kind == ("", "Service"):
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec", {})
        if "clusterIP" not in spec and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        _default_service_fields(spec)
    elif kind == ("", "Secret"):
        _normalise_secret(new)
    elif kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        admission.default_policy(new)
    elif kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        admission.default_binding(new)
    elif kind == ("", "Namespace"):
        new.setdefault("spec", {}).setdefault("finalizers", old.get("spec", {}).get("finalizers", []))
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new["metadata"]["name"]
    elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        _default_crd(new)
        new["status"] = {**old.get("status", {}), **_crd_status(new)}


def _default_container(container: dict[str, Any]) -> None:
    image = container.get("image", "")
    if "imagePullPolicy" not in container:
        last = image.rsplit("/", 1)[-1]
        tagged = ":" in last and not last.endswith(":latest")
        container["imagePullPolicy"] = "IfNotPresent" if tagged or "@" in image else "Always"
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    if isinstance(resources, dict) and resources.get("limits") and not resources.get("requests"):
        resources["requests"] = dict(resources["limits"])
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for probe_kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_kind)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            for source in ("configMap", "secret"):
                if isinstance(volume.get(source), dict):
                    volume[source].setdefault("defaultMode", 420)
            if "emptyDir" in volume and volume["emptyDir"] is None:
                volume["emptyDir"] = {}


def qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if isinstance(c, dict)]
    requests_seen = limits_seen = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_seen = requests_seen or any(k in requests for k in ("cpu", "memory"))
        limits_seen = limits_seen or any(k in limits for k in ("cpu", "memory"))
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_seen or limits_seen else "BestEffort"


def _default_statefulset(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    if spec["updateStrategy"].get("type") == "RollingUpdate":
        spec["updateStrategy"].setdefault("rollingUpdate", {"partition": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            claim.setdefault("status", {"phase": "Pending"})


def _default_service_fields(spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _default_service(obj: dict[str, Any], api: ClusterAPI) -> None:
    spec = obj.setdefault("spec", {})
    _default_service_fields(spec)
    cluster_ip = spec.get("clusterIP")
    if cluster_ip in (None, ""):
        spec["clusterIP"] = api.service_ips.allocate()
    elif cluster_ip != "None" and not api.service_ips.reserve(cluster_ip):
        raise errors.invalid("Service", obj["metadata"].get("name", ""), [errors.cause(
            "spec.clusterIPs", f"Invalid value: []string{{\"{cluster_ip}\"}}: failed to allocate IP {cluster_ip}: "
            "provided IP is already allocated")])
    spec["clusterIPs"] = [spec["clusterIP"]]
    obj["status"] = {"loadBalancer": {}}


def _default_storage_class(api: ClusterAPI) -> str | None:
    for sc in api.store.iter(("storage.k8s.io", "storageclasses")):
        if sc["metadata"].get("annotations", {}).get(DEFAULT_STORAGE_CLASS_ANNOTATION) == "true":
            return str(sc["metadata"]["name"])
    return None


def _normalise_secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if (string_data or "data" in obj) else None
    if data is None:
        return
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError) as exc:
            raise errors.bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data "
                                     f"in data[{key}]") from exc


def _default_crd(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            version.setdefault("served", True)
            version.setdefault("storage", False)


def _crd_status(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec", {})
    names = spec.get("names", {})
    from .api import now_rfc3339

    now = now_rfc3339()
    storage = [v["name"] for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("storage")]
    return {
        "acceptedNames": {k: v for k, v in names.items()},
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage,
    }


# -- validation ------------------------------------------------------------------------------------


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, api: ClusterAPI) -> list[Cause]:
    if not rt.builtin:
        return schema.validate(rt.schema, obj) if rt.schema else []
    kind = (rt.group, rt.kind)
    if kind == ("", "Pod"):
        return _validate_pod(obj, old)
    if kind == ("apps", "StatefulSet"):
        return _validate_statefulset(obj, old)
    if kind == ("", "Service"):
        return _validate_service(obj, old)
    if kind == ("", "PersistentVolumeClaim"):
        return _validate_pvc(obj, old)
    if kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        return _validate_crd(obj, old, api)
    if kind in (("", "ConfigMap"), ("", "Secret")):
        return _validate_immutable_data(obj, old)
    if kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        return admission.validate_policy(obj)
    if kind == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        return admission.validate_binding(obj)
    return []


def _validate_containers(spec: dict[str, Any], prefix: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        return [errors.cause(f"{prefix}.containers", "Required value", "FieldValueRequired")]
    if not isinstance(containers, list):
        return [errors.cause(f"{prefix}.containers", "Invalid value: must be a list")]
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            path = f"{prefix}.{key}[{index}]"
            if not isinstance(container, dict):
                causes.append(errors.cause(path, "Invalid value: must be an object"))
                continue
            name = container.get("name")
            if not name:
                causes.append(errors.cause(f"{path}.name", "Required value", "FieldValueRequired"))
            elif not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
                causes.append(errors.cause(f"{path}.name", f'Invalid value: "{name}": {_LABEL_MESSAGE}'))
            elif name in names:
                causes.append(errors.cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            else:
                names.add(name)
            if not container.get("image"):
                causes.append(errors.cause(f"{path}.image", "Required value", "FieldValueRequired"))
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            if isinstance(container, dict):
                causes.extend(_container_field_causes(container, f"{prefix}.{key}[{index}]"))
    causes.extend(_scheduling_causes(spec, prefix))
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        causes.append(errors.cause(f"{prefix}.restartPolicy", f'Unsupported value: "{policy}": supported values: '
                                   '"Always", "OnFailure", "Never"', "FieldValueNotSupported"))
    return causes


# What the apiserver's pod validation checks in the fields an operator fills from user input (resources,
# env, nodeSelector, tolerations), with its wording: an emulator that accepted these would let a test
# pass where a real cluster refuses the StatefulSet.
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _is_native_resource(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/")


def _container_field_causes(container: dict[str, Any], path: str) -> list[Cause]:
    from ..controllers.scheduler import parse_quantity

    causes: list[Cause] = []
    for index, variable in enumerate(container.get("env") or []):
        name = variable.get("name") if isinstance(variable, dict) else None
        if isinstance(name, str) and not _ENV_NAME.match(name):
            causes.append(errors.cause(f"{path}.env[{index}].name", f'Invalid value: "{name}": a valid environment '
                                       "variable name must consist of alphabetic characters, digits, '_', '-', or "
                                       "'.', and must not start with a digit (e.g. 'my.env-name',  or "
                                       "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
                                       "'[-._a-zA-Z][-._a-zA-Z0-9]*')"))
    resources = container.get("resources") or {}
    amounts: dict[str, dict[str, Any]] = {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        amounts[section] = {}
        for name, raw in values.items() if isinstance(values, dict) else ():
            where = f"{path}.resources.{section}[{name}]"
            native = _is_native_resource(name)
            if "/" not in name and name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
                causes.append(errors.cause(where, f'Invalid value: "{name}": must be a standard resource for '
                                                  "containers"))
                continue
            if not native and (name.startswith("requests.") or _qualified_name_causes(where, name)):
                causes.append(errors.cause(where, f'Invalid value: "{name}": doesn\'t follow extended resource '
                                                  "name standard"))
                continue
            try:
                amount = parse_quantity(raw)
            except (ValueError, TypeError):
                causes.append(errors.cause(where, f"Invalid value: {json.dumps(raw)}: quantities must match the "
                                                  "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
                continue
            if amount < 0:
                causes.append(errors.cause(where, f'Invalid value: "{raw}": must be greater than or equal to 0'))
            elif not native and amount.denominator != 1:
                causes.append(errors.cause(where, f'Invalid value: "{raw}": must be an integer'))
            amounts[section][name] = amount
    overcommittable = _STANDARD_CONTAINER_RESOURCES
    for name, request in amounts["requests"].items():
        limit = amounts["limits"].get(name)
        where = f"{path}.resources.requests"
        if limit is not None and request != limit and name not in overcommittable:
            causes.append(errors.cause(where, f'Invalid value: "{resources["requests"][name]}": must be equal to '
                                              f"{name} limit of {resources['limits'][name]}"))
        elif limit is not None and request > limit:
            causes.append(errors.cause(where, f'Invalid value: "{resources["requests"][name]}": must be less than '
                                              f"or equal to {name} limit of {resources['limits'][name]}"))
        elif limit is None and name not in overcommittable:
            causes.append(errors.cause(f"{path}.resources.limits", "Required value: Limit must be set for non "
                                                                   "overcommitable resources", "FieldValueRequired"))
    return causes


def _scheduling_causes(spec: dict[str, Any], prefix: str) -> list[Cause]:
    causes: list[Cause] = []
    selector = spec.get("nodeSelector") or {}
    for key, value in selector.items() if isinstance(selector, dict) else ():
        causes.extend(_qualified_name_causes(f"{prefix}.nodeSelector", key))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(errors.cause(f"{prefix}.nodeSelector", f"Invalid value: {json.dumps(value)}: a valid label "
                                       "must be an empty string or consist of alphanumeric characters, '-', '_' or "
                                       "'.', and must start and end with an alphanumeric character"))
    for index, toleration in enumerate(spec.get("tolerations") or []):
        where = f"{prefix}.tolerations[{index}]"
        if not isinstance(toleration, dict):
            continue
        key, operator, value = toleration.get("key") or "", toleration.get("operator") or "Equal", toleration.get("value")
        if key:
            causes.extend(_qualified_name_causes(f"{where}.key", key))
        elif operator != "Exists":
            causes.append(errors.cause(f"{where}.operator", f'Invalid value: "{operator}": operator must be Exists '
                                                            "when `key` is empty, which means \"match all values "
                                                            "and all keys\""))
        if operator == "Exists" and value:
            causes.append(errors.cause(f"{where}.operator", f'Invalid value: "{value}": value must be empty when '
                                                            "`operator` is 'Exists'"))
        elif operator == "Equal" and value and (len(value) > 63 or not LABEL_VALUE.match(value)):
            causes.append(errors.cause(f"{where}.value", f'Invalid value: "{value}": a valid label must be an empty '
                                                         "string or consist of alphanumeric characters, '-', '_' "
                                                         "or '.', and must start and end with an alphanumeric "
                                                         "character"))
        if toleration.get("tolerationSeconds") is not None and toleration.get("effect") != "NoExecute":
            causes.append(errors.cause(f"{where}.effect", f'Invalid value: "{toleration.get("effect")}": effect '
                                                          "must be 'NoExecute' when `tolerationSeconds` is set"))
    return causes


def _validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _validate_containers(spec, "spec")
    if old is not None and not causes:
        old_spec = old.get("spec") or {}
        comparable_new, comparable_old = copy_document(spec), copy_document(old_spec)
        for candidate in (comparable_new, comparable_old):
            for key in ("containers", "initContainers"):
                for container in candidate.get(key) or []:
                    container.pop("image", None)
            candidate.pop("activeDeadlineSeconds", None)
            candidate.pop("tolerations", None)
        # The emulated scheduler binds by setting nodeName once, standing in for the binding subresource.
        if not old_spec.get("nodeName"):
            comparable_new.pop("nodeName", None)
            comparable_old.pop("nodeName", None)
        if comparable_new != comparable_old:
            causes.append(errors.cause("spec", "Forbidden: pod updates may not change fields other than "
                                       "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                       "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                                       "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                                       "if it was previously negative)", "FieldValueForbidden"))
    return causes


def _validate_statefulset(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    from .selectors import SelectorError, label_selector_from_dict

    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(errors.cause("spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater than "
                                                    "or equal to 0"))
    policy = spec.get("podManagementPolicy")
    if policy not in ("OrderedReady", "Parallel"):
        causes.append(errors.cause("spec.podManagementPolicy", f'Unsupported value: "{policy}": supported values: '
                                   '"OrderedReady", "Parallel"', "FieldValueNotSupported"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(errors.cause("spec.selector", "Required value", "FieldValueRequired"))
    else:
        try:
            parsed = label_selector_from_dict(selector)
        except SelectorError as exc:
            causes.append(errors.cause("spec.selector", f"Invalid value: {exc}"))
        else:
            if not (selector.get("matchLabels") or selector.get("matchExpressions")):
                causes.append(errors.cause("spec.selector", "Invalid value: empty selector is invalid for "
                                                            "statefulset"))
            elif not parsed.matches(labels):
                causes.append(errors.cause("spec.template.metadata.labels", f"Invalid value: {json.dumps(labels)}: "
                                           "`selector` does not match template `labels`"))
    causes.extend(_validate_containers(template.get("spec") or {}, "spec.template.spec"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE} != \
                {k: v for k, v in old_spec.items() if k not in _STATEFULSET_MUTABLE}:
            causes.append(errors.cause("spec", "Forbidden: updates to statefulset spec for fields other than "
                                       "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                       "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                                       "FieldValueForbidden"))
    return causes


def _validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    kind = spec.get("type")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(errors.cause("spec.type", f'Unsupported value: "{kind}": supported values: "ClusterIP", '
                                   '"ExternalName", "LoadBalancer", "NodePort"', "FieldValueNotSupported"))
    for index, port in enumerate(spec.get("ports") or []):
        value = port.get("port") if isinstance(port, dict) else None
        if not isinstance(value, int) or not 0 < value < 65536:
            causes.append(errors.cause(f"spec.ports[{index}].port", f"Invalid value: {json.dumps(value)}: must be "
                                                                    "between 1 and 65535, inclusive"))
    if old is not None and old.get("spec", {}).get("clusterIP") != spec.get("clusterIP"):
        causes.append(errors.cause("spec.clusterIPs[0]", "Invalid value: field is immutable"))
    return causes


def _validate_pvc(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    if not spec.get("accessModes"):
        causes.append(errors.cause("spec.accessModes", "Required value: at least 1 access mode is required",
                                   "FieldValueRequired"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if not storage:
        causes.append(errors.cause("spec.resources[storage]", "Required value", "FieldValueRequired"))
    if old is not None:
        mutable = ("resources", "volumeAttributesClassName", "volumeName")
        old_spec = old.get("spec") or {}
        if {k: v for k, v in spec.items() if k not in mutable} != {k: v for k, v in old_spec.items()
                                                                      if k not in mutable}:
            causes.append(errors.cause("spec", "Forbidden: spec is immutable after creation except "
                                       "resources.requests and volumeAttributesClassName for bound claims",
                                       "FieldValueForbidden"))
        if old_spec.get("volumeName") and spec.get("volumeName") != old_spec.get("volumeName"):
            causes.append(errors.cause("spec.volumeName", "Invalid value: field is immutable once bound"))
    return causes


def _validate_immutable_data(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    if old is None or not old.get("immutable"):
        return []
    if obj.get("data") != old.get("data") or obj.get("binaryData") != old.get("binaryData"):
        return [errors.cause("data", "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden")]
    return []


def _validate_crd(obj: dict[str, Any], old: dict[str, Any] | None, api: ClusterAPI) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    group, plural = spec.get("group"), names.get("plural")
    if not group:
        causes.append(errors.cause("spec.group", "Required value", "FieldValueRequired"))
    if not plural:
        causes.append(errors.cause("spec.names.plural", "Required value", "FieldValueRequired"))
    if not names.get("kind"):
        causes.append(errors.cause("spec.names.kind", "Required value", "FieldValueRequired"))
    if group and plural and obj["metadata"].get("name") != f"{plural}.{group}":
        causes.append(errors.cause("metadata.name", f'Invalid value: "{obj["metadata"].get("name")}": must be '
                                                    'spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(errors.cause("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported values: '
                                   '"Cluster", "Namespaced"', "FieldValueNotSupported"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(errors.cause("spec.versions", "Invalid value: must have exactly one version marked as "
                                                    "storage version"))
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(errors.cause("spec.versions", "Invalid value: must have exactly one version marked as "
                                                    "storage version"))
    schemas = [(version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version, dict) else None
               for version in versions]
    if schemas and schemas[0] is not None and all(s == schemas[0] for s in schemas):
        # The internal CRD type holds one schema shared by every version as spec.validation (v1beta1's
        # field), so that is the path the real server's errors name.
        causes.extend(_schema_causes(schemas[0], "spec.validation.openAPIV3Schema"))
        schemas = []
    for index, openapi_schema in enumerate(schemas):
        if not isinstance(versions[index], dict):
            continue
        if openapi_schema is None:
            causes.append(errors.cause(f"spec.versions[{index}].schema.openAPIV3Schema", "Required value: schemas "
                                       "are required", "FieldValueRequired"))
            continue
        causes.extend(_schema_causes(openapi_schema, f"spec.versions[{index}].schema.openAPIV3Schema"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("group") != group or old_spec.get("names", {}).get("plural") != plural:
            causes.append(errors.cause("spec.group", "Invalid value: field is immutable"))
    return causes


def _schema_causes(openapi_schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    """One cause per problem of a CRD schema, on the problem's own field as the real server names it."""
    causes = []
    for problem in schema.structural_errors(openapi_schema, path=path):
        field, _, detail = problem.partition(": ")
        if detail.startswith("Required value"):
            reason = "FieldValueRequired"
        elif detail.startswith("Forbidden"):
            reason = "FieldValueForbidden"
        elif detail.startswith("Unsupported value"):
            reason = "FieldValueNotSupported"
        elif " must be of type " in detail:
            reason = "FieldValueTypeInvalid"
        else:
            reason = "FieldValueInvalid"
        causes.append(errors.cause(field, detail, reason))
    return causes


# -- side effects of writes ------------------------------------------------------------------------


def after_write(rt: ResourceType, obj: dict[str, Any], api: ClusterAPI) -> None:
    if rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions"):
        api.serve_crd(obj)


def after_remove(rt: ResourceType, obj: dict[str, Any], api: ClusterAPI) -> None:
    if rt.group_resource == ("apiextensions.k8s.io", "customresourcedefinitions"):
        api.unserve_crd(obj)
    elif rt.group_resource == ("", "services"):
        cluster_ip = obj.get("spec", {}).get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            api.service_ips.release(cluster_ip)
