from __future__ import annotations

import copy
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver.patching import (
    MalformedPatch,
    PatchError,
    PatchFailed,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    strategic_merge_supported,
)

# --------------------------------------------------------------------------------------------------
# RFC 7386 merge patch
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # From RFC 7386 appendix A.
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(target, patch) == expected


def test_merge_patch_on_kubernetes_object_merges_labels_and_replaces_lists() -> None:
    target = {
        "metadata": {"name": "x", "labels": {"a": "1", "b": "2"}, "finalizers": ["f1", "f2"]},
        "spec": {"replicas": 1},
    }
    patch = {"metadata": {"labels": {"b": None, "c": "3"}, "finalizers": ["f3"]}, "spec": {"replicas": 3}}

    result = apply_merge_patch(target, patch)

    assert result == {
        "metadata": {"name": "x", "labels": {"a": "1", "c": "3"}, "finalizers": ["f3"]},
        "spec": {"replicas": 3},
    }


def test_merge_patch_does_not_mutate_or_share_with_inputs() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"items": [{"x": 1}]}}
    patch = {"metadata": {"labels": {"b": "2"}}, "status": {"list": [{"y": 2}]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)

    result = apply_merge_patch(target, patch)
    result["spec"]["items"][0]["x"] = 99
    result["status"]["list"][0]["y"] = 99
    result["metadata"]["labels"]["a"] = "changed"

    assert target == target_before
    assert patch == patch_before


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# --------------------------------------------------------------------------------------------------


def test_json_patch_add_object_member_and_replace_existing_member() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}}

    result = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "add", "path": "/metadata/labels/a", "value": "one"},
        ],
    )

    assert result == {"metadata": {"labels": {"a": "one", "b": "2"}}}


def test_json_patch_add_inserts_into_array_and_dash_appends() -> None:
    doc = {"list": ["a", "c"]}

    result = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/list/1", "value": "b"},
            {"op": "add", "path": "/list/-", "value": "d"},
            {"op": "add", "path": "/list/4", "value": "e"},
            {"op": "add", "path": "/list/0", "value": "_"},
        ],
    )

    assert result == {"list": ["_", "a", "b", "c", "d", "e"]}


def test_json_patch_add_with_empty_path_replaces_document() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}]) == {"b": 2}


def test_json_patch_add_to_missing_parent_fails() -> None:
    with pytest.raises(PatchFailed, match=r'add operation does not apply: doc is missing path: "/a/b/c"'):
        apply_json_patch({"a": {}}, [{"op": "add", "path": "/a/b/c", "value": 1}])


def test_json_patch_add_index_past_end_fails() -> None:
    with pytest.raises(PatchFailed, match="Unable to access invalid index: 3"):
        apply_json_patch({"list": [1, 2]}, [{"op": "add", "path": "/list/3", "value": 1}])


def test_json_patch_add_non_numeric_index_fails() -> None:
    with pytest.raises(PatchFailed, match="not a proper array index: 'x'"):
        apply_json_patch({"list": [1, 2]}, [{"op": "add", "path": "/list/x", "value": 1}])


def test_json_patch_leading_zero_index_is_not_an_index() -> None:
    with pytest.raises(PatchFailed, match="not a proper array index: '01'"):
        apply_json_patch({"list": [1, 2]}, [{"op": "add", "path": "/list/01", "value": 1}])


def test_json_patch_remove_member_and_array_element() -> None:
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [1, 2, 3]}

    result = apply_json_patch(
        doc, [{"op": "remove", "path": "/metadata/labels/a"}, {"op": "remove", "path": "/list/1"}]
    )

    assert result == {"metadata": {"labels": {"b": "2"}}, "list": [1, 3]}


def test_json_patch_remove_missing_member_fails() -> None:
    with pytest.raises(PatchFailed, match="unable to remove nonexistent key: nope"):
        apply_json_patch({"a": {}}, [{"op": "remove", "path": "/a/nope"}])


def test_json_patch_remove_index_out_of_range_fails() -> None:
    with pytest.raises(PatchFailed, match="Unable to access invalid index: 2"):
        apply_json_patch({"list": [1, 2]}, [{"op": "remove", "path": "/list/2"}])


def test_json_patch_remove_with_dash_fails() -> None:
    with pytest.raises(PatchFailed):
        apply_json_patch({"list": [1, 2]}, [{"op": "remove", "path": "/list/-"}])


def test_json_patch_replace_member_array_element_and_root() -> None:
    doc = {"spec": {"replicas": 1, "list": ["a", "b"]}}

    result = apply_json_patch(
        doc,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/list/0", "value": "z"},
        ],
    )

    assert result == {"spec": {"replicas": 3, "list": ["z", "b"]}}
    assert apply_json_patch(doc, [{"op": "replace", "path": "", "value": [1]}]) == [1]


def test_json_patch_replace_missing_key_fails() -> None:
    with pytest.raises(PatchFailed, match="replace operation does not apply: doc is missing key: /spec/x"):
        apply_json_patch({"spec": {}}, [{"op": "replace", "path": "/spec/x", "value": 1}])


def test_json_patch_move_member_and_reorder_array() -> None:
    doc = {"a": {"x": 1}, "b": {}, "list": ["p", "q", "r"]}

    result = apply_json_patch(
        doc,
        [
            {"op": "move", "from": "/a/x", "path": "/b/y"},
            {"op": "move", "from": "/list/0", "path": "/list/-"},
        ],
    )

    assert result == {"a": {}, "b": {"y": 1}, "list": ["q", "r", "p"]}


def test_json_patch_move_to_same_path_is_a_no_op() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": 1}


def test_json_patch_move_into_own_child_fails() -> None:
    with pytest.raises(PatchFailed, match="into its own child"):
        apply_json_patch({"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}])


def test_json_patch_move_from_missing_path_fails() -> None:
    with pytest.raises(PatchFailed, match="move operation does not apply: doc is missing from path: /nope"):
        apply_json_patch({"a": 1}, [{"op": "move", "from": "/nope", "path": "/b"}])


def test_json_patch_copy_is_deep() -> None:
    doc = {"a": {"nested": [1]}}

    result = apply_json_patch(
        doc,
        [
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "add", "path": "/a/nested/-", "value": 2},
        ],
    )

    assert result == {"a": {"nested": [1, 2]}, "b": {"nested": [1]}}


def test_json_patch_copy_from_missing_path_fails() -> None:
    with pytest.raises(PatchFailed, match="copy operation does not apply"):
        apply_json_patch({}, [{"op": "copy", "from": "/x", "path": "/y"}])


def test_json_patch_test_passes_then_applies_following_operations() -> None:
    doc = {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 1}}

    result = apply_json_patch(
        doc,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "test", "path": "/spec", "value": {"replicas": 1.0}},
            {"op": "replace", "path": "/spec/replicas", "value": 2},
        ],
    )

    assert result["spec"]["replicas"] == 2


def test_json_patch_failed_test_raises_with_apiserver_wording() -> None:
    with pytest.raises(PatchFailed, match=r"^testing value /metadata/resourceVersion failed: test failed$"):
        apply_json_patch(
            {"metadata": {"resourceVersion": "7"}},
            [{"op": "test", "path": "/metadata/resourceVersion", "value": "8"}],
        )


@pytest.mark.parametrize(("actual", "expected"), [(1, True), (0, False), ("1", 1), (None, 0), ([1], [True])])
def test_json_patch_test_compares_json_types_strictly(actual: Any, expected: Any) -> None:
    with pytest.raises(PatchFailed):
        apply_json_patch({"v": actual}, [{"op": "test", "path": "/v", "value": expected}])


def test_json_patch_test_on_missing_path_fails() -> None:
    with pytest.raises(PatchFailed, match="testing value /missing failed"):
        apply_json_patch({}, [{"op": "test", "path": "/missing", "value": None}])


def test_json_patch_pointer_escapes_slash_and_tilde() -> None:
    doc = {"metadata": {"annotations": {"example.com/owner": "a", "m~n": "b", "~1": "c"}}}

    result = apply_json_patch(
        doc,
        [
            {"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "z"},
            {"op": "remove", "path": "/metadata/annotations/m~0n"},
            {"op": "replace", "path": "/metadata/annotations/~01", "value": "tilde-one"},
        ],
    )

    assert result == {"metadata": {"annotations": {"example.com/owner": "z", "~1": "tilde-one"}}}


def test_json_patch_is_atomic_and_does_not_mutate_inputs() -> None:
    doc = {"spec": {"replicas": 1, "list": [1]}}
    operations = [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/spec/list/-", "value": {"x": 1}},
        {"op": "remove", "path": "/spec/nope"},
    ]
    doc_before, operations_before = copy.deepcopy(doc), copy.deepcopy(operations)

    with pytest.raises(PatchFailed):
        apply_json_patch(doc, operations)

    assert doc == doc_before
    assert operations == operations_before

    result = apply_json_patch(doc, operations[:2])
    result["spec"]["list"][1]["x"] = 99
    assert operations[1]["value"] == {"x": 1}


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        (
            {"op": "add", "path": "/a", "value": 1},
            "cannot unmarshal object into Go value of type jsonpatch.Patch",
        ),
        ("nope", "cannot unmarshal string"),
        (["add"], "cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ],
)
def test_json_patch_undecodable_documents_are_malformed(operations: Any, message: str) -> None:
    with pytest.raises(MalformedPatch, match=message):
        apply_json_patch({"a": 1}, operations)


# The apiserver decodes any list of objects as a patch and only fails bad operations while applying them,
# which it answers with 422 (PatchFailed), not 400.
@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([{"path": "/a", "value": 1}], "unsupported operation"),
        ([{"op": "frobnicate", "path": "/a"}], "unsupported operation"),
        ([{"op": "add", "value": 1}], "failed to decode 'path'"),
        ([{"op": "add", "path": "/a"}], "failed to decode 'value'"),
        ([{"op": "replace", "path": "/a"}], "failed to decode 'value'"),
        ([{"op": "test", "path": "/a"}], "failed to decode 'value'"),
        ([{"op": "move", "path": "/a"}], "failed to decode 'from'"),
        ([{"op": "copy", "path": "/a"}], "failed to decode 'from'"),
        ([{"op": "remove", "path": "a"}], "must be empty or start with '/'"),
        ([{"op": "remove", "path": "/a~2b"}], "'~' not followed by '0' or '1'"),
        ([{"op": "remove", "path": 3}], "must be a string"),
        ([{"op": "move", "from": "x", "path": "/a"}], "failed to decode 'from'"),
    ],
)
def test_json_patch_bad_operations_fail_to_apply(operations: Any, message: str) -> None:
    with pytest.raises(PatchFailed, match=message):
        apply_json_patch({"a": 1}, operations)


def test_json_patch_bad_operation_later_in_list_rejects_whole_patch_before_applying() -> None:
    # Operations are checked up front, so nothing is applied when any of them is bad.
    with pytest.raises(PatchFailed, match="unsupported operation"):
        apply_json_patch({}, [{"op": "remove", "path": "/missing"}, {"op": "bogus", "path": "/a"}])


def test_error_classes_share_a_base_and_carry_the_message() -> None:
    assert issubclass(MalformedPatch, PatchError)
    assert issubclass(PatchFailed, PatchError)
    assert not issubclass(MalformedPatch, PatchFailed)
    error = PatchFailed("boom")
    assert error.message == "boom"
    assert str(error) == "boom"


def test_empty_json_patch_returns_an_equal_copy() -> None:
    doc = {"a": [1]}
    result = apply_json_patch(doc, [])
    assert result == doc
    assert result is not doc
    assert result["a"] is not doc["a"]


# --------------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------------


def _statefulset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "ds-alice", "namespace": "dev", "finalizers": ["devservers.io/cleanup"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "ds-alice"}},
            "volumeClaimTemplates": [{"metadata": {"name": "home"}, "spec": {"accessModes": ["RWO"]}}],
            "template": {
                "metadata": {"labels": {"app": "ds-alice"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "pytorch:1",
                            "args": ["--a"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "old"}],
                            "ports": [{"containerPort": 22, "name": "ssh"}],
                            "volumeMounts": [{"name": "home", "mountPath": "/home"}],
                        },
                        {"name": "sidecar", "image": "busybox"},
                    ],
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
                },
            },
        },
    }


def test_strategic_statefulset_realistic_patch() -> None:
    target = _statefulset()
    patch = {
        "metadata": {"finalizers": ["devservers.io/protect"]},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "main", "env": [{"name": "B", "value": "new"}, {"name": "C"}]},
                        {"name": "sidecar", "$patch": "delete"},
                    ],
                    "tolerations": [{"key": "spot", "operator": "Exists"}],
                }
            }
        },
    }

    result = apply_strategic_merge_patch(target, patch, kind="StatefulSet")

    pod_spec = result["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["containers"]] == ["main"]
    main = pod_spec["containers"][0]
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "new"}, {"name": "C"}]
    # Untouched fields of the merged element survive.
    assert main["image"] == "pytorch:1"
    assert main["ports"] == [{"containerPort": 22, "name": "ssh"}]
    assert pod_spec["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    assert set(result["metadata"]["finalizers"]) == {"devservers.io/cleanup", "devservers.io/protect"}
    assert len(result["metadata"]["finalizers"]) == 2
    assert result["spec"]["volumeClaimTemplates"] == target["spec"]["volumeClaimTemplates"]


def test_strategic_does_not_mutate_or_share_with_inputs() -> None:
    target = _statefulset()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "extra", "image": "x", "env": [{"name": "E", "value": "1"}]}],
                    "$setElementOrder/containers": [{"name": "main"}, {"name": "sidecar"}, {"name": "extra"}],
                }
            }
        }
    }
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)

    result = apply_strategic_merge_patch(target, patch, kind="StatefulSet")
    for container in result["spec"]["template"]["spec"]["containers"]:
        container["image"] = "mutated"
        container.setdefault("env", []).append({"name": "Z"})

    assert target == target_before
    assert patch == patch_before


def test_strategic_maps_merge_and_null_deletes() -> None:
    target = {"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}, "data": {"k": "v"}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}, "annotations": None}, "data": {"k2": "v2"}}

    result = apply_strategic_merge_patch(target, patch, kind="ConfigMap")

    assert result == {"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"k": "v", "k2": "v2"}}


def test_strategic_null_for_missing_key_is_dropped_not_stored() -> None:
    result = apply_strategic_merge_patch(
        {"data": {}}, {"data": {"gone": None}, "new": {"x": None}}, kind="Secret"
    )
    assert result == {"data": {}, "new": {}}


def test_strategic_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"ownerReferences": [{"uid": "u1", "name": "a", "controller": True}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}, {"uid": "u1", "name": "a2"}]}}

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    refs = {ref["uid"]: ref for ref in result["metadata"]["ownerReferences"]}
    assert refs == {"u1": {"uid": "u1", "name": "a2", "controller": True}, "u2": {"uid": "u2", "name": "b"}}


def test_strategic_container_ports_volume_mounts_and_volumes_merge_by_key() -> None:
    target = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "ports": [{"containerPort": 22, "name": "ssh"}],
                    "volumeMounts": [{"name": "home", "mountPath": "/home"}],
                    "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
                }
            ],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "h"}}],
            "imagePullSecrets": [{"name": "reg1"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
            "initContainers": [{"name": "init", "image": "i1"}],
        }
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "ports": [
                        {"containerPort": 8888, "name": "jupyter"},
                        {"containerPort": 22, "name": "sshd"},
                    ],
                    "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                    "volumeDevices": [{"name": "raw2", "devicePath": "/dev/xvda"}],
                }
            ],
            "volumes": [{"name": "shm", "emptyDir": {}}],
            "imagePullSecrets": [{"name": "reg2"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
            "initContainers": [{"name": "init", "image": "i2"}],
        }
    }

    spec = apply_strategic_merge_patch(target, patch, kind="Pod")["spec"]

    main = spec["containers"][0]
    assert sorted((p["containerPort"], p["name"]) for p in main["ports"]) == [(22, "sshd"), (8888, "jupyter")]
    assert sorted(m["mountPath"] for m in main["volumeMounts"]) == ["/dev/shm", "/home"]
    assert main["volumeDevices"] == [{"name": "raw2", "devicePath": "/dev/xvda"}]
    assert sorted(v["name"] for v in spec["volumes"]) == ["home", "shm"]
    assert sorted(s["name"] for s in spec["imagePullSecrets"]) == ["reg1", "reg2"]
    assert spec["hostAliases"] == [{"ip": "10.0.0.1", "hostnames": ["b"]}]
    assert spec["initContainers"] == [{"name": "init", "image": "i2"}]


def test_strategic_args_command_and_tolerations_are_replaced() -> None:
    target = {
        "spec": {
            "containers": [{"name": "main", "args": ["a", "b"], "command": ["sh"]}],
            "tolerations": [{"key": "a"}, {"key": "b"}],
        }
    }
    patch = {
        "spec": {"containers": [{"name": "main", "args": ["c"], "command": ["bash"]}], "tolerations": []}
    }

    spec = apply_strategic_merge_patch(target, patch, kind="Pod")["spec"]

    assert spec["containers"][0]["args"] == ["c"]
    assert spec["containers"][0]["command"] == ["bash"]
    assert spec["tolerations"] == []


def test_strategic_pod_status_conditions_merge_by_type() -> None:
    target = {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "main", "ready": False}],
        }
    }
    patch = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "ready": True, "started": True}],
        }
    }

    status = apply_strategic_merge_patch(target, patch, kind="Pod")["status"]

    assert status["phase"] == "Running"
    assert status["conditions"] == [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]
    assert status["containerStatuses"] == [{"name": "main", "ready": True, "started": True}]


@pytest.mark.parametrize(
    "kind", ["Deployment", "StatefulSet", "ReplicaSet", "Namespace", "PersistentVolumeClaim"]
)
def test_strategic_status_conditions_merge_for_other_kinds(kind: str) -> None:
    target = {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "B", "status": "False"}]}}

    result = apply_strategic_merge_patch(target, patch, kind=kind)

    assert result["status"]["conditions"] == [
        {"type": "A", "status": "True"},
        {"type": "B", "status": "False"},
    ]


def test_strategic_crd_conditions_have_no_merge_key_and_are_replaced() -> None:
    target = {"status": {"conditions": [{"type": "Established"}, {"type": "NamesAccepted"}]}}
    patch = {"status": {"conditions": [{"type": "Terminating"}]}}

    result = apply_strategic_merge_patch(target, patch, kind="CustomResourceDefinition")

    assert result["status"]["conditions"] == [{"type": "Terminating"}]


def test_strategic_service_ports_merge_by_port() -> None:
    target = {"spec": {"ports": [{"port": 22, "targetPort": 22, "name": "ssh"}], "selector": {"app": "a"}}}
    patch = {"spec": {"ports": [{"port": 22, "targetPort": 2222}, {"port": 80, "name": "http"}]}}

    spec = apply_strategic_merge_patch(target, patch, kind="Service")["spec"]

    by_port = {p["port"]: p for p in spec["ports"]}
    assert by_port == {22: {"port": 22, "targetPort": 2222, "name": "ssh"}, 80: {"port": 80, "name": "http"}}
    assert spec["selector"] == {"app": "a"}


def test_strategic_node_addresses_merge_by_type_and_pod_cidrs_union() -> None:
    target = {
        "spec": {"podCIDRs": ["10.0.0.0/24"]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "1.1.1.1"}, {"type": "Hostname", "address": "n"}]
        },
    }
    patch = {
        "spec": {"podCIDRs": ["fd00::/64"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "2.2.2.2"}]},
    }

    result = apply_strategic_merge_patch(target, patch, kind="Node")

    assert sorted(result["spec"]["podCIDRs"]) == ["10.0.0.0/24", "fd00::/64"]
    assert {a["type"]: a["address"] for a in result["status"]["addresses"]} == {
        "InternalIP": "2.2.2.2",
        "Hostname": "n",
    }


def test_strategic_service_account_secrets_merge_by_name() -> None:
    target = {"secrets": [{"name": "token-a"}], "imagePullSecrets": [{"name": "pull-a"}]}
    patch = {"secrets": [{"name": "token-b"}], "imagePullSecrets": [{"name": "pull-b"}]}

    result = apply_strategic_merge_patch(target, patch, kind="ServiceAccount")

    assert sorted(s["name"] for s in result["secrets"]) == ["token-a", "token-b"]
    # ServiceAccount.imagePullSecrets carries no patch strategy, unlike PodSpec.imagePullSecrets.
    assert result["imagePullSecrets"] == [{"name": "pull-b"}]


def test_strategic_deployment_and_cronjob_pod_templates_merge_containers() -> None:
    deployment = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}
    cronjob = {
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}
        }
    }
    container_patch = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}

    deployment_result = apply_strategic_merge_patch(
        deployment, {"spec": {"template": {"spec": container_patch}}}, kind="Deployment"
    )
    cronjob_result = apply_strategic_merge_patch(
        cronjob, {"spec": {"jobTemplate": {"spec": {"template": {"spec": container_patch}}}}}, kind="CronJob"
    )

    expected = [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}]
    assert deployment_result["spec"]["template"]["spec"]["containers"] == expected
    assert cronjob_result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] == expected


def test_strategic_rbac_rules_are_replaced() -> None:
    target = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    patch = {"rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]}

    assert apply_strategic_merge_patch(target, patch, kind="ClusterRole")["rules"] == patch["rules"]


def test_strategic_patch_replace_directive_on_map() -> None:
    target = {
        "spec": {
            "containers": [{"name": "main", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "main", "resources": {"$patch": "replace", "limits": {"memory": "1Gi"}}}]
        }
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["spec"]["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}}


def test_strategic_patch_replace_directive_in_list_replaces_whole_list() -> None:
    target = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}
    patch = {
        "spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "3", "env": [{"name": "X"}]}]}
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["spec"]["containers"] == [{"name": "c", "image": "3", "env": [{"name": "X"}]}]


def test_strategic_patch_delete_directive_on_map_removes_it() -> None:
    target = {"spec": {"securityContext": {"runAsUser": 1000}, "hostname": "h"}}

    result = apply_strategic_merge_patch(
        target, {"spec": {"securityContext": {"$patch": "delete"}}}, kind="Pod"
    )

    assert result == {"spec": {"hostname": "h"}}


def test_strategic_patch_delete_directive_for_absent_element_is_harmless() -> None:
    target = {"spec": {"containers": [{"name": "a"}]}}

    result = apply_strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}}, kind="Pod"
    )

    assert result["spec"]["containers"] == [{"name": "a"}]


def test_strategic_patch_merge_directive_is_an_explicit_merge() -> None:
    target = {"metadata": {"labels": {"a": "1"}}}

    result = apply_strategic_merge_patch(
        target, {"metadata": {"labels": {"$patch": "merge", "b": "2"}}}, kind="Pod"
    )

    assert result == {"metadata": {"labels": {"a": "1", "b": "2"}}}


def test_strategic_delete_from_primitive_list() -> None:
    target = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}

    result = apply_strategic_merge_patch(target, patch, kind="Namespace")

    assert result == {"metadata": {"finalizers": ["a", "c"]}}


def test_strategic_finalizers_add_and_delete_in_one_patch() -> None:
    target = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert sorted(result["metadata"]["finalizers"]) == ["b", "c"]


def test_strategic_set_element_order_orders_merged_list() -> None:
    target = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}],
            "containers": [{"name": "new", "image": "n"}],
        }
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["spec"]["containers"] == [{"name": "a"}, {"name": "new", "image": "n"}, {"name": "b"}]
    assert "$setElementOrder/containers" not in result["spec"]


def test_strategic_set_element_order_alone_reorders_live_list() -> None:
    target = {"metadata": {"finalizers": ["x", "y", "z"]}}

    result = apply_strategic_merge_patch(
        target, {"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"]}}, kind="Pod"
    )

    assert result == {"metadata": {"finalizers": ["z", "y", "x"]}}


def test_strategic_set_element_order_on_replaced_list_is_stripped() -> None:
    target = {"spec": {"tolerations": [{"key": "a"}]}}
    patch = {"spec": {"$setElementOrder/tolerations": [{"key": "b"}], "tolerations": [{"key": "b"}]}}

    assert apply_strategic_merge_patch(target, patch, kind="Pod") == {"spec": {"tolerations": [{"key": "b"}]}}


def test_strategic_set_element_order_contradicting_patch_is_malformed() -> None:
    target = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "1"}],
        }
    }

    with pytest.raises(MalformedPatch, match="doesn't match"):
        apply_strategic_merge_patch(target, patch, kind="Pod")


def test_strategic_set_element_order_must_be_a_list() -> None:
    with pytest.raises(MalformedPatch, match="setElementOrder"):
        apply_strategic_merge_patch({}, {"metadata": {"$setElementOrder/finalizers": "a"}}, kind="Pod")


def test_strategic_retain_keys_clears_unlisted_fields() -> None:
    target = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}

    result = apply_strategic_merge_patch(target, patch, kind="Deployment")

    assert result == {"spec": {"strategy": {"type": "Recreate"}}}


def test_strategic_retain_keys_rejects_patch_keys_outside_the_list() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}

    with pytest.raises(MalformedPatch, match="retainKeys"):
        apply_strategic_merge_patch({"spec": {}}, patch, kind="Deployment")


def test_strategic_volume_retain_keys_switches_volume_source() -> None:
    target = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}
    patch = {
        "spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "c"}}]}
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}]


def test_strategic_directives_in_newly_added_fields_are_stripped() -> None:
    target = {"metadata": {"name": "p"}}
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "1",
                    "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}],
                },
                {"name": "gone", "$patch": "delete"},
            ],
            "tolerations": [{"key": "t", "$patch": "delete"}, {"key": "u"}],
            "securityContext": {"$patch": "replace", "runAsUser": 1},
            "dnsConfig": {"$patch": "delete"},
            "$setElementOrder/volumes": [{"name": "v"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        }
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["spec"] == {
        "containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}],
        "tolerations": [{"key": "u"}],
        "securityContext": {"runAsUser": 1},
        "volumes": [{"name": "v", "emptyDir": {}}],
    }


def test_strategic_patch_ordering_follows_apiserver_rules() -> None:
    # The example of the "preserve order in strategic merge patch" design: A and B change, D is added,
    # C is only on the server and keeps its place ahead of the patched items.
    target = {"spec": {"containers": [{"name": "B"}, {"name": "C"}, {"name": "A"}]}}
    patch = {
        "spec": {"containers": [{"name": "A", "image": "a"}, {"name": "B", "image": "b"}, {"name": "D"}]}
    }

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert [c["name"] for c in result["spec"]["containers"]] == ["C", "A", "B", "D"]


def test_strategic_new_items_without_set_element_order_go_first_like_apiserver() -> None:
    target = {"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "main"}]}}
    patch = {"metadata": {"finalizers": ["c"]}, "spec": {"containers": [{"name": "sidecar"}]}}

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["metadata"]["finalizers"] == ["c", "a", "b"]
    assert [c["name"] for c in result["spec"]["containers"]] == ["sidecar", "main"]


def test_strategic_primitive_merge_list_deduplicates() -> None:
    target = {"metadata": {"finalizers": ["a", "b"]}}

    result = apply_strategic_merge_patch(target, {"metadata": {"finalizers": ["b", "a"]}}, kind="Pod")

    assert sorted(result["metadata"]["finalizers"]) == ["a", "b"]
    assert len(result["metadata"]["finalizers"]) == 2


def test_strategic_type_change_replaces_value() -> None:
    target = {"data": {"k": {"nested": 1}}, "spec": {"containers": [{"name": "a", "args": "x"}]}}
    patch = {"data": {"k": "flat"}, "spec": {"containers": [{"name": "a", "args": ["y"]}]}}

    result = apply_strategic_merge_patch(target, patch, kind="Pod")

    assert result["data"] == {"k": "flat"}
    assert result["spec"]["containers"] == [{"name": "a", "args": ["y"]}]


def test_strategic_root_delete_directive_yields_empty_object() -> None:
    assert apply_strategic_merge_patch({"a": 1}, {"$patch": "delete"}, kind="ConfigMap") == {}


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"containers": [{"image": "no-name"}]}},
        {"spec": {"containers": [{"$patch": "delete", "image": "no-name"}]}},
        {"spec": {"securityContext": {"$patch": "explode"}}},
        {"spec": {"containers": [{"name": "a", "$patch": "explode"}]}},
        {"spec": {"$unknownDirective": 1}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        {"metadata": {"$retainKeys": "name"}},
    ],
)
def test_strategic_malformed_patches(patch: dict[str, Any]) -> None:
    target = {
        "metadata": {"finalizers": ["a"]},
        "spec": {"containers": [{"name": "a"}], "securityContext": {}},
    }
    with pytest.raises(MalformedPatch):
        apply_strategic_merge_patch(target, patch, kind="Pod")


@pytest.mark.parametrize("patch", [["a"], "x", None, 3])
def test_strategic_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(MalformedPatch, match="cannot unmarshal"):
        apply_strategic_merge_patch({}, patch, kind="Pod")


def test_strategic_incompatible_list_elements_fail_to_apply() -> None:
    target = {"metadata": {"finalizers": ["a"]}}
    with pytest.raises(PatchFailed, match="not identical"):
        apply_strategic_merge_patch(target, {"metadata": {"finalizers": [{"name": "x"}]}}, kind="Pod")
    with pytest.raises(PatchFailed, match="lists of lists"):
        apply_strategic_merge_patch(target, {"metadata": {"finalizers": [["x"]]}}, kind="Pod")


def test_strategic_unknown_kind_only_knows_object_meta() -> None:
    target = {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a", "image": "1"}]}}
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "b"}]}}

    result = apply_strategic_merge_patch(target, patch, kind="DevServer")

    assert sorted(result["metadata"]["finalizers"]) == ["a", "b"]
    assert result["spec"]["containers"] == [{"name": "b"}]


@pytest.mark.parametrize(
    "kind",
    [
        "Pod",
        "Service",
        "StatefulSet",
        "Deployment",
        "ReplicaSet",
        "ConfigMap",
        "Secret",
        "Namespace",
        "Node",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "Event",
        "Lease",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ],
)
def test_strategic_merge_supported_for_builtin_kinds(kind: str) -> None:
    assert strategic_merge_supported(kind) is True


@pytest.mark.parametrize("kind", ["DevServer", "devserver", "", "Pods"])
def test_strategic_merge_not_supported_for_custom_or_unknown_kinds(kind: str) -> None:
    assert strategic_merge_supported(kind) is False
