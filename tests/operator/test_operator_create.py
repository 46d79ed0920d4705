"""A DevServer becomes a StatefulSet, a headless Service and home volumes, owned and labelled, and its
status says Running only once its pods are Ready. Distributed mode wires the torchrun environment."""

from __future__ import annotations

import time
import urllib.request

import pytest

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle
from tests.operator.conftest import MASTER_PORT, OperatedNamespace, OperatorProcess, request_counts, stays

pytestmark = pytest.mark.slow


@pytest.mark.emulator_only
def test_a_standalone_create_costs_at_most_eight_api_requests(operated: OperatedNamespace, cluster: ClusterHandle) -> None:
    def operator_requests() -> dict[str, int]:
        counts = request_counts(cluster)
        own = ("get devservers", "create devservers", "total")  # the test's own create and polling
        return {key: value for key, value in counts.items() if key not in own and not key.startswith("watch")}

    # The baseline is taken once the operator is quiet: its start-up LISTs are not the cost of a create.
    before = operator_requests()
    deadline = time.monotonic() + 30
    while True:
        time.sleep(0.5)
        now = operator_requests()
        if now == before:
            break
        assert time.monotonic() < deadline, "the operator never went quiet"
        before = now
    operated.create("cheap")
    operated.wait_phase("cheap", "Running")
    after = operator_requests()
    stays(lambda: operator_requests() == after, 0.5, message="the operator keeps writing after Running")
    spent = {key: count - before.get(key, 0) for key, count in after.items() if count != before.get(key, 0)}
    assert spent.get("create statefulsets") == spent.get("create services") == 1, spent
    print("operator requests for one standalone create:", spent)
    assert sum(spent.values()) <= 8, spent


def test_standalone_create_runs_with_owned_labelled_objects(operated: OperatedNamespace) -> None:
    created = operated.create("solo", persistentHomeSize="1Gi")
    server = operated.wait_phase("solo", "Running")
    uid = created["metadata"]["uid"]
    status = server["status"]
    assert status["readyReplicas"] == 1 and status["replicas"] == 1 and status["pods"] == ["solo-0"]
    assert status["observedGeneration"] == server["metadata"]["generation"]
    assert status["expiresAt"]  # cpu-small has maxTimeToLive 7d: a deadline even without timeToLive
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Degraded"]["status"] == "False"
    assert conditions["Idle"]["reason"] == "Active"

    labels = {
        "app.kubernetes.io/name": "devserver",
        "app.kubernetes.io/instance": "solo",
        "app.kubernetes.io/managed-by": "devservers-operator",
        "devservers.io/name": "solo",
        "devservers.io/owner": "alice",
    }
    statefulset, service = operated.statefulset("solo"), operated.service("solo")
    for obj in (statefulset, service):
        assert labels.items() <= obj.metadata.labels.items()
        (owner,) = obj.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("DevServer", "solo", uid, True)
    assert statefulset.spec.replicas == 1 and statefulset.spec.pod_management_policy == "Parallel"
    assert statefulset.spec.persistent_volume_claim_retention_policy.when_deleted == "Delete"
    assert service.spec.cluster_ip == "None" and service.spec.publish_not_ready_addresses

    (pod,) = operated.pods("solo")
    assert labels.items() <= pod.metadata.labels.items()
    container = pod.spec.containers[0]
    env = {var.name: var.value for var in container.env}
    assert env["DEVSERVER_NAME"] == "solo" and env["HOME"] == "/home/dev"
    assert not {"PET_NNODES", "RANK", "WORLD_SIZE"} & env.keys()
    assert container.image == "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"  # the flavor's default image
    assert container.resources.limits == {"cpu": "1", "memory": "2Gi"}
    assert container.security_context.allow_privilege_escalation is False
    assert (
        pod.spec.security_context.run_as_non_root
        and pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    )
    (claim,) = operated.claims("solo")
    assert claim.metadata.name == "home-solo-0" and claim.spec.resources.requests["storage"] == "1Gi"

    table = operated.kubectl("get", "devservers").stdout
    assert "solo" in table and "Running" in table, table


def test_distributed_pods_get_the_torchrun_environment_and_find_rank_zero(operated: OperatedNamespace) -> None:
    operated.create(
        "group",
        mode="distributed",
        distributed={"worldSize": 2, "nprocsPerNode": 2, "ncclSettings": {"NCCL_DEBUG": "INFO"}},
    )
    server = operated.wait_phase("group", "Running")
    assert server["status"]["pods"] == ["group-0", "group-1"] and server["status"]["readyReplicas"] == 2
    master = f"group-0.group.{operated.namespace}.svc.cluster.local"
    for rank in (0, 1):
        env = dict(
            line.split("=", 1) for line in operated.exec(f"group-{rank}", "env").splitlines() if "=" in line
        )
        assert env["PET_NNODES"] == env["NNODES"] == "2"
        assert env["PET_NPROC_PER_NODE"] == env["NPROC_PER_NODE"] == "2"
        assert env["PET_NODE_RANK"] == env["NODE_RANK"] == str(rank)
        assert env["PET_MASTER_ADDR"] == env["MASTER_ADDR"] == master
        assert env["PET_MASTER_PORT"] == env["MASTER_PORT"] == MASTER_PORT  # the operator's setting
        assert env["NCCL_DEBUG"] == "INFO"
        assert "RANK" not in env and "WORLD_SIZE" not in env
    # Rank 1 resolves rank 0's stable name through the headless Service.
    resolved = operated.exec("group-1", f"getent hosts {master}")
    assert master in resolved, resolved
    assert operated.statefulset("group").spec.replicas == 2


def test_liveness_endpoint_answers(operator: OperatorProcess) -> None:
    with urllib.request.urlopen(operator.liveness, timeout=5) as response:
        assert response.status == 200
