"""Conformance through the official client: object metadata and error Statuses.

Every assertion here is something the real kube-apiserver guarantees and a client (kopf, client-go,
kubectl, the Python client) relies on.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conformance_support import (
    CONTAINER,
    Clients,
    assert_status,
    cause_fields,
    clients_for,
    crd_body,
    create_crd,
    delete_crd,
    raises_status,
    unique_group,
)
from kubernetes import watch

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle

WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "color": {"type": "string"},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


@pytest.fixture(scope="module")
def widgets(k8s: Clients) -> Iterator[dict[str, str]]:
    group = unique_group()
    body = crd_body(group, "Widget", WIDGET_SCHEMA, subresources={"status": {}})
    create_crd(k8s, body)
    yield {"group": group, "version": "v1", "plural": "widgets"}
    delete_crd(k8s, body["metadata"]["name"])


def widget(name: str, group: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": dict(data)}


def parse_time(text: str) -> datetime.datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


# -- metadata ----------------------------------------------------------------------------------------


def test_create_answers_201_with_server_set_metadata(k8s: Clients, namespace: str) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    created, status, _ = k8s.core.create_namespaced_config_map_with_http_info(
        namespace,
        {
            "metadata": {
                "name": "meta",
                "uid": "forged",
                "resourceVersion": "",
                "creationTimestamp": "2000-01-01T00:00:00Z",
            },
            "data": {"a": "1"},
        },
    )
    assert status == 201
    meta = created.metadata
    assert meta.uid != "forged" and uuid.UUID(meta.uid)
    assert int(meta.resource_version) > 0
    stamp = meta.creation_timestamp
    assert before - datetime.timedelta(seconds=1) <= stamp <= datetime.datetime.now(datetime.UTC)
    assert meta.namespace == namespace
    again = k8s.core.read_namespaced_config_map("meta", namespace)
    assert again.metadata.uid == meta.uid
    assert again.metadata.resource_version == meta.resource_version
    # The raw wire format is RFC 3339 with second precision, as Go's metav1.Time marshals it.
    raw = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/meta").json
    parse_time(raw["metadata"]["creationTimestamp"])


def test_generate_name(k8s: Clients, namespace: str) -> None:
    names = set()
    for _ in range(3):
        created = k8s.core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
        name = created.metadata.name
        assert re.fullmatch(r"gen-[a-z0-9]{5}", name), name
        assert created.metadata.generate_name == "gen-"
        names.add(name)
    assert len(names) == 3
    listed = {c.metadata.name for c in k8s.core.list_namespaced_config_map(namespace).items}
    assert names <= listed


def test_resource_version_is_one_global_counter(
    k8s: Clients, namespace: str, widgets: dict[str, str]
) -> None:
    versions = [
        k8s.core.create_namespaced_config_map(namespace, configmap("c1")).metadata.resource_version,
        k8s.core.create_namespaced_secret(namespace, {"metadata": {"name": "s1"}}).metadata.resource_version,
        k8s.core.create_namespaced_service(
            namespace, {"metadata": {"name": "svc1"}, "spec": {"ports": [{"port": 80}]}}
        ).metadata.resource_version,
        k8s.custom.create_namespaced_custom_object(
            body=widget("w1", widgets["group"]), namespace=namespace, **widgets
        )["metadata"]["resourceVersion"],
        k8s.core.patch_namespaced_config_map("c1", namespace, {"data": {"x": "y"}}).metadata.resource_version,
        k8s.core.create_namespaced_config_map(namespace, configmap("c2")).metadata.resource_version,
    ]
    numbers = [int(v) for v in versions]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    # A list's resourceVersion is the store's revision: never older than the newest object in it.
    listed = k8s.core.list_namespaced_config_map(namespace)
    assert int(listed.metadata.resource_version) >= numbers[-1]
    # Deletion is a write too: it takes a revision newer than every earlier one.
    k8s.core.delete_namespaced_config_map("c2", namespace)
    after = k8s.core.create_namespaced_config_map(namespace, configmap("c3")).metadata.resource_version
    assert int(after) > numbers[-1] + 1


def test_generation_of_custom_resource_tracks_spec_only(
    k8s: Clients, namespace: str, widgets: dict[str, str]
) -> None:
    created = k8s.custom.create_namespaced_custom_object(
        body=widget("gen", widgets["group"]), namespace=namespace, **widgets
    )
    assert created["metadata"]["generation"] == 1
    labelled = k8s.custom.patch_namespaced_custom_object(
        name="gen", namespace=namespace, body={"metadata": {"labels": {"a": "b"}}}, **widgets
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    status = k8s.custom.patch_namespaced_custom_object_status(
        name="gen", namespace=namespace, body={"status": {"ready": True}}, **widgets
    )
    assert status["metadata"]["generation"] == 1 and status["status"] == {"ready": True}
    spec = k8s.custom.patch_namespaced_custom_object(
        name="gen", namespace=namespace, body={"spec": {"size": 2}}, **widgets
    )
    assert spec["metadata"]["generation"] == 2
    spec = k8s.custom.patch_namespaced_custom_object(
        name="gen", namespace=namespace, body={"spec": {"color": "red"}}, **widgets
    )
    assert spec["metadata"]["generation"] == 3


def test_generation_of_statefulset_tracks_spec_only(k8s: Clients, namespace: str) -> None:
    sts = {
        "metadata": {"name": "gen"},
        "spec": {
            "replicas": 0,
            "serviceName": "gen",
            "selector": {"matchLabels": {"app": "gen"}},
            "template": {"metadata": {"labels": {"app": "gen"}}, "spec": {"containers": [CONTAINER]}},
        },
    }
    created = k8s.apps.create_namespaced_stateful_set(namespace, sts)
    assert created.metadata.generation == 1
    labelled = k8s.apps.patch_namespaced_stateful_set("gen", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    status = k8s.apps.patch_namespaced_stateful_set_status(
        "gen", namespace, {"status": {"replicas": 0, "observedGeneration": 1, "collisionCount": 7}}
    )
    assert status.metadata.generation == 1
    scaled = k8s.apps.patch_namespaced_stateful_set(
        "gen", namespace, {"spec": {"replicas": 0, "minReadySeconds": 3}}
    )
    assert scaled.metadata.generation == 2


def test_noop_update_keeps_resource_version(k8s: Clients, namespace: str) -> None:
    created = k8s.core.create_namespaced_config_map(namespace, configmap("noop", a="1"))
    rv = created.metadata.resource_version
    replaced = k8s.core.replace_namespaced_config_map("noop", namespace, created)
    assert replaced.metadata.resource_version == rv
    patched = k8s.core.patch_namespaced_config_map("noop", namespace, {"data": {"a": "1"}})
    assert patched.metadata.resource_version == rv
    assert k8s.core.read_namespaced_config_map("noop", namespace).metadata.resource_version == rv
    changed = k8s.core.patch_namespaced_config_map("noop", namespace, {"data": {"a": "2"}})
    assert int(changed.metadata.resource_version) > int(rv)


# -- error Statuses ------------------------------------------------------------------------------


def test_not_found(k8s: Clients, namespace: str, widgets: dict[str, str]) -> None:
    with raises_status(404, "NotFound") as status:
        k8s.core.read_namespaced_config_map("missing", namespace)
    assert status["details"]["name"] == "missing" and status["details"]["kind"] == "configmaps"
    assert status["message"] == 'configmaps "missing" not found'
    with raises_status(404, "NotFound") as status:
        k8s.custom.get_namespaced_custom_object(name="missing", namespace=namespace, **widgets)
    assert status["details"]["group"] == widgets["group"]
    assert status["message"] == f'widgets.{widgets["group"]} "missing" not found'
    with raises_status(404, "NotFound"):
        k8s.core.delete_namespaced_config_map("missing", namespace)


def test_already_exists(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(namespace, configmap("dup"))
    with raises_status(409, "AlreadyExists") as status:
        k8s.core.create_namespaced_config_map(namespace, configmap("dup"))
    assert status["message"] == 'configmaps "dup" already exists'
    assert status["details"] == {"name": "dup", "kind": "configmaps"}


def test_conflict_on_stale_resource_version(k8s: Clients, namespace: str) -> None:
    stale = k8s.core.create_namespaced_config_map(namespace, configmap("cas", v="1"))
    k8s.core.patch_namespaced_config_map("cas", namespace, {"data": {"v": "2"}})
    stale.data = {"v": "3"}
    with raises_status(409, "Conflict") as status:
        k8s.core.replace_namespaced_config_map("cas", namespace, stale)
    assert "the object has been modified" in status["message"]
    with raises_status(409, "Conflict"):
        k8s.core.patch_namespaced_config_map(
            "cas",
            namespace,
            {"metadata": {"resourceVersion": stale.metadata.resource_version}, "data": {"v": "4"}},
        )
    assert k8s.core.read_namespaced_config_map("cas", namespace).data == {"v": "2"}
    # With the current resourceVersion both succeed.
    current = k8s.core.read_namespaced_config_map("cas", namespace)
    current.data = {"v": "5"}
    current = k8s.core.replace_namespaced_config_map("cas", namespace, current)
    k8s.core.patch_namespaced_config_map(
        "cas",
        namespace,
        {"metadata": {"resourceVersion": current.metadata.resource_version}, "data": {"v": "6"}},
    )
    assert k8s.core.read_namespaced_config_map("cas", namespace).data == {"v": "6"}


def test_custom_resource_update_requires_resource_version(
    k8s: Clients, namespace: str, widgets: dict[str, str]
) -> None:
    k8s.custom.create_namespaced_custom_object(
        body=widget("rv", widgets["group"]), namespace=namespace, **widgets
    )
    with raises_status(422, "Invalid") as status:
        k8s.custom.replace_namespaced_custom_object(
            name="rv", namespace=namespace, body=widget("rv", widgets["group"], size=3), **widgets
        )
    assert "metadata.resourceVersion" in cause_fields(status)


def test_invalid_custom_resource_names_the_field(
    k8s: Clients, namespace: str, widgets: dict[str, str]
) -> None:
    with raises_status(422, "Invalid") as status:
        k8s.custom.create_namespaced_custom_object(
            body=widget("bad", widgets["group"], size="large"), namespace=namespace, **widgets
        )
    assert cause_fields(status) == ["spec.size"]
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == widgets["group"]
    assert status["message"].startswith(f'Widget.{widgets["group"]} "bad" is invalid: spec.size: ')
    body = widget("bad", widgets["group"])
    del body["spec"]["size"]
    with raises_status(422, "Invalid") as status:
        k8s.custom.create_namespaced_custom_object(body=body, namespace=namespace, **widgets)
    assert cause_fields(status) == ["spec.size"]
    assert status["details"]["causes"][0]["reason"] == "FieldValueRequired"


def test_invalid_pod_without_containers(k8s: Clients, namespace: str) -> None:
    with raises_status(422, "Invalid") as status:
        k8s.core.create_namespaced_pod(namespace, {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert "spec.containers" in cause_fields(status)
    assert status["message"].startswith('Pod "empty" is invalid: ')
    assert status["details"]["kind"] == "Pod" and status["details"]["name"] == "empty"


def test_invalid_label_value(k8s: Clients, namespace: str) -> None:
    with raises_status(422, "Invalid") as status:
        k8s.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "lbl", "labels": {"app": "not valid!"}}}
        )
    assert cause_fields(status) == ["metadata.labels"]
    assert '"not valid!"' in status["message"]
    with raises_status(422, "Invalid") as status:
        k8s.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "lbl", "labels": {"app": "x" * 64}}}
        )
    assert cause_fields(status) == ["metadata.labels"]
    # Go measures strings in bytes, and the real server's message says so.
    assert status["message"].endswith(f'Invalid value: "{"x" * 64}": must be no more than 63 bytes')


@pytest.mark.emulator_only
def test_gone_after_compaction(cluster: ClusterHandle, k8s: Clients, namespace: str) -> None:
    emulator = cluster.require_emulator()
    rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version
    k8s.core.create_namespaced_config_map(namespace, configmap("after"))
    assert emulator.runtime is not None
    store = emulator.runtime.api.store
    emulator.call(store.compact)
    with raises_status(410, "Expired") as status:
        for _ in watch.Watch().stream(
            k8s.core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=2
        ):
            pytest.fail("a watch from a compacted resourceVersion must not deliver events")
    assert "too old resource version" in status["message"]
    # On the wire: HTTP 200 and a single ERROR event carrying the 410 Status, then the end of the stream.
    events = list(
        k8s.raw.watch_lines(
            f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2"
        )
    )
    assert [e["type"] for e in events] == ["ERROR"]
    assert_status(events[0]["object"], 410, "Expired")


def test_bad_token_is_unauthorized_and_no_credentials_is_anonymous(
    k8s: Clients, namespace: str, tmp_path: Path
) -> None:
    response = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", token="not-the-token")
    assert response.status == 401
    assert_status(response.json, 401, "Unauthorized")
    # Without credentials (or with a scheme other than Bearer) the request is system:anonymous, which the
    # default RBAC lets read only the health and version paths: 403, named like the real authorizer does.
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", headers=headers, token="")
        assert response.status == 403
        assert response.json["message"] == (
            'configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" in API group ""'
            f' in the namespace "{namespace}"'
        )
        assert assert_status(response.json, 403, "Forbidden")["details"] == {"kind": "configmaps"}
    response = k8s.raw.request("GET", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/web/scale", token="")
    assert assert_status(response.json, 403, "Forbidden")["message"] == (
        'statefulsets.apps "web" is forbidden: User "system:anonymous" cannot get resource "statefulsets/scale"'
        f' in API group "apps" in the namespace "{namespace}"'
    )
    assert response.json["details"] == {"name": "web", "group": "apps", "kind": "statefulsets"}
    # A list or ?watch=1 narrowed to one name is authorized as that object; the legacy /watch/ path is not.
    response = k8s.raw.request("GET", "/api/v1/namespaces?watch=1&fieldSelector=metadata.name%3Dkube-system",
                               token="")
    assert assert_status(response.json, 403, "Forbidden")["message"] == (
        'namespaces "kube-system" is forbidden: User "system:anonymous" cannot watch resource "namespaces"'
        ' in API group "" at the cluster scope'
    )
    response = k8s.raw.request("GET", "/api/v1/watch/namespaces?fieldSelector=metadata.name%3Dkube-system",
                               token="")
    assert assert_status(response.json, 403, "Forbidden")["message"] == (
        'namespaces is forbidden: User "system:anonymous" cannot watch resource "namespaces"'
        ' in API group "" at the cluster scope'
    )
    response = k8s.raw.request("GET", "/api", token="")
    assert assert_status(response.json, 403, "Forbidden")["message"] == (
        'forbidden: User "system:anonymous" cannot get path "/api"'
    )
    for public in ("/version", "/healthz", "/readyz", "/livez"):
        assert k8s.raw.request("GET", public, token="").status == 200, public
    document = yaml.safe_load(Path(k8s.kubeconfig).read_text())
    for user in document["users"]:
        user["user"] = {"token": "wrong"}
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(document))
    with raises_status(401, "Unauthorized"), clients_for(str(wrong)) as other:
        other.core.list_namespace()


def test_bad_request_for_malformed_json_and_kind_mismatch(k8s: Clients, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    response = k8s.raw.request("POST", path, b'{"metadata": {"name": "x"}')
    assert response.status == 400
    assert_status(response.json, 400, "BadRequest")
    response = k8s.raw.request(
        "POST", path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    )
    assert response.status == 400
    assert "Secret" in assert_status(response.json, 400, "BadRequest")["message"]
    response = k8s.raw.request(
        "POST", path, {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    )
    assert response.status == 400
    assert_status(response.json, 400, "BadRequest")
    with raises_status(400, "BadRequest"):
        k8s.core.create_namespaced_config_map(
            namespace, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}}
        )
    # The URL and the body must agree on the name.
    k8s.core.create_namespaced_config_map(namespace, configmap("named"))
    with raises_status(400, "BadRequest"):
        k8s.core.replace_namespaced_config_map("named", namespace, configmap("other"))
    assert k8s.raw.request("GET", f"{path}/x").status == 404


def test_unsupported_media_type(k8s: Clients, namespace: str, widgets: dict[str, str]) -> None:
    k8s.custom.create_namespaced_custom_object(
        body=widget("smp", widgets["group"]), namespace=namespace, **widgets
    )
    path = f"/apis/{widgets['group']}/v1/namespaces/{namespace}/widgets/smp"
    response = k8s.raw.request(
        "PATCH", path, {"spec": {"size": 2}}, content_type="application/strategic-merge-patch+json"
    )
    assert response.status == 415
    assert_status(response.json, 415, "UnsupportedMediaType")
    with raises_status(415, "UnsupportedMediaType"):
        k8s.custom.patch_namespaced_custom_object(
            name="smp",
            namespace=namespace,
            body={"spec": {"size": 2}},
            _content_type="application/strategic-merge-patch+json",
            **widgets,
        )
    response = k8s.raw.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", b"name: x", content_type="text/plain"
    )
    assert response.status == 415
    assert_status(response.json, 415, "UnsupportedMediaType")
    response = k8s.raw.request("PATCH", path, {"spec": {"size": 2}}, content_type="application/json")
    assert response.status == 415
    assert_status(response.json, 415, "UnsupportedMediaType")
    cr = k8s.custom.get_namespaced_custom_object(name="smp", namespace=namespace, **widgets)
    assert cr["spec"] == {"size": 1}
    assert json.loads(json.dumps(cr))["metadata"]["generation"] == 1
