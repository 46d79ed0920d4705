"""Discovery documents: the shapes kubectl's RESTMapper, kopf and the Python client parse.

Expected values (storage version hashes, subresource kinds, Accept headers) are those of a real
kube-apiserver and of kubectl 1.37's requests, recorded while checking these documents against
``kubectl`` (see the module docstring of ``discovery``).
"""

from __future__ import annotations

from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver import discovery
from devservers_sdk.localcluster.apiserver.resources import ResourceRegistry, types_from_crd

# What kubectl 1.37 sends on /api and /apis.
KUBECTL_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"

DEVSERVER_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "devservers.devservers.example.com"},
    "spec": {
        "group": "devservers.example.com",
        "scope": "Namespaced",
        "names": {
            "kind": "DevServer",
            "plural": "devservers",
            "singular": "devserver",
            "shortNames": ["ds"],
            "categories": ["all", "devservers"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": False,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            },
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas"}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            },
        ],
    },
}


@pytest.fixture
def registry() -> ResourceRegistry:
    registry = ResourceRegistry.with_builtins()
    registry.set_crd_types("devservers.example.com", "devservers", types_from_crd(DEVSERVER_CRD))
    return registry


def _resource(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in document["resources"] if r["name"] == name)


def test_version_info_parses_as_the_python_client_model_and_is_within_kubectl_skew() -> None:
    from kubernetes.client.models import VersionInfo

    info = discovery.version_info()
    model = VersionInfo.from_dict(info)
    assert model.git_version.startswith(f"v{info['major']}.{info['minor']}.")
    # kubectl 1.37 warns beyond one minor of skew.
    assert (info["major"], info["minor"]) == ("1", "37")


def test_api_versions_names_the_server_address_without_scheme() -> None:
    document = discovery.api_versions("https://127.0.0.1:6443/")
    assert document["kind"] == "APIVersions"
    assert document["versions"] == ["v1"]
    assert document["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
    ]


def test_api_group_list_has_named_groups_with_the_storage_version_preferred(
    registry: ResourceRegistry,
) -> None:
    document = discovery.api_group_list(registry)
    groups = {g["name"]: g for g in document["groups"]}
    assert "" not in groups
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    devservers = groups["devservers.example.com"]
    assert [v["version"] for v in devservers["versions"]] == ["v1", "v1alpha1"]
    assert devservers["preferredVersion"]["version"] == "v1"


def test_api_group(registry: ResourceRegistry) -> None:
    document = discovery.api_group("devservers.example.com", registry.groups()["devservers.example.com"])
    assert document["kind"] == "APIGroup"
    assert document["preferredVersion"] == {"groupVersion": "devservers.example.com/v1", "version": "v1"}


def test_core_resource_list_matches_the_real_server(registry: ResourceRegistry) -> None:
    document = discovery.api_resource_list(registry, "", "v1")
    assert document is not None
    assert document["groupVersion"] == "v1"
    pods = _resource(document, "pods")
    assert pods == {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"],
        "categories": ["all"],
        "storageVersionHash": "xPOwRZ+Yhw8=",
    }
    assert _resource(document, "pods/exec") == {
        "name": "pods/exec",
        "singularName": "",
        "namespaced": True,
        "kind": "PodExecOptions",
        "verbs": ["create", "get"],
    }
    assert _resource(document, "pods/log")["kind"] == "Pod"
    eviction = _resource(document, "pods/eviction")
    assert (eviction["group"], eviction["version"], eviction["kind"]) == ("policy", "v1", "Eviction")
    assert _resource(document, "pods/status")["verbs"] == ["get", "patch", "update"]
    token = _resource(document, "serviceaccounts/token")
    assert (token["group"], token["kind"]) == ("authentication.k8s.io", "TokenRequest")
    assert _resource(document, "namespaces")["namespaced"] is False


def test_resources_are_sorted_with_subresources_after_their_parent(registry: ResourceRegistry) -> None:
    names = [r["name"] for r in discovery.api_resource_list(registry, "", "v1")["resources"]]
    parents = [n for n in names if "/" not in n]
    assert parents == sorted(parents)
    for index, name in enumerate(names):
        if "/" in name:
            parent = name.split("/")[0]
            assert names.index(parent) < index
            assert all(n.split("/")[0] == parent for n in names[names.index(parent) : index + 1])


def test_scale_subresource_answers_autoscaling_scale(registry: ResourceRegistry) -> None:
    document = discovery.api_resource_list(registry, "apps", "v1")
    scale = _resource(document, "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert _resource(document, "deployments")["storageVersionHash"] == "8aSe+NMegvE="
    assert "group" not in _resource(document, "deployments/status")


def test_review_kinds_have_no_storage(registry: ResourceRegistry) -> None:
    reviews = _resource(
        discovery.api_resource_list(registry, "authentication.k8s.io", "v1"), "selfsubjectreviews"
    )
    assert reviews["verbs"] == ["create"]
    assert "storageVersionHash" not in reviews


def test_crd_resources_carry_names_categories_and_subresources(registry: ResourceRegistry) -> None:
    document = discovery.api_resource_list(registry, "devservers.example.com", "v1")
    devservers = _resource(document, "devservers")
    assert devservers["shortNames"] == ["ds"]
    assert devservers["categories"] == ["all", "devservers"]
    assert devservers["singularName"] == "devserver"
    assert devservers["storageVersionHash"] == discovery.storage_version_hash(
        "devservers.example.com", "v1", "DevServer"
    )
    assert _resource(document, "devservers/status")["kind"] == "DevServer"
    assert _resource(document, "devservers/scale")["kind"] == "Scale"
    # A served non-storage version hashes the storage version, as the real server does.
    older = discovery.api_resource_list(registry, "devservers.example.com", "v1alpha1")
    assert _resource(older, "devservers")["storageVersionHash"] == devservers["storageVersionHash"]


def test_unserved_group_version_has_no_resource_list(registry: ResourceRegistry) -> None:
    assert discovery.api_resource_list(registry, "batch", "v1") is None
    assert discovery.api_resource_list(registry, "", "v2") is None


def test_documents_parse_as_python_client_models(registry: ResourceRegistry) -> None:
    from kubernetes.client.models import V1APIGroupList, V1APIResourceList, V1APIVersions

    resources = V1APIResourceList.from_dict(discovery.api_resource_list(registry, "", "v1"))
    assert any(r.name == "pods/exec" for r in resources.resources)
    groups = V1APIGroupList.from_dict(discovery.api_group_list(registry))
    assert any(g.name == "devservers.example.com" for g in groups.groups)
    V1APIVersions.from_dict(discovery.api_versions("127.0.0.1:1"))


def test_aggregated_core_document(registry: ResourceRegistry) -> None:
    document = discovery.aggregated_discovery(registry, legacy=True)
    assert document["kind"] == "APIGroupDiscoveryList"
    assert document["apiVersion"] == "apidiscovery.k8s.io/v2"
    [core] = document["items"]
    assert "name" not in core["metadata"]
    [v1] = core["versions"]
    assert v1["version"] == "v1"
    assert v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    eviction = next(s for s in pods["subresources"] if s["subresource"] == "eviction")
    assert eviction["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}


def test_aggregated_apis_document_lists_versions_preferred_first(registry: ResourceRegistry) -> None:
    document = discovery.aggregated_discovery(registry, legacy=False, profile="aggregated-v2")
    names = [item["metadata"]["name"] for item in document["items"]]
    assert "" not in names
    devservers = document["items"][names.index("devservers.example.com")]
    assert [v["version"] for v in devservers["versions"]] == ["v1", "v1alpha1"]
    [resource] = devservers["versions"][0]["resources"]
    assert resource["shortNames"] == ["ds"]
    assert resource["categories"] == ["all", "devservers"]
    assert {s["subresource"] for s in resource["subresources"]} == {"status", "scale"}
    namespaces = discovery.aggregated_discovery(registry, legacy=True)["items"][0]["versions"][0]["resources"]
    assert next(r for r in namespaces if r["resource"] == "namespaces")["scope"] == "Cluster"


def test_aggregated_v2beta1_differs_only_in_api_version(registry: ResourceRegistry) -> None:
    v2 = discovery.aggregated_discovery(registry, legacy=False)
    beta = discovery.aggregated_discovery(registry, legacy=False, profile="aggregated-v2beta1")
    assert beta["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert beta["items"] == v2["items"]


def _split_like_client_go(*documents: dict[str, Any]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """What client-go's SplitGroupsAndResources makes of aggregated documents, as comparable tuples."""
    result: dict[str, dict[str, tuple[Any, ...]]] = {}
    for document in documents:
        for item in document["items"]:
            group = item["metadata"].get("name", "")
            for version in item["versions"]:
                gv = f"{group}/{version['version']}" if group else version["version"]
                entries = result.setdefault(gv, {})
                for r in version["resources"]:
                    kind = r["responseKind"]
                    entries[r["resource"]] = (kind["kind"], r["scope"] == "Namespaced", tuple(r["verbs"]))
                    for sub in r.get("subresources", []):
                        entries[f"{r['resource']}/{sub['subresource']}"] = (
                            sub["responseKind"]["kind"],
                            r["scope"] == "Namespaced",
                            tuple(sub["verbs"]),
                        )
    return result


def test_aggregated_and_legacy_discovery_describe_the_same_resources(registry: ResourceRegistry) -> None:
    aggregated = _split_like_client_go(
        discovery.aggregated_discovery(registry, legacy=True),
        discovery.aggregated_discovery(registry, legacy=False),
    )
    legacy: dict[str, dict[str, tuple[Any, ...]]] = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = discovery.api_resource_list(registry, group, version)
            legacy[document["groupVersion"]] = {
                r["name"]: (r["kind"], r["namespaced"], tuple(r["verbs"])) for r in document["resources"]
            }
    assert aggregated == legacy


@pytest.mark.parametrize(
    ("accept", "profile"),
    [
        (KUBECTL_ACCEPT, "aggregated-v2"),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;profile=nopeer,"
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            "aggregated-v2",
        ),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            "aggregated-v2beta1",
        ),
        ("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io", "aggregated-v2"),
        ("application/json", "legacy"),
        ("application/json, */*", "legacy"),
        ("*/*", "legacy"),
        ("", "legacy"),
        (None, "legacy"),
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", "legacy"),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json",
            "legacy",
        ),
        (
            "application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "aggregated-v2",
        ),
    ],
)
def test_negotiate_discovery(accept: str | None, profile: str) -> None:
    assert discovery.negotiate_discovery(accept) == profile


def test_aggregated_content_type_is_what_client_go_recognises() -> None:
    def client_go_sees(content_type: str) -> tuple[str, dict[str, str]]:
        media, *params = (p.strip() for p in content_type.split(";"))
        return media, dict(p.split("=", 1) for p in params)

    media, params = client_go_sees(discovery.aggregated_content_type("aggregated-v2"))
    assert media == "application/json"
    assert params == {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}
    assert client_go_sees(discovery.aggregated_content_type("aggregated-v2beta1"))[1]["v"] == "v2beta1"
    assert discovery.aggregated_content_type("legacy") == "application/json"


def test_removed_crd_disappears_from_discovery(registry: ResourceRegistry) -> None:
    registry.set_crd_types("devservers.example.com", "devservers", [])
    assert "devservers.example.com" not in {g["name"] for g in discovery.api_group_list(registry)["groups"]}
    assert discovery.api_resource_list(registry, "devservers.example.com", "v1") is None
    names = [
        i["metadata"].get("name") for i in discovery.aggregated_discovery(registry, legacy=False)["items"]
    ]
    assert "devservers.example.com" not in names
