"""What the emulator answers on ``/version``, ``/api``, ``/apis``, ``/apis/{g}`` and ``/apis/{g}/{v}``.

Every client finds resources through these documents before it touches one: kubectl's RESTMapper turns
``kubectl get ds`` (a short name) or ``kubectl get all`` (a category) into a URL from them, kopf scans
``/apis`` for the CRDs it watches, and ``kubernetes.dynamic`` reads ``/api/v1`` to learn a kind's plural.
So the documents mirror kube-apiserver 1.37's field for field where clients look: ``singularName`` on every
resource, an empty ``singularName`` on subresources, the ``group``/``version`` that a subresource such as
``pods/eviction`` (policy/v1 Eviction) or ``deployments/scale`` (autoscaling/v1 Scale) answers with, and a
``storageVersionHash`` computed the way the real server computes it (first 8 bytes of
sha256("group/version/kind"), base64), which kube-storage-version-migrator style tools compare.

Aggregated discovery: kubectl 1.37 sends on ``/api`` and ``/apis``::

    Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json

(older clients also list ``v=v2beta1``) and decides how to parse the body from the response
Content-Type alone (client-go ``ContentTypeIsGVK``: media type ``application/json`` plus the
``g``/``v``/``as`` parameters, in any order). With a plain ``application/json`` Content-Type it falls
back to legacy discovery and fetches ``/api/v1`` and every ``/apis/{g}/{v}`` one by one. Both work with
kubectl 1.37 (short names, categories such as ``kubectl get all``, a CRD created mid-session); we answer
aggregated v2 when asked because that is what a 1.37 server does and it costs kubectl two requests
instead of two plus one per group-version. The server must echo the negotiated profile in Content-Type
(``aggregated_content_type``) and should send ``Vary: Accept``.
Clients that send plain ``application/json`` (the Python client, kopf, ``kubernetes.dynamic``) keep
getting the legacy documents.

kubectl keeps discovery in ``~/.kube/cache/discovery`` for hours; it finds a CRD created meanwhile only
because a RESTMapper miss invalidates that cache and re-reads these documents, so they must reflect the
registry at the moment of the request (no server-side caching of discovery).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from devservers_sdk.localcluster.apiserver.resources import VIRTUAL_KINDS, ResourceRegistry, ResourceType

# A 1.37 server: the same minor as kubectl 1.37 and as the API the official Python client 37 models
# (the built-in schemas are generated from it), so ``kubectl version`` prints no skew warning. The build
# metadata suffix marks the emulator the way distributions do (``+k3s1``) and is valid semver.
SERVER_MAJOR = 1
SERVER_MINOR = 37
SERVER_PATCH = 0
GIT_VERSION = f"v{SERVER_MAJOR}.{SERVER_MINOR}.{SERVER_PATCH}+localcluster"

DiscoveryProfile = Literal["aggregated-v2", "aggregated-v2beta1", "legacy"]

AGGREGATED_GROUP = "apidiscovery.k8s.io"
AGGREGATED_KIND = "APIGroupDiscoveryList"


@dataclass(frozen=True)
class _Subresource:
    """How the real server describes one subresource: the kind it answers with and its verbs."""

    verbs: tuple[str, ...]
    # None means "the parent's own group/version/kind" (status, finalize, log, ...).
    group: str | None = None
    version: str | None = None
    kind: str | None = None


_SUBRESOURCES: dict[str, _Subresource] = {
    "status": _Subresource(("get", "patch", "update")),
    "scale": _Subresource(("get", "patch", "update"), "autoscaling", "v1", "Scale"),
    "exec": _Subresource(("create", "get"), "", "v1", "PodExecOptions"),
    "attach": _Subresource(("create", "get"), "", "v1", "PodAttachOptions"),
    "portforward": _Subresource(("create", "get"), "", "v1", "PodPortForwardOptions"),
    "log": _Subresource(("get",)),
    "binding": _Subresource(("create",), "", "v1", "Binding"),
    "eviction": _Subresource(("create",), "policy", "v1", "Eviction"),
    "ephemeralcontainers": _Subresource(("get", "patch", "update")),
    "resize": _Subresource(("get", "patch", "update")),
    "finalize": _Subresource(("update",)),
    "token": _Subresource(("create",), "authentication.k8s.io", "v1", "TokenRequest"),
    "proxy": _Subresource(("create", "delete", "get", "patch", "update")),
}


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """The opaque hash kube-apiserver publishes so clients notice a storage version change."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def version_info() -> dict[str, Any]:
    """``/version``; every field the Python client's ``VersionInfo`` model requires is present."""
    return {
        "major": str(SERVER_MAJOR),
        "minor": str(SERVER_MINOR),
        "emulationMajor": str(SERVER_MAJOR),
        "emulationMinor": str(SERVER_MINOR),
        "minCompatibilityMajor": str(SERVER_MAJOR),
        "minCompatibilityMinor": str(SERVER_MINOR - 1),
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api`` in the legacy format. ``server_address`` is ``host:port`` (a URL is reduced to that)."""
    server_address = server_address.split("://", 1)[-1].rstrip("/")
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    """``/apis`` in the legacy format: every named group, preferred (storage) version first."""
    groups = [_group_entry(g, vs) for g, vs in registry.groups().items() if g and vs]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    """``/apis/{group}``; ``versions`` as ``ResourceRegistry.groups()`` gives them, preferred first."""
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _types_in(registry: ResourceRegistry, group: str, version: str) -> list[ResourceType]:
    return sorted(
        (rt for rt in registry if rt.group == group and rt.version == version), key=lambda rt: rt.plural
    )


def _subresource_kind(rt: ResourceType, name: str) -> tuple[str, str, str, tuple[str, ...]]:
    sub = _SUBRESOURCES.get(name, _Subresource(("get",)))
    if sub.kind is None:
        return rt.group, rt.version, rt.kind, sub.verbs
    return sub.group or "", sub.version or "", sub.kind, sub.verbs


def _has_storage(rt: ResourceType) -> bool:
    return rt.group_resource not in VIRTUAL_KINDS


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """``/api/v1`` or ``/apis/{g}/{v}``: resources sorted by name, each followed by its subresources."""
    types = _types_in(registry, group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        if _has_storage(rt):
            entry["storageVersionHash"] = storage_version_hash(
                rt.group, rt.storage_version or rt.version, rt.kind
            )
        resources.append(entry)
        for name in sorted(rt.subresources):
            sub_group, sub_version, sub_kind, verbs = _subresource_kind(rt, name)
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{name}",
                "singularName": "",
                "namespaced": rt.namespaced,
            }
            # The real server names group/version only when they differ from the list's own.
            if (sub_group, sub_version) != (group, version):
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            sub_entry["kind"] = sub_kind
            sub_entry["verbs"] = list(verbs)
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subresources = []
    for name in sorted(rt.subresources):
        sub_group, sub_version, sub_kind, verbs = _subresource_kind(rt, name)
        subresources.append(
            {
                "subresource": name,
                "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                "verbs": list(verbs),
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated_discovery(
    registry: ResourceRegistry, *, legacy: bool, profile: DiscoveryProfile = "aggregated-v2"
) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (``legacy=True``: the core group only) or ``/apis``.

    v2beta1 (removed from real servers in 1.33, still asked for by older kubectl) has the same shape.
    """
    api_version = f"{AGGREGATED_GROUP}/{'v2beta1' if profile == 'aggregated-v2beta1' else 'v2'}"
    items = []
    for group, versions in registry.groups().items():
        if (group == "") != legacy or not versions:
            continue
        version_entries = [
            {
                "version": version,
                "resources": [_aggregated_resource(rt) for rt in _types_in(registry, group, version)],
                "freshness": "Current",
            }
            for version in versions
        ]
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if group:
            metadata["name"] = group
        items.append({"metadata": metadata, "versions": version_entries})
    return {"kind": AGGREGATED_KIND, "apiVersion": api_version, "metadata": {}, "items": items}


def _media_ranges(accept_header: str) -> list[tuple[float, int, str, dict[str, str]]]:
    ranges = []
    for position, part in enumerate(accept_header.split(",")):
        media, *raw_params = (piece.strip() for piece in part.split(";"))
        params: dict[str, str] = {}
        for raw in raw_params:
            key, _, value = raw.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 0.0
        ranges.append((quality, position, media.lower(), params))
    # Highest quality first; equal qualities keep the client's order, as the real negotiator does.
    ranges.sort(key=lambda r: (-r[0], r[1]))
    return ranges


def negotiate_discovery(accept_header: str | None) -> DiscoveryProfile:
    """Which format to answer ``/api`` and ``/apis`` with, from the request's Accept header."""
    for quality, _, media, params in _media_ranges(accept_header or ""):
        if quality <= 0:
            continue
        if (
            media == "application/json"
            and params.get("g") == AGGREGATED_GROUP
            and params.get("as") == AGGREGATED_KIND
        ):
            if params.get("v") == "v2":
                return "aggregated-v2"
            if params.get("v") == "v2beta1":
                return "aggregated-v2beta1"
            continue
        if media in ("application/json", "application/*", "*/*") and not params.get("as"):
            return "legacy"
    return "legacy"


def aggregated_content_type(profile: DiscoveryProfile) -> str:
    """The Content-Type that tells client-go's ``ContentTypeIsGVK`` which format the body is in."""
    if profile == "legacy":
        return "application/json"
    version = "v2" if profile == "aggregated-v2" else "v2beta1"
    return f"application/json;g={AGGREGATED_GROUP};v={version};as={AGGREGATED_KIND}"
