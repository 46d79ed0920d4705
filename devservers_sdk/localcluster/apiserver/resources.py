"""The resource types the emulator serves: the built-in ones and those that CRDs define.

A ``ResourceType`` is what discovery advertises and what a URL resolves to. Built-in types are fixed at
start-up; CRD-defined types come and go with their CustomResourceDefinition, exactly as the real
apiextensions-apiserver adds and removes them from discovery once the CRD is ``Established``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScaleSpec:
    """Where the scale subresource reads and writes replicas (CRD ``subresources.scale``)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Subresources other than status/scale (exec, log, ...) are served by the kubelet layer.
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    # openAPIV3Schema for CRD-defined types; built-in schemas come from builtin_schemas.json.
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    scale: ScaleSpec | None = None
    builtin: bool = True
    # The CRD version that is stored; other served versions are converted with strategy None.
    storage_version: str = ""
    served_versions: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage key: one store per group and plural, shared by all served versions."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def qualified_plural(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _builtin(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    scale: ScaleSpec | None = None,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        subresources=frozenset(subresources),
        verbs=verbs,
        scale=scale,
        builtin=True,
        storage_version=version,
        served_versions=(version,),
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",), subresources=("status", "finalize"),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _builtin("", "v1", "Pod", "pods", short_names=("po",), categories=("all",),
             subresources=("status", "exec", "log", "attach", "portforward", "binding", "eviction")),
    _builtin("", "v1", "Service", "services", short_names=("svc",), categories=("all",), subresources=("status",),
             verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    _builtin("", "v1", "Endpoints", "endpoints", short_names=("ep",)),
    _builtin("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _builtin("", "v1", "Secret", "secrets"),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",)),
    _builtin("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short_names=("pv",), subresources=("status",)),
    _builtin("", "v1", "Event", "events", short_names=("ev",)),
    _builtin("", "v1", "Node", "nodes", namespaced=False, short_names=("no",), subresources=("status",)),
    _builtin("", "v1", "ResourceQuota", "resourcequotas", short_names=("quota",), subresources=("status",)),
    _builtin("", "v1", "LimitRange", "limitranges", short_names=("limits",)),
    _builtin("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=("all",),
             subresources=("status", "scale"), scale=ScaleSpec(label_selector_path=".status.labelSelector")),
    _builtin("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=("all",),
             subresources=("status", "scale"), scale=ScaleSpec(label_selector_path=".status.labelSelector")),
    _builtin("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=("all",),
             subresources=("status", "scale"), scale=ScaleSpec(label_selector_path=".status.labelSelector")),
    _builtin("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _builtin("coordination.k8s.io", "v1", "Lease", "leases"),
    _builtin("events.k8s.io", "v1", "Event", "events", short_names=("ev",)),
    _builtin("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False,
             short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",)),
    _builtin("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
             verbs=("create",)),
    _builtin("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False,
             verbs=("create",)),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies",
             namespaced=False, subresources=("status",)),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
             "validatingadmissionpolicybindings", namespaced=False),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", namespaced=False),
    _builtin("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", namespaced=False),
    _builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",), subresources=("status",)),
    _builtin("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short_names=("pc",)),
    _builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short_names=("sc",)),
)

# Creating these returns a computed answer and stores nothing (like the real review APIs).
VIRTUAL_KINDS = frozenset({("authentication.k8s.io", "selfsubjectreviews"), ("authorization.k8s.io", "selfsubjectaccessreviews")})


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes one served CRD defines: one per served version."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    versions = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage = next((v["name"] for v in spec.get("versions", []) if v.get("storage")), versions[0]["name"] if versions else "")
    served = tuple(v["name"] for v in versions)
    result = []
    for version in versions:
        subresources = version.get("subresources") or {}
        scale = None
        if "scale" in subresources:
            raw = subresources["scale"] or {}
            scale = ScaleSpec(
                spec_replicas_path=raw.get("specReplicasPath", ".spec.replicas"),
                status_replicas_path=raw.get("statusReplicasPath", ".status.replicas"),
                label_selector_path=raw.get("labelSelectorPath"),
            )
        result.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                singular=names.get("singular") or names.get("kind", "").lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(k for k in subresources if k in ("status", "scale")),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                scale=scale,
                builtin=False,
                storage_version=storage,
                served_versions=served,
            )
        )
    return result


@dataclass
class ResourceRegistry:
    """Every type the server currently serves, looked up the ways URLs and kubectl name them."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def with_builtins(cls) -> ResourceRegistry:
        registry = cls()
        for rt in BUILTIN_TYPES:
            registry._types[(rt.group, rt.version, rt.plural)] = rt
        return registry

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.plural == plural]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def groups(self) -> dict[str, list[str]]:
        """Group name to its served versions, preferred (storage) version first."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                if rt.version == rt.storage_version:
                    versions.insert(0, rt.version)
                else:
                    versions.append(rt.version)
        return result

    def set_crd_types(self, group: str, plural: str, types: list[ResourceType]) -> None:
        """Replace what one CRD serves (an empty list removes it) and tell discovery caches."""
        for key in [k for k, rt in self._types.items() if not rt.builtin and rt.group == group and rt.plural == plural]:
            del self._types[key]
        for rt in types:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
