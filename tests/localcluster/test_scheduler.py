"""The scheduler's pure parts: quantities, filters and the FailedScheduling wording."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from devservers_sdk.localcluster.controllers.scheduler import (
    claim_problems,
    filter_node,
    int_value,
    milli_value,
    parse_quantity,
    pod_requests,
    schedule,
    tolerates,
)


def node(
    name: str = "localcluster",
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    unschedulable: bool = False,
    **allocatable: str,
) -> dict[str, Any]:
    alloc = {
        "cpu": "4",
        "memory": "8Gi",
        "pods": "110",
        **{k.replace("_", "/"): v for k, v in allocatable.items()},
    }
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {"allocatable": alloc, "capacity": alloc},
    }


def pod(
    name: str = "p",
    *,
    requests: dict[str, str] | None = None,
    node_name: str | None = None,
    phase: str = "Pending",
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    body: dict[str, Any] = {"containers": [container], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": body,
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Fraction(1)),
        ("100m", Fraction(1, 10)),
        ("1Gi", Fraction(2**30)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("512Mi", Fraction(512 * 2**20)),
        ("1k", Fraction(1000)),
        ("129M", Fraction(129_000_000)),
        ("129e6", Fraction(129_000_000)),
        ("1E3", Fraction(1000)),
        ("12e-3", Fraction(12, 1000)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("+2", Fraction(2)),
        ("-1k", Fraction(-1000)),
        ("1Ki", Fraction(1024)),
        ("10n", Fraction(1, 10**8)),
        ("3u", Fraction(3, 10**6)),
        ("2Ti", Fraction(2 * 2**40)),
        (" 2 ", Fraction(2)),
    ],
)
def test_parse_quantity(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "Gi", "1GG", "abc", "1.2.3", "1 Gi", "1gi", "1K", "e3", "0x10"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_numbers_and_rounding() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.25) == Fraction(1, 4)
    assert milli_value("0.1") == 100
    assert milli_value("1") == 1000
    assert milli_value("1u") == 1  # MilliValue rounds up
    assert int_value("1.5") == 2
    assert int_value("100m") == 1


def test_pod_requests_sum_containers_and_take_init_peak() -> None:
    spec = {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}}},
        ],
        "initContainers": [
            {"name": "i1", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}},
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "250m"}}},
        ],
    }
    requests = pod_requests(spec)
    # cpu: max(0.5 + 1 + 0.25 sidecar, 3 init) = 3 cores; limits count when requests are absent.
    assert requests == {"cpu": 3000, "memory": 2**30, "nvidia.com/gpu": 1}


def test_gpu_shortage_message_is_the_real_one() -> None:
    gpu_node = node(**{"nvidia.com_gpu": "2"})
    holder = pod("holder", requests={"nvidia.com/gpu": "1"}, node_name="localcluster", phase="Running")
    wants = pod("wants", requests={"nvidia.com/gpu": "2"})
    decision = schedule(wants, [gpu_node], [holder, wants])
    assert decision.node is None
    assert decision.message == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
        "available: 1 No preemption victims found for incoming pod."
    )
    # A finished pod holds nothing, as the real scheduler ignores terminal pods.
    done = {**holder, "status": {"phase": "Succeeded"}}
    assert schedule(wants, [gpu_node], [done, wants]).node == "localcluster"


def test_extended_resource_missing_from_node_is_insufficient() -> None:
    decision = schedule(pod(requests={"nvidia.com/gpu": "1"}), [node()], [])
    assert "1 Insufficient nvidia.com/gpu." in decision.message


def test_several_insufficient_resources_are_sorted() -> None:
    decision = schedule(pod(requests={"cpu": "64", "memory": "1Ti"}), [node()], [])
    assert decision.message.startswith("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. ")


def test_node_selector_mismatch() -> None:
    decision = schedule(pod(nodeSelector={"disk": "ssd"}), [node()], [])
    assert decision.message == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert (
        schedule(pod(nodeSelector={"disk": "ssd"}), [node(labels={"disk": "ssd"})], []).node == "localcluster"
    )


def test_required_node_affinity() -> None:
    def affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": list(expressions)}]
                }
            }
        }

    n = node(labels={"zone": "a", "gpus": "4"})
    fits = [
        affinity({"key": "zone", "operator": "In", "values": ["a", "b"]}),
        affinity({"key": "zone", "operator": "NotIn", "values": ["c"]}),
        affinity({"key": "gpus", "operator": "Gt", "values": ["2"]}),
        affinity({"key": "zone", "operator": "Exists"}),
        affinity({"key": "missing", "operator": "DoesNotExist"}),
    ]
    for a in fits:
        assert filter_node(pod(affinity=a), n, []).fits, a
    misses = [
        affinity({"key": "zone", "operator": "In", "values": ["b"]}),
        affinity({"key": "gpus", "operator": "Lt", "values": ["2"]}),
        affinity({"key": "zone", "operator": "DoesNotExist"}),
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}},
    ]
    for a in misses:
        assert not filter_node(pod(affinity=a), n, []).fits, a
    by_name = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["localcluster"]}]}
                ]
            }
        }
    }
    assert filter_node(pod(affinity=by_name), n, []).fits


def test_taints_and_tolerations() -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    tainted = node(taints=[taint, {"key": "soft", "effect": "PreferNoSchedule"}])
    decision = schedule(pod(), [tainted], [])
    assert decision.message == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert tolerates([{"key": "dedicated", "operator": "Equal", "value": "gpu"}], taint)
    assert tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([{"key": "dedicated", "value": "cpu"}], taint)
    assert not tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], taint)
    tolerant = pod(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert schedule(tolerant, [tainted], []).node == "localcluster"


def test_cordoned_node() -> None:
    decision = schedule(pod(), [node(unschedulable=True)], [])
    assert decision.message.startswith("0/1 nodes are available: 1 node(s) were unschedulable.")


def test_host_ports_and_pod_count() -> None:
    def with_port(name: str, port: int, node_name: str | None = None) -> dict[str, Any]:
        p = pod(name, node_name=node_name, phase="Running" if node_name else "Pending")
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": port, "protocol": "TCP"}]
        return p

    busy = with_port("busy", 8080, "localcluster")
    assert "free ports" in schedule(with_port("new", 8080), [node()], [busy]).message
    assert schedule(with_port("new", 8081), [node()], [busy]).node == "localcluster"
    full = node(pods="1")
    decision = schedule(pod("new"), [full], [pod("old", node_name="localcluster", phase="Running")])
    assert "1 Too many pods" in decision.message


def test_no_nodes_and_choice_among_nodes() -> None:
    assert schedule(pod(), [], []).message == "no nodes available to schedule pods"
    busy = node("a")
    idle = node("b")
    running = pod("r", requests={"cpu": "2"}, node_name="a", phase="Running")
    assert schedule(pod(requests={"cpu": "1"}), [busy, idle], [running]).node == "b"
    decision = schedule(pod(requests={"cpu": "3"}), [busy, node("c", cpu="1")], [running])
    assert decision.message.startswith("0/2 nodes are available: 2 Insufficient cpu.")


def test_claim_problems() -> None:
    p = pod(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    assert claim_problems(p, {}, {}) == ['persistentvolumeclaim "data" not found']
    pending = {
        "metadata": {"name": "data"},
        "spec": {"storageClassName": "standard"},
        "status": {"phase": "Pending"},
    }
    assert claim_problems(p, {"data": pending}, {"standard": "Immediate"}) == [
        "pod has unbound immediate PersistentVolumeClaims"
    ]
    assert claim_problems(p, {"data": pending}, {"standard": "WaitForFirstConsumer"}) == []
    bound = {**pending, "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    assert claim_problems(p, {"data": bound}, {}) == []
    message = schedule(p, [node()], [], pre_reasons=claim_problems(p, {}, {})).message
    assert message == (
        '0/1 nodes are available: persistentvolumeclaim "data" not found. preemption: 0/1 nodes are '
        "available: 1 Preemption is not helpful for scheduling."
    )
