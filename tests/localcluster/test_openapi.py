"""OpenAPI documents and strict field validation.

The checks on the documents restate, in Python, the decisions kubectl 1.37 takes on them (cli-runtime's
``queryParamVerifierV3`` and kubectl apply's ``gvkSupportsPatchOpenAPIV3``), so a document that would
make kubectl fall back to client-side validation or to our incomplete patch metadata fails here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver import openapi
from devservers_sdk.localcluster.apiserver.resources import ResourceRegistry, ResourceType, types_from_crd

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "devservers.devservers.example.com"},
    "spec": {
        "group": "devservers.example.com",
        "scope": "Namespaced",
        "names": {"kind": "DevServer", "plural": "devservers", "singular": "devserver", "shortNames": ["ds"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas"}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {
                                    "image": {"type": "string"},
                                    "replicas": {"type": "integer"},
                                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p",
        "namespace": "default",
        "labels": {"app": "x"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u", "controller": True}],
        "managedFields": [
            {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}
        ],
    },
    "spec": {
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "command": ["sh"],
                "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "100m"}},
                "readinessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 5},
                "volumeMounts": [{"name": "v", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}],
        "nodeSelector": {"gpu": "true"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}
                    ]
                }
            }
        },
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.0.0.1"},
}


@pytest.fixture
def registry() -> ResourceRegistry:
    registry = ResourceRegistry.with_builtins()
    registry.set_crd_types("devservers.example.com", "devservers", types_from_crd(CRD))
    return registry


def _crd_type(registry: ResourceRegistry) -> ResourceType:
    rt = registry.get("devservers.example.com", "v1", "devservers")
    assert rt is not None
    return rt


# --- built-in schemas ------------------------------------------------------------------------------


def test_builtin_schema_of_a_kind_and_its_nested_types() -> None:
    pod = openapi.builtin_schema("", "v1", "Pod")
    assert pod is not None
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert set(pod["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}
    spec = openapi.resolve_ref(pod["properties"]["spec"]["allOf"][0]["$ref"])
    assert spec["required"] == ["containers"]
    containers = spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert openapi.resolve_ref(containers["items"]["$ref"])["properties"]["image"]["type"] == "string"


def test_builtin_schema_names_mirror_the_real_documents() -> None:
    components = openapi.builtin_components()
    for name in (
        "io.k8s.api.core.v1.PodTemplateSpec",
        "io.k8s.api.apps.v1.DeploymentSpec",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        "io.k8s.api.admissionregistration.v1.ServiceReference",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ServiceReference",
        "io.k8s.api.core.v1.Event",
        "io.k8s.api.events.v1.Event",
    ):
        assert name in components, name


def test_every_builtin_kind_and_list_has_a_schema(registry: ResourceRegistry) -> None:
    for rt in registry:
        if rt.builtin:
            assert openapi.builtin_schema(rt.group, rt.version, rt.kind) is not None, rt.kind
            if "list" in rt.verbs:
                assert openapi.builtin_schema(rt.group, rt.version, rt.list_kind) is not None, rt.list_kind


def test_builtin_schema_is_a_copy_and_unknown_kinds_have_none() -> None:
    schema = openapi.builtin_schema("", "v1", "ConfigMap")
    schema["properties"].clear()
    assert openapi.builtin_schema("", "v1", "ConfigMap")["properties"]
    assert openapi.builtin_schema("batch", "v1", "Job") is None


def test_every_builtin_ref_resolves() -> None:
    components = openapi.builtin_components()
    refs = {ref for schema in components.values() for ref in openapi._refs(schema)}
    assert refs <= set(components)


def test_builtin_schemas_file_stays_small() -> None:
    assert openapi._SCHEMAS_FILE.stat().st_size < 1_500_000


# --- strict field validation -------------------------------------------------------------------------


def test_a_realistic_pod_has_no_unknown_fields() -> None:
    assert openapi.unknown_fields("", "v1", "Pod", POD) == []


def test_unknown_fields_are_reported_with_the_real_paths_in_document_order() -> None:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["imagee"] = "busybox"
    pod["metadata"]["labelz"] = {}
    pod["spec"]["volumes"][0]["emptyDir"]["medim"] = "Memory"
    pod["extra"] = 1
    assert openapi.unknown_fields("", "v1", "Pod", pod) == [
        "metadata.labelz",
        "spec.containers[0].imagee",
        "spec.volumes[0].emptyDir.medim",
        "extra",
    ]


def test_strict_decoding_error_message() -> None:
    assert openapi.strict_decoding_error(["spec.containers[0].imagee"]) == (
        'strict decoding error: unknown field "spec.containers[0].imagee"'
    )
    assert (
        openapi.strict_decoding_error(["a", "b.c"])
        == 'strict decoding error: unknown field "a", unknown field "b.c"'
    )


def test_unknown_fields_in_a_deployment_pod_template() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "i", "imagePullPolicy": "Always", "tty": True, "bogus": 1}
                    ]
                },
            },
        },
    }
    assert openapi.unknown_fields("apps", "v1", "Deployment", deployment) == [
        "spec.template.spec.containers[0].bogus"
    ]


def test_opaque_and_map_fields_accept_anything_they_should() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": "dg=="},
        "stringData": {"a": "b"},
    }
    assert openapi.unknown_fields("", "v1", "Secret", secret) == []
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "r"},
        "revision": 1,
        "data": {"spec": {"anything": {"goes": True}}},
    }
    assert openapi.unknown_fields("apps", "v1", "ControllerRevision", revision) == []


def test_values_of_the_wrong_type_are_not_unknown_fields() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": None,
        "spec": {"containers": "oops", "volumes": [None, 3]},
    }
    assert openapi.unknown_fields("", "v1", "Pod", pod) == []


def test_a_crd_object_with_a_full_schema_has_no_unknown_fields() -> None:
    crd = copy.deepcopy(CRD)
    version = crd["spec"]["versions"][0]
    version["additionalPrinterColumns"] = [{"name": "Image", "type": "string", "jsonPath": ".spec.image"}]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.replicas >= 0", "message": "no"}
    ]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"]["default"] = "x"
    crd["status"] = {
        "conditions": [{"type": "Established", "status": "True"}],
        "acceptedNames": {"kind": "DevServer", "plural": "devservers"},
    }
    assert openapi.unknown_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition", crd) == []
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validation"] = []
    assert openapi.unknown_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition", crd) == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.x-kubernetes-validation"
    ]


def test_kinds_without_a_schema_have_nothing_to_report() -> None:
    assert openapi.unknown_fields("devservers.example.com", "v1", "DevServer", {"spec": {"x": 1}}) == []


def test_unknown_fields_in_a_structural_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pruned": {"type": "object"},
            "kept": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "anything": {},
            "map": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
            "free": {"type": "object", "additionalProperties": True},
            "embedded": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object"}},
            },
        },
    }
    obj = {
        "pruned": {"x": 1},
        "kept": {"y": 2},
        "anything": {"z": 3},
        "map": {"k": {"a": "1", "b": "2"}},
        "free": {"w": 1},
        "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "n", "nam": "m"}, "oops": 1},
    }
    assert openapi.unknown_fields_in_schema(schema, obj) == [
        "pruned.x",
        "map.k.b",
        "embedded.metadata.nam",
        "embedded.oops",
    ]


# --- v3 documents ------------------------------------------------------------------------------------


def _patch_operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["patch"] for item in document["paths"].values() if "patch" in item]


def _kubectl_sends_field_validation(document: dict[str, Any], group: str, version: str, kind: str) -> bool:
    """cli-runtime queryParamVerifierV3.supportsQueryParamV3: the first PATCH op for the GVK decides."""
    for op in _patch_operations(document):
        if op.get("x-kubernetes-group-version-kind") == {"group": group, "version": version, "kind": kind}:
            return any(p.get("name") == "fieldValidation" for p in op.get("parameters", []))
    return False


def _kubectl_uses_openapi_for_strategic_merge(
    document: dict[str, Any], group: str, version: str, kind: str
) -> bool:
    """kubectl apply's gvkSupportsPatchOpenAPIV3."""
    for op in _patch_operations(document):
        if op.get("x-kubernetes-group-version-kind") == {"group": group, "version": version, "kind": kind}:
            return "application/strategic-merge-patch+json" in op.get("requestBody", {}).get("content", {})
    return False


def test_kubectl_sends_field_validation_for_every_patchable_kind(registry: ResourceRegistry) -> None:
    for group, versions in registry.groups().items():
        for version in versions:
            document = openapi.openapi_v3_document(registry, group, version)
            assert document is not None
            for rt in registry:
                if (rt.group, rt.version) != (group, version) or "patch" not in rt.verbs:
                    continue
                assert _kubectl_sends_field_validation(document, group, version, rt.kind), rt.kind
                # Every PATCH op of the kind must agree: Go iterates the paths map in random order.
                gvk = {"group": group, "version": version, "kind": rt.kind}
                for op in _patch_operations(document):
                    if op["x-kubernetes-group-version-kind"] == gvk:
                        assert "fieldValidation" in {p["name"] for p in op["parameters"]}
                        assert "dryRun" in {p["name"] for p in op["parameters"]}
                assert not _kubectl_uses_openapi_for_strategic_merge(document, group, version, rt.kind)


def test_write_operations_accept_dry_run_and_field_validation(registry: ResourceRegistry) -> None:
    document = openapi.openapi_v3_document(registry, "apps", "v1")
    item = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert {p["name"] for p in item["post"]["parameters"]} >= {"dryRun", "fieldManager", "fieldValidation"}
    assert item["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    named = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {p["name"] for p in named["put"]["parameters"]} >= {"dryRun", "fieldValidation"}
    assert {p["name"] for p in named["patch"]["parameters"]} >= {"dryRun", "fieldValidation", "force"}
    assert named["patch"]["operationId"] == "patchAppsV1NamespacedDeployment"
    assert [p["name"] for p in named["parameters"]] == ["name", "namespace", "pretty"]
    scale = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    assert "/apis/apps/v1/deployments" in document["paths"]


def test_cluster_scoped_and_create_only_paths(registry: ResourceRegistry) -> None:
    core = openapi.openapi_v3_document(registry, "", "v1")
    assert "patch" in core["paths"]["/api/v1/namespaces/{name}"]
    assert (
        core["paths"]["/api/v1/namespaces/{name}/status"]["patch"]["operationId"]
        == "patchCoreV1NamespaceStatus"
    )
    reviews = openapi.openapi_v3_document(registry, "authentication.k8s.io", "v1")
    assert list(reviews["paths"]) == ["/apis/authentication.k8s.io/v1/selfsubjectreviews"]
    assert set(reviews["paths"]["/apis/authentication.k8s.io/v1/selfsubjectreviews"]) == {
        "post",
        "parameters",
    }


def test_documents_are_self_contained(registry: ResourceRegistry) -> None:
    for group, versions in registry.groups().items():
        for version in versions:
            document = openapi.openapi_v3_document(registry, group, version)
            schemas = document["components"]["schemas"]
            assert set(openapi._refs(document)) <= set(schemas), (group, version)
            for rt in registry:
                if (rt.group, rt.version) == (group, version):
                    gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
                    assert any(
                        gvk in s.get("x-kubernetes-group-version-kind", []) for s in schemas.values()
                    ), rt.kind
            json.dumps(document)


def test_crd_document_wraps_the_schema_with_object_meta(registry: ResourceRegistry) -> None:
    document = openapi.openapi_v3_document(registry, "devservers.example.com", "v1")
    schemas = document["components"]["schemas"]
    devserver = schemas["com.example.devservers.v1.DevServer"]
    assert devserver["x-kubernetes-group-version-kind"] == [
        {"group": "devservers.example.com", "kind": "DevServer", "version": "v1"}
    ]
    assert devserver["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert devserver["properties"]["spec"]["required"] == ["image"]
    assert {"apiVersion", "kind"} <= set(devserver["properties"])
    listing = schemas["com.example.devservers.v1.DevServerList"]
    assert listing["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/com.example.devservers.v1.DevServer"
    }
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    paths = document["paths"]
    base = "/apis/devservers.example.com/v1/namespaces/{namespace}/devservers/{name}"
    assert {base, f"{base}/status", f"{base}/scale"} <= set(paths)
    # The registry's CRD type is not mutated by publishing it.
    assert "metadata" not in _crd_type(registry).schema["properties"]


def test_unserved_group_version_has_no_document(registry: ResourceRegistry) -> None:
    assert openapi.openapi_v3_document(registry, "batch", "v1") is None


def test_index_names_every_group_version_with_a_content_hash(registry: ResourceRegistry) -> None:
    index = openapi.openapi_v3_index(registry)
    expected = {
        f"apis/{g}/{v}" if g else f"api/{v}" for g, versions in registry.groups().items() for v in versions
    }
    assert set(index["paths"]) == expected
    url = index["paths"]["apis/devservers.example.com/v1"]["serverRelativeURL"]
    document = openapi.openapi_v3_document(registry, "devservers.example.com", "v1")
    digest = openapi.document_hash(openapi.serialize(document))
    assert url == f"/openapi/v3/apis/devservers.example.com/v1?hash={digest}"


def test_hash_changes_when_a_crd_schema_changes(registry: ResourceRegistry) -> None:
    before = openapi.openapi_v3_index(registry)["paths"]
    crd = copy.deepcopy(CRD)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["gpus"] = {
        "type": "integer"
    }
    registry.set_crd_types("devservers.example.com", "devservers", types_from_crd(crd))
    after = openapi.openapi_v3_index(registry)["paths"]
    assert after["apis/devservers.example.com/v1"] != before["apis/devservers.example.com/v1"]
    assert after["api/v1"] == before["api/v1"]


def test_cache_serves_the_same_bytes_and_invalidates_on_registry_change(registry: ResourceRegistry) -> None:
    cache = openapi.OpenAPIV3Cache(registry)
    body, digest = cache.document("", "v1")
    assert json.loads(body) == openapi.openapi_v3_document(registry, "", "v1")
    assert json.loads(cache.index()) == openapi.openapi_v3_index(registry)
    assert cache.document("batch", "v1") is None
    registry.set_crd_types("devservers.example.com", "devservers", [])
    assert "apis/devservers.example.com/v1" not in json.loads(cache.index())["paths"]
    assert cache.document("", "v1") == (body, digest)


# --- v2 -----------------------------------------------------------------------------------------------


def _decode_proto(data: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    index = 0
    while index < len(data):
        key = data[index]
        index += 1
        assert key & 7 == 2
        length, shift = 0, 0
        while True:
            byte = data[index]
            index += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        fields[key >> 3] = data[index : index + length]
        index += length
    return fields


def test_openapi_v2_is_a_valid_empty_document() -> None:
    document = _decode_proto(openapi.openapi_v2_protobuf())
    assert document[1] == b"2.0"
    info = _decode_proto(document[2])
    assert info[1] == b"Kubernetes"
    assert info[2].decode().startswith("v1.")
    assert set(document) == {1, 2}
    # Go's mime.ParseMediaType rejects "@", so the response must use the dotted form.
    assert "@" not in openapi.OPENAPI_V2_PROTOBUF
    assert openapi.OPENAPI_V2_PROTOBUF_ACCEPT.replace("@", ".") == openapi.OPENAPI_V2_PROTOBUF
