"""Server-side printing: the meta.k8s.io/v1 Tables that ``kubectl get`` renders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver.tables import human_duration, parse_time, table_for

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def meta(name: str, created: str = "2024-05-01T11:56:48Z", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": created, **extra}


def names(table: dict[str, Any]) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def cells(table: dict[str, Any], index: int = 0) -> list[Any]:
    return table["rows"][index]["cells"]


def by_name(table: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return dict(zip(names(table), cells(table, index), strict=True))


# --- ages ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 4 * 60, "5h4m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400 + 5 * 3600, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400 + 30 * 86400, "2y30d"),
        (3 * 365 * 86400, "3y"),
        (9 * 365 * 86400 + 100 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_parse_time_accepts_rfc3339_and_micro_time() -> None:
    assert parse_time("2024-05-01T11:00:00Z") == datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert parse_time("2024-05-01T11:00:00.123456789Z") == datetime(2024, 5, 1, 11, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2024-05-01") is None
    assert parse_time(None) is None


# --- table envelope -----------------------------------------------------------------------------------------


def test_table_envelope_and_partial_object_metadata() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg"), "data": {"a": "1", "b": "2"}}
    table = table_for(
        [cm], kind="ConfigMap", group="", list_meta={"resourceVersion": "42", "continue": "abc"}, now=NOW
    )
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "abc"}
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": cm["metadata"],
    }
    assert set(table["columnDefinitions"][0]) == {"name", "type", "format", "description", "priority"}


def test_include_object_none_and_object() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg")}
    assert (
        table_for([cm], kind="ConfigMap", group="", include_object="None", now=NOW)["rows"][0]["object"]
        is None
    )
    assert (
        table_for([cm], kind="ConfigMap", group="", include_object="Object", now=NOW)["rows"][0]["object"]
        == cm
    )


def test_empty_list_keeps_columns() -> None:
    table = table_for([], kind="Pod", group="", now=NOW)
    assert table["rows"] == []
    assert names(table)[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]


# --- pods ---------------------------------------------------------------------------------------------------


def running_pod(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("web-0"),
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": "x"}}}
            ],
            **status,
        },
    }


def test_pod_columns_and_priorities() -> None:
    table = table_for([running_pod()], kind="Pod", group="", now=NOW)
    assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert cells(table) == ["web-0", "1/1", "Running", "0", "3m12s", "10.0.0.5", "node-1", "<none>", "<none>"]


def test_pod_pending_container_creating() -> None:
    pod = running_pod(
        phase="Pending",
        podIP=None,
        conditions=[],
        containerStatuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
        ],
    )
    row = by_name(table_for([pod], kind="Pod", group="", now=NOW))
    assert (row["Ready"], row["Status"], row["IP"]) == ("0/1", "ContainerCreating", "<none>")


def test_pod_crash_loop_with_restart_age() -> None:
    pod = running_pod(
        containerStatuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:00Z"}},
            }
        ]
    )
    row = by_name(table_for([pod], kind="Pod", group="", now=NOW))
    assert (row["Ready"], row["Status"], row["Restarts"]) == ("0/1", "CrashLoopBackOff", "4 (60s ago)")


def test_pod_terminating_and_completed() -> None:
    terminating = running_pod()
    terminating["metadata"]["deletionTimestamp"] = "2024-05-01T11:59:59Z"
    assert by_name(table_for([terminating], kind="Pod", group="", now=NOW))["Status"] == "Terminating"

    done = running_pod(
        phase="Succeeded",
        containerStatuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ],
    )
    done["metadata"]["deletionTimestamp"] = "2024-05-01T11:59:59Z"
    table = table_for([done], kind="Pod", group="", now=NOW)
    assert by_name(table)["Status"] == "Completed"  # terminal pods are not "Terminating"
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_pod_exit_code_without_reason() -> None:
    pod = running_pod(
        phase="Failed",
        containerStatuses=[{"name": "app", "ready": False, "state": {"terminated": {"exitCode": 137}}}],
    )
    assert by_name(table_for([pod], kind="Pod", group="", now=NOW))["Status"] == "ExitCode:137"


def test_pod_init_containers() -> None:
    pod = running_pod(
        phase="Pending",
        conditions=[],
        initContainerStatuses=[
            {"name": "init-a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "init-b", "state": {"running": {}}},
        ],
        containerStatuses=[
            {"name": "app", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    )
    pod["spec"]["initContainers"] = [{"name": "init-a"}, {"name": "init-b"}]
    assert by_name(table_for([pod], kind="Pod", group="", now=NOW))["Status"] == "Init:1/2"

    pod["status"]["initContainerStatuses"][1] = {
        "name": "init-b",
        "state": {"waiting": {"reason": "ErrImagePull"}},
    }
    assert by_name(table_for([pod], kind="Pod", group="", now=NOW))["Status"] == "Init:ErrImagePull"


def test_pod_sidecar_counts_towards_ready() -> None:
    pod = running_pod(
        conditions=[{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        initContainerStatuses=[
            {"name": "proxy", "started": True, "ready": True, "restartCount": 1, "state": {"running": {}}}
        ],
    )
    pod["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    row = by_name(table_for([pod], kind="Pod", group="", now=NOW))
    assert (row["Ready"], row["Status"], row["Restarts"]) == ("2/2", "Running", "1")


def test_pod_readiness_gates_and_pod_ips() -> None:
    pod = running_pod(podIPs=[{"ip": "fd00::5"}], nominatedNodeName="node-2")
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/ready"}, {"conditionType": "other"}]
    pod["status"]["conditions"].append({"type": "example.com/ready", "status": "True"})
    row = by_name(table_for([pod], kind="Pod", group="", now=NOW))
    assert (row["IP"], row["Nominated Node"], row["Readiness Gates"]) == ("fd00::5", "node-2", "1/2")


# --- other built-in kinds -----------------------------------------------------------------------------------


def test_statefulset() -> None:
    sts = {
        "metadata": meta("db"),
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "pg", "image": "postgres:16"},
                        {"name": "exporter", "image": "exp:1"},
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2},
    }
    table = table_for([sts], kind="StatefulSet", group="apps", now=NOW)
    assert names(table) == ["Name", "Ready", "Age", "Containers", "Images"]
    assert cells(table) == ["db", "2/3", "3m12s", "pg,exporter", "postgres:16,exp:1"]


def test_deployment() -> None:
    deploy = {
        "metadata": meta("api"),
        "spec": {
            "replicas": 2,
            "selector": {
                "matchLabels": {"app": "api"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}},
        },
        "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
    }
    table = table_for([deploy], kind="Deployment", group="apps", now=NOW)
    assert names(table) == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    assert cells(table) == ["api", "1/2", 2, 1, "3m12s", "api", "api:1", "app=api,tier in (a,b)"]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}},
         {}, ["ClusterIP", "10.96.0.10", "<none>", "80/TCP", "app=web"]),
        ({"clusterIP": "None", "clusterIPs": ["None"]}, {}, ["ClusterIP", "None", "<none>", "<none>", "<none>"]),
        ({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
         {}, ["NodePort", "10.96.0.11", "<none>", "80:30080/TCP,53/UDP", "<none>"]),
        ({"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443}]},
         {}, ["LoadBalancer", "10.96.0.12", "<pending>", "443/TCP", "<none>"]),
        ({"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443}]},
         {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb.example.com"}]}},
         ["LoadBalancer", "10.96.0.12", "1.2.3.4,lb.example.com", "443/TCP", "<none>"]),
        ({"type": "ExternalName", "externalName": "db.example.com"}, {}, ["ExternalName", "<none>", "db.example.com", "<none>", "<none>"]),
    ],
)  # fmt: skip
def test_service(spec: dict[str, Any], status: dict[str, Any], expected: list[str]) -> None:
    table = table_for(
        [{"metadata": meta("svc"), "spec": spec, "status": status}], kind="Service", group="", now=NOW
    )
    assert names(table) == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    row = by_name(table)
    assert [row["Type"], row["Cluster-IP"], row["External-IP"], row["Port(s)"], row["Selector"]] == expected
    assert table["columnDefinitions"][-1]["priority"] == 1


def test_namespace_configmap_secret_serviceaccount_lease() -> None:
    ns = table_for(
        [{"metadata": meta("dev"), "status": {"phase": "Active"}}], kind="Namespace", group="", now=NOW
    )
    assert (names(ns), cells(ns)) == (["Name", "Status", "Age"], ["dev", "Active", "3m12s"])

    cm = {"metadata": meta("cfg"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    assert cells(table_for([cm], kind="ConfigMap", group="", now=NOW)) == ["cfg", 2, "3m12s"]

    secret = {"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "x", "tls.key": "y"}}
    sec = table_for([secret], kind="Secret", group="", now=NOW)
    assert (names(sec), cells(sec)) == (
        ["Name", "Type", "Data", "Age"],
        ["tls", "kubernetes.io/tls", 2, "3m12s"],
    )
    assert cells(table_for([{"metadata": meta("opaque")}], kind="Secret", group="", now=NOW))[1] == "Opaque"

    sa = table_for([{"metadata": meta("default")}], kind="ServiceAccount", group="", now=NOW)
    assert (names(sa), cells(sa)) == (["Name", "Secrets", "Age"], ["default", 0, "3m12s"])

    lease = {"metadata": meta("leader"), "spec": {"holderIdentity": "op-1"}}
    table = table_for([lease], kind="Lease", group="coordination.k8s.io", now=NOW)
    assert (names(table), cells(table)) == (["Name", "Holder", "Age"], ["leader", "op-1", "3m12s"])


def test_persistent_volume_claims() -> None:
    bound = {
        "metadata": meta("data-db-0"),
        "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem"},
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        },
    }
    pending = {
        "metadata": meta("data-db-1"),
        "spec": {"storageClassName": "standard"},
        "status": {"phase": "Pending"},
    }
    table = table_for([bound, pending], kind="PersistentVolumeClaim", group="", now=NOW)
    assert names(table) == [
        "Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass", "Age", "VolumeMode",
    ]  # fmt: skip
    assert cells(table, 0) == [
        "data-db-0",
        "Bound",
        "pv-1",
        "10Gi",
        "RWO,RWX",
        "standard",
        "<unset>",
        "3m12s",
        "Filesystem",
    ]
    assert cells(table, 1) == ["data-db-1", "Pending", "", "", "", "standard", "<unset>", "3m12s", "<unset>"]


def test_node() -> None:
    node = {
        "metadata": meta(
            "kind-control-plane",
            labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
        ),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": "kind"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.37.0",
                "osImage": "Debian",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "containerd://2.0",
            },
        },
    }
    table = table_for([node], kind="Node", group="", now=NOW)
    assert names(table)[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert cells(table) == [
        "kind-control-plane", "Ready,SchedulingDisabled", "control-plane,worker", "3m12s", "v1.37.0",
        "172.18.0.2", "<none>", "Debian", "6.1", "containerd://2.0",
    ]  # fmt: skip
    bare = by_name(table_for([{"metadata": meta("n")}], kind="Node", group="", now=NOW))
    assert (bare["Status"], bare["Roles"], bare["OS-Image"]) == ("Unknown", "<none>", "<unknown>")


def test_core_event() -> None:
    event = {
        "metadata": meta("web-0.17a"),
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled",
        "message": "  Successfully pulled image  ",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T11:50:00Z",
        "lastTimestamp": "2024-05-01T11:59:30Z",
        "count": 3,
    }
    table = table_for([event], kind="Event", group="", now=NOW)
    assert names(table) == [
        "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name",
    ]  # fmt: skip
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    assert cells(table) == [
        "30s", "Normal", "Pulled", "pod/web-0", "spec.containers{app}", "kubelet, node-1",
        "Successfully pulled image", "10m", 3, "web-0.17a",
    ]  # fmt: skip


def test_events_k8s_io_event_uses_its_own_field_names() -> None:
    event = {
        "metadata": meta("e1"),
        "regarding": {"kind": "Widget", "name": "w1"},
        "reason": "Scaled",
        "note": "scaled to 3",
        "type": "Normal",
        "eventTime": "2024-05-01T11:58:00.000000Z",
        "reportingController": "widget-operator",
    }
    row = by_name(table_for([event], kind="Event", group="events.k8s.io", now=NOW))
    assert (row["Last Seen"], row["Object"], row["Message"], row["Source"], row["Count"]) == (
        "2m", "widget/w1", "scaled to 3", "widget-operator", 1,
    )  # fmt: skip


def test_role_and_crd_use_the_default_convertor() -> None:
    crd = {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-05-01T13:00:00+02:00"}}
    table = table_for([crd], kind="CustomResourceDefinition", group="apiextensions.k8s.io", now=NOW)
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert cells(table) == ["widgets.example.com", "2024-05-01T11:00:00Z"]
    role = table_for([{"metadata": meta("reader")}], kind="Role", group="rbac.authorization.k8s.io", now=NOW)
    assert cells(role) == ["reader", "2024-05-01T11:56:48Z"]


def test_role_binding_lists_subjects() -> None:
    binding = {
        "metadata": meta("rb"),
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "op", "namespace": "sys"},
        ],
    }
    table = table_for([binding], kind="RoleBinding", group="rbac.authorization.k8s.io", now=NOW)
    assert cells(table) == ["rb", "ClusterRole/edit", "3m12s", "alice", "devs", "sys/op"]


# --- custom resources ---------------------------------------------------------------------------------------

WIDGET_COLUMNS = [
    {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "Desired replicas"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Owner", "type": "string", "jsonPath": ".spec.owner", "priority": 1},
    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Expires", "type": "date", "jsonPath": ".spec.expires"},
    {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": meta(name, created="2024-05-01T11:00:00Z", labels={"team": "ml"}),
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_custom_resource_printer_columns() -> None:
    objects = [
        widget(
            "w1",
            size="small",
            replicas=3,
            owner="alice",
            ratio=1,
            paused=False,
            expires="2024-05-01T11:55:00Z",
        ),
        widget("w2", size="large", replicas="3", expires="not a date"),
    ]
    table = table_for(objects, kind="Widget", group="example.com", printer_columns=WIDGET_COLUMNS, now=NOW)
    assert [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", 0),
        ("Size", "string", 0),
        ("Replicas", "integer", 0),
        ("Ready", "string", 0),
        ("Owner", "string", 1),
        ("Ratio", "number", 0),
        ("Paused", "boolean", 0),
        ("Expires", "date", 0),
        ("Labels", "string", 0),
        ("Age", "date", 0),
    ]
    descriptions = {c["name"]: c["description"] for c in table["columnDefinitions"]}
    assert descriptions["Replicas"] == "Desired replicas"
    assert descriptions["Size"] == "Custom resource definition column (in JSONPath format): .spec.size"
    assert cells(table, 0) == ["w1", "small", 3, "True", "alice", 1.0, False, "5m", '{"team":"ml"}', "60m"]
    # Missing values are null cells (kubectl prints <none>); wrong types too; bad dates are "<invalid>".
    assert cells(table, 1) == [
        "w2",
        "large",
        None,
        "True",
        None,
        None,
        None,
        "<invalid>",
        '{"team":"ml"}',
        "60m",
    ]


def test_custom_resource_without_columns_gets_age() -> None:
    table = table_for([widget("w1")], kind="Widget", group="example.com", now=NOW)
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert cells(table) == ["w1", "60m"]


def test_string_column_renders_non_strings_like_kubectl() -> None:
    columns = [
        {"name": "N", "type": "string", "jsonPath": ".spec.n"},
        {"name": "F", "type": "string", "jsonPath": ".spec.f"},
    ]
    table = table_for(
        [widget("w", n=3, f=1e7)], kind="Widget", group="example.com", printer_columns=columns, now=NOW
    )
    assert cells(table) == ["w", "3", "1e+07"]


def test_integer_column_truncates_floats() -> None:
    columns = [{"name": "N", "type": "integer", "jsonPath": ".spec.n"}]
    table = table_for(
        [widget("w", n=2.9)], kind="Widget", group="example.com", printer_columns=columns, now=NOW
    )
    assert cells(table) == ["w", 2]


@pytest.mark.parametrize(
    ("group", "kind", "obj", "expected"),
    [
        ("", "Endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}]}]},
         ["x", "10.0.0.1:80,[fd00::1]:80", "3m12s"]),
        ("", "Endpoints", {"subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)]}]},
         ["x", "10.0.0.0,10.0.0.1,10.0.0.2 + 2 more...", "3m12s"]),
        ("", "Endpoints", {}, ["x", "<none>", "3m12s"]),
        ("", "ResourceQuota", {"status": {"hard": {"pods": "10", "limits.cpu": "4", "requests.cpu": "2"}, "used": {"pods": "1"}}},
         ["x", "pods: 1/10, requests.cpu: 0/2", "limits.cpu: 0/4", "3m12s"]),
        ("storage.k8s.io", "StorageClass",
         {"provisioner": "rancher.io/local-path", "metadata": meta("x", annotations={"storageclass.kubernetes.io/is-default-class": "true"})},
         ["x (default)", "rancher.io/local-path", "Delete", "Immediate", False, "3m12s"]),
        ("policy", "PodDisruptionBudget", {"spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}},
         ["x", "1", "N/A", 0, "3m12s"]),
        ("scheduling.k8s.io", "PriorityClass", {"value": 1000, "preemptionPolicy": "Never"},
         ["x", 1000, False, "3m12s", "Never"]),
        ("apps", "ControllerRevision",
         {"revision": 2, "metadata": meta("x", ownerReferences=[{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": True}])},
         ["x", "statefulset.apps/db", 2, "3m12s"]),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", {"webhooks": [{}, {}]}, ["x", 2, "3m12s"]),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding",
         {"spec": {"policyName": "p", "paramRef": {"name": "cfg"}}}, ["x", "p", "*/cfg", "3m12s"]),
        ("apps", "ReplicaSet", {"spec": {"replicas": 2, "selector": {}}, "status": {"replicas": 2, "readyReplicas": 1}},
         ["x", 2, 2, 1, "3m12s", "", "", "<none>"]),
    ],
)  # fmt: skip
def test_other_builtin_printers(group: str, kind: str, obj: dict[str, Any], expected: list[Any]) -> None:
    obj = {"metadata": meta("x"), **obj}
    table = table_for([obj], kind=kind, group=group, now=NOW)
    assert cells(table) == expected
    assert len(table["columnDefinitions"]) == len(expected)
