"""Conformance through the official client: CustomResourceDefinitions (schema validation, defaulting,
pruning, field validation modes, several served versions, deletion)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conformance_support import (
    Clients,
    assert_status,
    cause_fields,
    crd_body,
    create_crd,
    delete_crd,
    gone,
    raises_status,
    unique_group,
    wait_for,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["replicas"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": True},
                "ratio": {"type": "number"},
                "enabled": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string", "nullable": True},
                "plain": {"type": "string"},
                "limits": {
                    "type": "object",
                    "default": {},
                    "properties": {"cpu": {"type": "integer", "default": 2}},
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def knobs(k8s: Clients) -> Iterator[dict[str, str]]:
    group = unique_group()
    body = crd_body(group, "Knob", SCHEMA, subresources={"status": {}})
    create_crd(k8s, body)
    yield {"group": group, "version": "v1", "plural": "knobs"}
    delete_crd(k8s, body["metadata"]["name"])


def knob(obj_name: str, group: str, /, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1",
        "kind": "Knob",
        "metadata": {"name": obj_name},
        "spec": {"replicas": 1, **spec},
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"replicas": "three"}, [("spec.replicas", "FieldValueTypeInvalid")]),
        # kube-openapi also checks the number against the integer's range, and names no field for that.
        ({"replicas": 1.5}, [("spec.replicas", "FieldValueTypeInvalid"), ("<nil>", "FieldValueInvalid")]),
        ({"replicas": -1}, [("spec.replicas", "FieldValueInvalid")]),
        ({"replicas": 11}, [("spec.replicas", "FieldValueInvalid")]),
        ({"mode": "slow"}, [("spec.mode", "FieldValueNotSupported")]),
        ({"name": "toolong"}, [("spec.name", "FieldValueTooLong")]),
        ({"name": "ABC"}, [("spec.name", "FieldValueInvalid")]),
        ({"port": True}, [("spec.port", "FieldValueTypeInvalid")]),
        ({"port": 1.5}, [("spec.port", "FieldValueTypeInvalid")]),
        ({"ratio": "high"}, [("spec.ratio", "FieldValueTypeInvalid")]),
        ({"enabled": "yes"}, [("spec.enabled", "FieldValueTypeInvalid")]),
        ({"tags": ["a", 1]}, [("spec.tags[1]", "FieldValueTypeInvalid")]),
        ({"tags": "a"}, [("spec.tags", "FieldValueTypeInvalid")]),
        ({"limits": {"cpu": "x"}}, [("spec.limits.cpu", "FieldValueTypeInvalid")]),
    ],
)
def test_schema_validation_names_the_field(
    k8s: Clients,
    namespace: str,
    knobs: dict[str, str],
    spec: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    with raises_status(422, "Invalid") as status:
        k8s.custom.create_namespaced_custom_object(
            body=knob("bad", knobs["group"], **spec), namespace=namespace, **knobs
        )
    causes = status["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == expected, causes
    assert status["details"]["name"] == "bad" and status["details"]["kind"] == "Knob"
    assert gone(k8s.custom.get_namespaced_custom_object, name="bad", namespace=namespace, **knobs)


def test_required_field(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    body = knob("req", knobs["group"])
    body["spec"] = {"mode": "fast"}
    with raises_status(422, "Invalid") as status:
        k8s.custom.create_namespaced_custom_object(body=body, namespace=namespace, **knobs)
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [
        ("spec.replicas", "FieldValueRequired")
    ]
    assert "Required value" in status["message"]


def test_several_problems_are_reported_together(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    with raises_status(422, "Invalid") as status:
        k8s.custom.create_namespaced_custom_object(
            body=knob("many", knobs["group"], replicas=99, mode="x", name="UPPERCASE"),
            namespace=namespace,
            **knobs,
        )
    assert sorted(set(cause_fields(status))) == ["spec.mode", "spec.name", "spec.replicas"]


def test_valid_values_defaulting_and_nullable(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    created = k8s.custom.create_namespaced_custom_object(
        body=knob(
            "ok", knobs["group"], replicas=0, name="abc", port="http", note=None, plain=None, tags=[], ratio=1
        ),
        namespace=namespace,
        **knobs,
    )
    spec = created["spec"]
    assert spec["mode"] == "safe"  # default
    assert spec["limits"] == {"cpu": 2}  # defaults apply inside a defaulted object
    assert spec["note"] is None and "note" in spec  # nullable keeps an explicit null
    assert "plain" not in spec  # a null for a non-nullable field is dropped
    assert spec["port"] == "http" and spec["ratio"] == 1
    other = k8s.custom.create_namespaced_custom_object(
        body=knob("ok2", knobs["group"], port=8080, limits={"cpu": 4}), namespace=namespace, **knobs
    )
    assert other["spec"]["port"] == 8080 and other["spec"]["limits"] == {"cpu": 4}
    # Defaults are applied on update too, when a field is removed.
    updated = k8s.custom.patch_namespaced_custom_object(
        name="ok", namespace=namespace, body={"spec": {"mode": None}}, **knobs
    )
    assert updated["spec"]["mode"] == "safe"
    stored = k8s.custom.get_namespaced_custom_object(name="ok", namespace=namespace, **knobs)
    assert stored["spec"] == updated["spec"]


def test_pruning_and_preserved_unknown_fields(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    body = knob("prune", knobs["group"], junk={"deep": 1}, free={"anything": {"goes": [1, "two"]}})
    body["topLevelJunk"] = True
    body["metadata"]["junkMeta"] = "x"
    created = k8s.custom.create_namespaced_custom_object(
        body=body, namespace=namespace, field_validation="Ignore", **knobs
    )
    assert "junk" not in created["spec"] and "topLevelJunk" not in created
    assert "junkMeta" not in created["metadata"]
    assert created["spec"]["free"] == {"anything": {"goes": [1, "two"]}}
    stored = k8s.custom.get_namespaced_custom_object(name="prune", namespace=namespace, **knobs)
    assert stored["spec"] == created["spec"]


def test_field_validation_strict(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    with raises_status(400, "BadRequest") as status:
        k8s.custom.create_namespaced_custom_object(
            body=knob("strict", knobs["group"], junk=1),
            namespace=namespace,
            field_validation="Strict",
            **knobs,
        )
    assert 'unknown field "spec.junk"' in status["message"]
    assert gone(k8s.custom.get_namespaced_custom_object, name="strict", namespace=namespace, **knobs)
    created = k8s.custom.create_namespaced_custom_object(
        body=knob("strict", knobs["group"]), namespace=namespace, field_validation="Strict", **knobs
    )
    # A patch is decoded strictly once applied: the server blames the patch (422 on "patch"), not a 400.
    with raises_status(422, "Invalid") as status:
        k8s.custom.patch_namespaced_custom_object(
            name="strict",
            namespace=namespace,
            body={"spec": {"other": 2}},
            field_validation="Strict",
            **knobs,
        )
    assert cause_fields(status) == ["patch"]
    assert status["message"].endswith('strict decoding error: unknown field "spec.other"'), status["message"]
    current = k8s.custom.get_namespaced_custom_object(name="strict", namespace=namespace, **knobs)
    assert current["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    # Unknown metadata fields count too: metadata is decoded as an ObjectMeta.
    body = knob("strict-meta", knobs["group"])
    body["metadata"]["junkMeta"] = 1
    with raises_status(400, "BadRequest") as status:
        k8s.custom.create_namespaced_custom_object(
            body=body, namespace=namespace, field_validation="Strict", **knobs
        )
    assert 'unknown field "metadata.junkMeta"' in status["message"]
    # Built-in kinds are checked against their schema the same way.
    response = k8s.raw.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Strict",
        {"metadata": {"name": "x", "labelz": {}}, "bogus": 1},
    )
    message = assert_status(response.json, 400, "BadRequest")["message"]
    assert 'unknown field "bogus"' in message and 'unknown field "metadata.labelz"' in message
    assert gone(k8s.core.read_namespaced_config_map, "x", namespace)


def test_unknown_fields_of_builtin_kinds_are_dropped(k8s: Clients, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    response = k8s.raw.request(
        "POST", path, {"metadata": {"name": "loose", "labelz": {"a": "b"}}, "bogus": 1, "data": {"a": "1"}}
    )
    assert response.status == 201
    assert "unknown field" in response.header("Warning") and "bogus" in response.header("Warning")
    for answer in (response.json, k8s.raw.request("GET", f"{path}/loose").json):
        assert "bogus" not in answer and "labelz" not in answer["metadata"], answer
        assert answer["data"] == {"a": "1"}
    response = k8s.raw.request(
        "PATCH",
        f"{path}/loose",
        {"spec": {"x": 1}, "data": {"b": "2"}},
        content_type="application/merge-patch+json",
    )
    assert response.status == 200 and "spec" in response.header("Warning")
    assert "spec" not in response.json and response.json["data"] == {"a": "1", "b": "2"}


def test_field_validation_warn(k8s: Clients, namespace: str, knobs: dict[str, str]) -> None:
    path = f"/apis/{knobs['group']}/v1/namespaces/{namespace}/knobs?fieldValidation=Warn"
    response = k8s.raw.request("POST", path, knob("warned", knobs["group"], junk=1))
    assert response.status == 201
    assert 'unknown field \\"spec.junk\\"' in response.header(
        "Warning"
    ) or 'unknown field "spec.junk"' in response.header("Warning")
    assert response.header("Warning").startswith("299 ")
    assert "junk" not in response.json["spec"]
    stored = k8s.custom.get_namespaced_custom_object(name="warned", namespace=namespace, **knobs)
    assert stored["spec"] == {"replicas": 1, "mode": "safe", "limits": {"cpu": 2}}
    # Warn is the default, and the typed client exposes the header too.
    _, status, headers = k8s.custom.create_namespaced_custom_object_with_http_info(
        body=knob("warned2", knobs["group"], junk=2), namespace=namespace, **knobs
    )
    assert status == 201 and "spec.junk" in headers.get("Warning", "")
    response = k8s.raw.request("POST", path.replace("Warn", "Ignore"), knob("quiet", knobs["group"], junk=1))
    assert response.status == 201 and not response.header("Warning")


def test_two_served_versions(k8s: Clients, namespace: str) -> None:
    group = unique_group()
    body = crd_body(
        group,
        "Dial",
        {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"level": {"type": "integer"}}}},
        },
        versions=["v1", "v1beta1"],
    )
    create_crd(k8s, body)
    try:
        created = k8s.custom.create_namespaced_custom_object(
            group,
            "v1beta1",
            namespace,
            "dials",
            {
                "apiVersion": f"{group}/v1beta1",
                "kind": "Dial",
                "metadata": {"name": "d"},
                "spec": {"level": 3},
            },
        )
        assert created["apiVersion"] == f"{group}/v1beta1"
        as_v1 = k8s.custom.get_namespaced_custom_object(group, "v1", namespace, "dials", "d")
        assert as_v1["apiVersion"] == f"{group}/v1" and as_v1["spec"] == {"level": 3}
        assert as_v1["metadata"]["uid"] == created["metadata"]["uid"]
        listed = k8s.custom.list_namespaced_custom_object(group, "v1beta1", namespace, "dials")
        assert [i["apiVersion"] for i in listed["items"]] == [f"{group}/v1beta1"]
        k8s.custom.patch_namespaced_custom_object(
            group, "v1", namespace, "dials", "d", {"spec": {"level": 4}}
        )
        again = k8s.custom.get_namespaced_custom_object(group, "v1beta1", namespace, "dials", "d")
        assert again["spec"] == {"level": 4} and again["apiVersion"] == f"{group}/v1beta1"
        # A body must name the version of the URL it is sent to.
        response = k8s.raw.request(
            "POST",
            f"/apis/{group}/v1/namespaces/{namespace}/dials",
            {"apiVersion": f"{group}/v1beta1", "kind": "Dial", "metadata": {"name": "e"}},
        )
        assert response.status == 400
        assert_status(response.json, 400, "BadRequest")
        discovery = k8s.raw.request("GET", f"/apis/{group}").json
        assert [v["version"] for v in discovery["versions"]] == ["v1", "v1beta1"]
        assert discovery["preferredVersion"]["version"] == "v1"
    finally:
        delete_crd(k8s, body["metadata"]["name"])


def test_deleting_crd_deletes_its_custom_resources(k8s: Clients, namespace: str) -> None:
    group = unique_group()
    body = crd_body(group, "Temp", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    create_crd(k8s, body)
    name = body["metadata"]["name"]
    for i in range(3):
        k8s.custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "temps",
            {"apiVersion": f"{group}/v1", "kind": "Temp", "metadata": {"name": f"t{i}"}},
        )
    # The cleanup finalizer is not there from the start: the first delete adds it, with a Terminating
    # condition, and answers with the CRD as it now is.
    crd = k8s.ext.read_custom_resource_definition(name)
    assert "customresourcecleanup.apiextensions.k8s.io" not in (crd.metadata.finalizers or [])
    response = k8s.raw.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    assert response.status == 200, response.body
    deleting = response.json
    assert deleting["kind"] == "CustomResourceDefinition" and deleting["metadata"]["deletionTimestamp"]
    assert "customresourcecleanup.apiextensions.k8s.io" in deleting["metadata"]["finalizers"]
    terminating = [c for c in deleting["status"]["conditions"] if c["type"] == "Terminating"]
    assert [(c["status"], c["reason"]) for c in terminating] == [("True", "InstanceDeletionPending")]
    wait_for(
        lambda: gone(k8s.ext.read_custom_resource_definition, name),
        timeout=60,
        message="the CRD to be deleted after its custom resources",
    )
    response = k8s.raw.request("GET", f"/apis/{group}/v1/namespaces/{namespace}/temps")
    assert response.status == 404
    # Recreating the CRD does not resurrect the old objects.
    create_crd(k8s, body)
    try:
        assert k8s.custom.list_namespaced_custom_object(group, "v1", namespace, "temps")["items"] == []
    finally:
        delete_crd(k8s, name)


def test_crd_spec_is_validated(k8s: Clients) -> None:
    group = unique_group()
    body = crd_body(
        group,
        "Broken",
        {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string", "default": 5}}}},
        },
    )
    with raises_status(422, "Invalid") as status:
        k8s.ext.create_custom_resource_definition(body)
    # One schema shared by every version is held as the internal type's spec.validation: errors name that.
    assert [(c["field"], c["reason"], c["message"]) for c in status["details"]["causes"]] == [
        (
            "spec.validation.openAPIV3Schema.properties[spec].properties[x].default",
            "FieldValueTypeInvalid",
            'Invalid value: "integer":  in body must be of type string: "integer"',
        )
    ]
    # Versions with schemas of their own are named one by one.
    two = crd_body(group, "Broken", body["spec"]["versions"][0]["schema"]["openAPIV3Schema"], versions=["v1", "v2"])
    two["spec"]["versions"][1]["schema"] = {"openAPIV3Schema": {"type": "object"}}
    with raises_status(422, "Invalid") as status:
        k8s.ext.create_custom_resource_definition(two)
    assert cause_fields(status) == ["spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].default"]
    body = crd_body(group, "Broken", {"type": "object"})
    body["metadata"]["name"] = "wrong.name"
    with raises_status(422, "Invalid") as status:
        k8s.ext.create_custom_resource_definition(body)
    assert "metadata.name" in cause_fields(status)
    assert json.dumps(status)  # the Status is plain JSON
