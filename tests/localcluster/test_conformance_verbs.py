"""Conformance through the official client: verbs, patch flavours, apply, dry-run, subresources, selectors
and paging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conformance_support import (
    CONTAINER,
    NOWHERE_NODE,
    Clients,
    assert_status,
    crd_body,
    create_crd,
    delete_crd,
    gone,
    published_root_ca,
    raises_status,
    unique_group,
    wait_for,
)
from kubernetes.client.exceptions import ApiException

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle

SHARD_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "selector": {"type": "string"},
                "owner": {"type": "string"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "selector": {"type": "string"},
                "phase": {"type": "string"},
            },
        },
    },
}
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def shards(k8s: Clients) -> Iterator[dict[str, str]]:
    group = unique_group()
    body = crd_body(
        group,
        "Shard",
        SHARD_SCHEMA,
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
    )
    create_crd(k8s, body)
    yield {"group": group, "version": "v1", "plural": "shards"}
    delete_crd(k8s, body["metadata"]["name"])


def shard(name: str, group: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Shard", "metadata": {"name": name}, "spec": dict(spec)}


def statefulset(name: str, *, replicas: int = 0, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    container = {**CONTAINER, "env": env or []}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]},
            },
        },
    }


def names(items: list[Any]) -> list[str]:
    return sorted(i["metadata"]["name"] if isinstance(i, dict) else i.metadata.name for i in items)


# -- CRUD ----------------------------------------------------------------------------------------------


def test_crud_and_deletecollection(k8s: Clients, namespace: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        k8s.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": name}}
        )
    got = k8s.core.read_namespaced_config_map("a", namespace)
    assert got.data == {"k": "a"} and got.kind == "ConfigMap" and got.api_version == "v1"
    listed = k8s.core.list_namespaced_config_map(namespace)
    assert listed.kind == "ConfigMapList" and listed.api_version == "v1"
    assert {"a", "b", "c"} <= set(names(listed.items))
    got.data = {"k": "changed"}
    replaced = k8s.core.replace_namespaced_config_map("a", namespace, got)
    assert replaced.data == {"k": "changed"}
    assert int(replaced.metadata.resource_version) > int(got.metadata.resource_version)
    deleted = k8s.core.delete_namespaced_config_map("c", namespace)
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"]["name"] == "c" and deleted["details"]["kind"] == "configmaps"
    assert gone(k8s.core.read_namespaced_config_map, "c", namespace)
    k8s.core.delete_collection_namespaced_config_map(namespace, label_selector="tier=web")
    remaining = names(k8s.core.list_namespaced_config_map(namespace, label_selector="tier").items)
    assert remaining == []
    # Objects without the label are untouched by a selected deletecollection.
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "keep"}})
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "drop", "labels": {"x": "1"}}})
    k8s.core.delete_collection_namespaced_config_map(namespace, label_selector="x=1")
    assert k8s.core.read_namespaced_config_map("keep", namespace).metadata.name == "keep"
    assert gone(k8s.core.read_namespaced_config_map, "drop", namespace)


def test_custom_objects_through_dynamic_client(k8s: Clients, namespace: str, shards: dict[str, str]) -> None:
    resource = k8s.dynamic.resources.get(api_version=f"{shards['group']}/v1", kind="Shard")
    created = resource.create(body=shard("dyn", shards["group"], replicas=1), namespace=namespace)
    assert created.metadata.name == "dyn" and created.spec.replicas == 1
    listed = resource.get(namespace=namespace)
    assert [i.metadata.name for i in listed.items] == ["dyn"]
    patched = resource.patch(
        name="dyn",
        namespace=namespace,
        body={"spec": {"owner": "me"}},
        content_type="application/merge-patch+json",
    )
    assert patched.spec.owner == "me" and patched.spec.replicas == 1
    resource.delete(name="dyn", namespace=namespace)
    assert resource.get(namespace=namespace).items == []


# -- patches ---------------------------------------------------------------------------------------------


def test_merge_patch(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "m", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}}
    )
    patched = k8s.core.patch_namespaced_config_map(
        "m",
        namespace,
        {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": None, "z": "3"}},
        _content_type=MERGE,
    )
    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.data == {"x": "1", "z": "3"}


def test_json_patch_and_failed_test_operation(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "j"}, "data": {"x": "1", "y": "2"}}
    )
    patched = k8s.core.patch_namespaced_config_map(
        "j",
        namespace,
        [
            {"op": "test", "path": "/data/x", "value": "1"},
            {"op": "replace", "path": "/data/x", "value": "10"},
            {"op": "remove", "path": "/data/y"},
            {"op": "add", "path": "/metadata/labels", "value": {"added": "yes"}},
        ],
    )
    assert patched.data == {"x": "10"} and patched.metadata.labels == {"added": "yes"}
    rv = patched.metadata.resource_version
    with raises_status(422, "Invalid"):
        k8s.core.patch_namespaced_config_map(
            "j",
            namespace,
            [
                {"op": "test", "path": "/data/x", "value": "1"},
                {"op": "replace", "path": "/data/x", "value": "never"},
            ],
        )
    current = k8s.core.read_namespaced_config_map("j", namespace)
    assert current.data == {"x": "10"} and current.metadata.resource_version == rv
    response = k8s.raw.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/j",
        [{"op": "remove", "path": "/data/missing"}],
        content_type="application/json-patch+json",
    )
    assert response.status == 422
    assert_status(response.json, 422, "Invalid")


def test_strategic_merge_patch_merges_lists_by_name(k8s: Clients, namespace: str) -> None:
    k8s.apps.create_namespaced_stateful_set(
        namespace,
        statefulset(
            "smp", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
        ),
    )
    patched = k8s.apps.patch_namespaced_stateful_set(
        "smp",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "env": [
                                    {"name": "B", "value": "20"},
                                    {"name": "D", "value": "4"},
                                    {"name": "C", "$patch": "delete"},
                                ],
                            }
                        ]
                    }
                }
            }
        },
    )
    container = patched.spec.template.spec.containers[0]
    assert container.image == CONTAINER["image"] and container.command == CONTAINER["command"]
    assert {e.name: e.value for e in container.env} == {"A": "1", "B": "20", "D": "4"}
    # A JSON merge patch replaces the list wholesale instead.
    merged = k8s.apps.patch_namespaced_stateful_set(
        "smp",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "busybox:1.37", "env": [{"name": "Z", "value": "9"}]}
                        ]
                    }
                }
            }
        },
        _content_type=MERGE,
    )
    container = merged.spec.template.spec.containers[0]
    assert [(e.name, e.value) for e in container.env] == [("Z", "9")] and not container.command
    pod = {
        "metadata": {"name": "smp-pod"},
        "spec": {
            "nodeName": NOWHERE_NODE,
            "containers": [
                {**CONTAINER, "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "busybox:1.36", "command": ["sleep", "1"]},
            ],
        },
    }
    k8s.core.create_namespaced_pod(namespace, pod)
    try:
        patched_pod = k8s.core.patch_namespaced_pod(
            "smp-pod", namespace, {"spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}}
        )
        containers = {c.name: c for c in patched_pod.spec.containers}
        assert containers["side"].image == "busybox:1.37" and containers["side"].command == ["sleep", "1"]
        assert containers["main"].image == CONTAINER["image"]
        assert [(e.name, e.value) for e in containers["main"].env] == [("A", "1")]
    finally:
        k8s.core.delete_namespaced_pod("smp-pod", namespace, grace_period_seconds=0)


def test_server_side_apply(k8s: Clients, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/applied"
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"l": "1"}},
        "data": {"a": "1", "b": "2"},
    }
    response = k8s.raw.request(
        "PATCH", f"{path}?fieldManager=tester", json.dumps(config).encode(), content_type=APPLY
    )
    assert response.status == 201, response.body
    assert response.json["data"] == {"a": "1", "b": "2"}
    # Another manager owns "other"; the next apply by "tester" must leave it alone.
    k8s.core.patch_namespaced_config_map("applied", namespace, {"data": {"other": "x"}})
    config["data"] = {"a": "10"}
    config["metadata"]["labels"] = {}
    applied = k8s.core.patch_namespaced_config_map(
        "applied", namespace, config, field_manager="tester", _content_type=APPLY
    )
    assert applied.data == {"a": "10", "other": "x"}
    assert not applied.metadata.labels
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '11'\n"
    response = k8s.raw.request("PATCH", f"{path}?fieldManager=tester", yaml_body, content_type=APPLY)
    assert response.status == 200, response.body
    assert response.json["data"] == {"a": "11", "other": "x"}
    # Apply requires a fieldManager: the PatchOptions are invalid (422), as a field of their own.
    response = k8s.raw.request("PATCH", path, yaml_body, content_type=APPLY)
    status = assert_status(response.json, 422, "Invalid")
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert status["details"] == {
        "group": "meta.k8s.io",
        "kind": "PatchOptions",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
        ],
    }


def test_server_side_apply_create_answers_201(k8s: Clients, namespace: str) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"a": "1"}}
    response = k8s.raw.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/fresh?fieldManager=t",
        json.dumps(config).encode(),
        content_type=APPLY,
    )
    assert response.json["data"] == {"a": "1"}
    assert response.status == 201


def test_dry_run_stores_nothing(k8s: Clients, namespace: str) -> None:
    created = k8s.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dry"}, "data": {"a": "1"}}, dry_run="All"
    )
    assert created.metadata.name == "dry" and created.metadata.uid
    assert gone(k8s.core.read_namespaced_config_map, "dry", namespace)
    real = k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}, "data": {"a": "1"}})
    rv = real.metadata.resource_version
    patched = k8s.core.patch_namespaced_config_map("dry", namespace, {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    real.data = {"a": "3"}
    assert k8s.core.replace_namespaced_config_map("dry", namespace, real, dry_run="All").data == {"a": "3"}
    k8s.core.delete_namespaced_config_map("dry", namespace, dry_run="All")
    k8s.core.delete_collection_namespaced_config_map(namespace, dry_run="All")
    current = k8s.core.read_namespaced_config_map("dry", namespace)
    assert current.data == {"a": "1"} and current.metadata.resource_version == rv
    # A dry run is still validated.
    with raises_status(422, "Invalid"):
        k8s.core.create_namespaced_pod(
            namespace, {"metadata": {"name": "p"}, "spec": {"containers": []}}, dry_run="All"
        )


# -- subresources -------------------------------------------------------------------------------------


def test_status_subresource_splits_spec_and_status(
    k8s: Clients, namespace: str, shards: dict[str, str]
) -> None:
    k8s.custom.create_namespaced_custom_object(
        body={**shard("st", shards["group"], replicas=1), "status": {"phase": "ignored-on-create"}},
        namespace=namespace,
        **shards,
    )
    current = k8s.custom.get_namespaced_custom_object(name="st", namespace=namespace, **shards)
    assert "status" not in current
    current["spec"]["replicas"] = 2
    current["status"] = {"phase": "through-main"}
    updated = k8s.custom.replace_namespaced_custom_object(
        name="st", namespace=namespace, body=current, **shards
    )
    assert updated["spec"]["replicas"] == 2 and "status" not in updated
    updated["spec"]["replicas"] = 3
    updated["status"] = {"phase": "Ready"}
    via_status = k8s.custom.replace_namespaced_custom_object_status(
        name="st", namespace=namespace, body=updated, **shards
    )
    assert via_status["spec"]["replicas"] == 2 and via_status["status"] == {"phase": "Ready"}
    patched = k8s.custom.patch_namespaced_custom_object_status(
        name="st",
        namespace=namespace,
        body={
            "spec": {"replicas": 9},
            "status": {"phase": "Done"},
            "metadata": {"labels": {"ignored": "yes"}},
        },
        **shards,
    )
    assert patched["spec"]["replicas"] == 2 and patched["status"] == {"phase": "Done"}
    assert "ignored" not in (patched["metadata"].get("labels") or {})
    patched = k8s.custom.patch_namespaced_custom_object(
        name="st", namespace=namespace, body={"status": {"phase": "Lost"}, "spec": {"replicas": 4}}, **shards
    )
    assert patched["status"] == {"phase": "Done"} and patched["spec"]["replicas"] == 4
    got = k8s.custom.get_namespaced_custom_object_status(name="st", namespace=namespace, **shards)
    assert got["status"] == {"phase": "Done"} and got["spec"]["replicas"] == 4


def test_status_subresource_of_statefulset(k8s: Clients, namespace: str) -> None:
    k8s.apps.create_namespaced_stateful_set(namespace, statefulset("sts-status"))
    patched = k8s.apps.patch_namespaced_stateful_set_status(
        "sts-status", namespace, {"spec": {"replicas": 5}, "status": {"replicas": 0, "collisionCount": 3}}
    )
    assert patched.spec.replicas == 0
    patched = k8s.apps.patch_namespaced_stateful_set(
        "sts-status", namespace, {"spec": {"minReadySeconds": 2}, "status": {"collisionCount": 99}}
    )
    assert patched.spec.min_ready_seconds == 2
    assert patched.status.collision_count != 99


def test_scale_subresource_of_custom_resource(k8s: Clients, namespace: str, shards: dict[str, str]) -> None:
    k8s.custom.create_namespaced_custom_object(
        body=shard("sc", shards["group"], replicas=2), namespace=namespace, **shards
    )
    k8s.custom.patch_namespaced_custom_object_status(
        name="sc", namespace=namespace, body={"status": {"replicas": 1, "selector": "app=sc"}}, **shards
    )
    scale = k8s.custom.get_namespaced_custom_object_scale(name="sc", namespace=namespace, **shards)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 1, "selector": "app=sc"}
    scaled = k8s.custom.patch_namespaced_custom_object_scale(
        name="sc", namespace=namespace, body={"spec": {"replicas": 5}}, **shards
    )
    assert scaled["spec"]["replicas"] == 5
    got = k8s.custom.get_namespaced_custom_object(name="sc", namespace=namespace, **shards)
    assert got["spec"]["replicas"] == 5 and got["metadata"]["generation"] == 2
    scale = k8s.custom.get_namespaced_custom_object_scale(name="sc", namespace=namespace, **shards)
    scale["spec"]["replicas"] = 0
    replaced = k8s.custom.replace_namespaced_custom_object_scale(
        name="sc", namespace=namespace, body=scale, **shards
    )
    # ScaleSpec.replicas is omitempty: a Scale of zero has an empty spec.
    assert replaced["spec"] == {}
    assert (
        k8s.custom.get_namespaced_custom_object(name="sc", namespace=namespace, **shards)["spec"]["replicas"]
        == 0
    )
    with raises_status(422, "Invalid"):
        k8s.custom.patch_namespaced_custom_object_scale(
            name="sc", namespace=namespace, body={"spec": {"replicas": -1}}, **shards
        )


def test_scale_subresource_of_statefulset(k8s: Clients, namespace: str) -> None:
    k8s.apps.create_namespaced_stateful_set(namespace, statefulset("sts-scale", replicas=0))
    scale = k8s.apps.read_namespaced_stateful_set_scale("sts-scale", namespace)
    # ScaleSpec.replicas is omitempty, so a Scale of zero has an empty spec (the client reads None).
    assert scale.spec.replicas is None and scale.metadata.name == "sts-scale"
    raw = k8s.raw.request("GET", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/sts-scale/scale").json
    assert raw["spec"] == {} and raw["status"]["replicas"] == 0
    scaled = k8s.apps.patch_namespaced_stateful_set_scale("sts-scale", namespace, {"spec": {"replicas": 2}})
    assert scaled.spec.replicas == 2
    assert k8s.apps.read_namespaced_stateful_set("sts-scale", namespace).spec.replicas == 2
    # A read-modify-replace carries the resourceVersion; the StatefulSet controller writes the status
    # meanwhile (at once on a real cluster), so the replace is retried on 409 as any client's would be.
    def replaced() -> Any:
        scale = k8s.apps.read_namespaced_stateful_set_scale("sts-scale", namespace)
        scale.spec.replicas = 1
        try:
            return k8s.apps.replace_namespaced_stateful_set_scale("sts-scale", namespace, scale)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return None

    assert wait_for(replaced, timeout=60, message="a replace of the scale without conflict").spec.replicas == 1
    assert k8s.apps.read_namespaced_stateful_set("sts-scale", namespace).spec.replicas == 1
    wait_for(
        lambda: (
            k8s.apps.read_namespaced_stateful_set_scale("sts-scale", namespace).status.selector
            == "app=sts-scale"
        ),
        timeout=10,
        message="the scale status to carry the selector",
    )


# -- selectors and paging ---------------------------------------------------------------------------


def test_label_selectors(k8s: Clients, namespace: str) -> None:
    labels = {
        "a": {"app": "web", "tier": "fe"},
        "b": {"app": "web", "tier": "be", "canary": "true"},
        "c": {"app": "db", "tier": "be"},
        "d": {},
    }
    for name, value in labels.items():
        k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": value}})

    # A real cluster publishes kube-root-ca.crt (no labels) into every namespace: the negative selectors
    # match it as they match "d".
    unlabelled = ["d", *published_root_ca(k8s, namespace)]

    def select(selector: str) -> list[str]:
        return names(k8s.core.list_namespaced_config_map(namespace, label_selector=selector).items)

    assert select("app=web") == ["a", "b"]
    assert select("app==web") == ["a", "b"]
    assert select("app!=web") == ["c", *unlabelled]
    assert select("tier in (fe,be)") == ["a", "b", "c"]
    assert select("tier notin (fe)") == ["b", "c", *unlabelled]
    assert select("!canary") == ["a", "c", *unlabelled]
    assert select("canary") == ["b"]
    assert select("app=web,!canary") == ["a"]
    assert select("app in (web),tier notin (fe)") == ["b"]
    with raises_status(400, "BadRequest"):
        k8s.core.list_namespaced_config_map(namespace, label_selector="app in web")
    with raises_status(400, "BadRequest"):
        k8s.core.list_namespaced_config_map(namespace, label_selector="app=not valid!")


def test_field_selectors(k8s: Clients, namespace: str) -> None:
    for name in ("one", "two"):
        k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    assert names(
        k8s.core.list_namespaced_config_map(namespace, field_selector="metadata.name=one").items
    ) == ["one"]
    assert "one" not in names(
        k8s.core.list_namespaced_config_map(namespace, field_selector="metadata.name!=one").items
    )
    assert names(
        k8s.core.list_config_map_for_all_namespaces(
            field_selector=f"metadata.namespace={namespace},metadata.name=two"
        ).items
    ) == ["two"]
    with raises_status(400, "BadRequest") as status:
        k8s.core.list_namespaced_config_map(namespace, field_selector="data.key=x")
    assert "data.key" in status["message"]
    # Pods bound to a node that does not exist keep whatever phase their status says.
    for name, phase in (("p-ok", "Succeeded"), ("p-bad", "Failed"), ("p-wait", None)):
        k8s.core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {"nodeName": NOWHERE_NODE, "restartPolicy": "Never", "containers": [CONTAINER]},
            },
        )
        if phase:
            k8s.core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": phase}})
    try:

        def pods(selector: str) -> list[str]:
            return names(k8s.core.list_namespaced_pod(namespace, field_selector=selector).items)

        assert pods("status.phase=Succeeded") == ["p-ok"]
        assert pods("status.phase!=Succeeded,status.phase!=Failed") == ["p-wait"]
        assert pods(f"spec.nodeName={NOWHERE_NODE},status.phase=Failed") == ["p-bad"]
        with raises_status(400, "BadRequest"):
            k8s.core.list_namespaced_pod(namespace, field_selector="status.hostIP=1.2.3.4")
    finally:
        k8s.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)


def test_paging_returns_every_object_exactly_once(k8s: Clients, namespace: str) -> None:
    expected = {f"page-{i:02d}" for i in range(23)}
    for name in sorted(expected, reverse=True):
        k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"p": "y"}}})
    seen: list[str] = []
    pages = 0
    token = None
    while True:
        page = k8s.core.list_namespaced_config_map(namespace, label_selector="p=y", limit=5, _continue=token)
        pages += 1
        assert len(page.items) <= 5
        seen.extend(i.metadata.name for i in page.items)
        token = page.metadata._continue
        # With a selector the server cannot count what is left without reading it: it leaves the count out.
        assert page.metadata.remaining_item_count is None
        if not token:
            break
    assert pages == 5
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    # The typed client, the dynamic client and raw HTTP agree on a full list.
    assert set(names(k8s.core.list_namespaced_config_map(namespace, label_selector="p=y").items)) == expected
    response = k8s.raw.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector=p%3Dy&limit=30"
    )
    assert response.json["metadata"].get("continue") in (None, "")
    assert len(response.json["items"]) == 23

    # Without a selector it counts: what a full list holds, less the page.
    others = published_root_ca(k8s, namespace)
    page = k8s.core.list_namespaced_config_map(namespace, limit=5)
    assert page.metadata.remaining_item_count == 23 + len(others) - 5


def test_paging_serves_a_consistent_snapshot(k8s: Clients, namespace: str) -> None:
    for i in range(10):
        k8s.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"snap-{i}"}, "data": {"v": "0"}}
        )
    # kube-root-ca.crt, which a real cluster publishes into every namespace, sorts before "snap-": once
    # it is there (or on a cluster without one) the pages hold it and the test's objects in name order.
    root_ca = published_root_ca(k8s, namespace)
    first = k8s.core.list_namespaced_config_map(namespace, limit=4 + len(root_ca))
    assert [i.metadata.name for i in first.items] == root_ca + [f"snap-{i}" for i in range(4)]
    # Writes after the first page do not show up in the later ones: they come from the same snapshot.
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "snap-99"}})
    k8s.core.delete_namespaced_config_map("snap-6", namespace)
    k8s.core.patch_namespaced_config_map("snap-8", namespace, {"data": {"v": "1"}})
    k8s.core.delete_namespaced_config_map("snap-1", namespace)
    rest = []
    token = first.metadata._continue
    while token:
        page = k8s.core.list_namespaced_config_map(namespace, limit=4, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        rest.extend(page.items)
        token = page.metadata._continue
    assert [i.metadata.name for i in rest] == [f"snap-{i}" for i in range(4, 10)]
    assert next(i for i in rest if i.metadata.name == "snap-8").data == {"v": "0"}
    # A fresh list sees the present.
    now = {i.metadata.name for i in k8s.core.list_namespaced_config_map(namespace).items}
    assert {"snap-99", "snap-8"} <= now and not {"snap-6", "snap-1"} & now


@pytest.mark.emulator_only
def test_continue_after_compaction_is_gone(cluster: ClusterHandle, k8s: Clients, namespace: str) -> None:
    emulator = cluster.require_emulator()
    assert emulator.runtime is not None
    for i in range(3):
        k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": f"gone-{i}"}})
    first = k8s.core.list_namespaced_config_map(namespace, limit=1)
    k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "gone-later"}})
    emulator.call(emulator.runtime.api.store.compact)
    with raises_status(410, "Expired") as status:
        k8s.core.list_namespaced_config_map(namespace, limit=1, _continue=first.metadata._continue)
    assert "continue parameter is too old" in status["message"]
