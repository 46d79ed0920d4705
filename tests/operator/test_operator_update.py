"""Spec changes reach the pods: complete objects are applied (a removed GPU limit is removed), rollouts keep
the home volumes, and pod problems (unschedulable, image pull) reach the DevServer's status and Events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace, ready

pytestmark = pytest.mark.slow


def _template_container(operated: OperatedNamespace, name: str) -> Any:
    return operated.statefulset(name).spec.template.spec.containers[0]


def test_flavor_update_rolls_the_pod_and_keeps_home_data(operated: OperatedNamespace) -> None:
    operated.create("roll", persistentHomeSize="1Gi")
    operated.wait_phase("roll", "Running")
    (before,) = operated.pods("roll")
    operated.exec("roll-0", "echo precious > /home/dev/notes.txt")

    operated.patch("roll", {"spec": {"flavor": "cpu-medium"}})

    def on_new_pod(server: dict[str, Any]) -> bool:
        pods = operated.pods("roll")
        return (
            server["status"]["observedGeneration"] == server["metadata"]["generation"]
            and len(pods) == 1
            and pods[0].metadata.uid != before.metadata.uid
            and pods[0].spec.containers[0].resources.limits.get("cpu") == "4"
            and ready(pods[0])
        )

    operated.wait_phase("roll", "Running", check=on_new_pod)
    assert operated.exec("roll-0", "cat /home/dev/notes.txt").strip() == "precious"
    assert [claim.metadata.name for claim in operated.claims("roll")] == ["home-roll-0"]


A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}


def test_gpu_flavor_reports_the_scheduler_and_switching_to_cpu_removes_every_gpu_field(operated: OperatedNamespace) -> None:
    # The test node's GPUs are fake ones (nvidia.com/gpu.product Localcluster-Fake-GPU): no node is an A100.
    small = json.loads(operated.kubectl("get", "devserverflavor", "gpu-small", "-o", "json").stdout)
    a100 = {"apiVersion": small["apiVersion"], "kind": small["kind"], "metadata": {"name": "gpu-small-a100"},
            "spec": {**small["spec"], "nodeSelector": A100}}
    operated.kubectl("apply", "-f", "-", input_text=json.dumps(a100))
    operated.create("gpu", flavor="gpu-small-a100")
    server = operated.wait_phase(
        "gpu", "Pending", check=lambda s: "didn't match" in s["status"].get("message", "")
    )
    scheduled = next(c for c in server["status"]["conditions"] if c["type"] == "Scheduled")
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
    assert "0/1 nodes are available" in scheduled["message"], scheduled
    container = _template_container(operated, "gpu")
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert operated.statefulset("gpu").spec.template.spec.node_selector == A100
    wait_for(lambda: "FailedScheduling" in operated.event_reasons("gpu"), timeout=60,
             message="a FailedScheduling Event of DevServer gpu")

    operated.patch("gpu", {"spec": {"flavor": "cpu-small"}})
    operated.wait_phase("gpu", "Running")
    template = operated.statefulset("gpu").spec.template.spec
    limits = template.containers[0].resources.limits
    assert "nvidia.com/gpu" not in limits and limits == {"cpu": "1", "memory": "2Gi"}
    assert not template.node_selector and not template.tolerations
    env = {var.name: var.value for var in template.containers[0].env}
    assert env.get("NVIDIA_VISIBLE_DEVICES") == "void"
    operated.kubectl("delete", "devserverflavor", "gpu-small-a100")


def test_image_update_rolls_to_the_new_image(operated: OperatedNamespace) -> None:
    operated.create("img", image="python:3.12")
    operated.wait_phase("img", "Running")
    operated.patch("img", {"spec": {"image": "python:3.13"}})
    operated.wait_phase(
        "img",
        "Running",
        check=lambda s: [p.spec.containers[0].image for p in operated.pods("img")] == ["python:3.13"],
    )
    assert _template_container(operated, "img").image == "python:3.13"


def test_image_pull_failure_is_reported_and_fixing_the_image_recovers(operated: OperatedNamespace) -> None:
    operated.create("pull", image="registry.invalid/x:1")
    server = operated.wait_phase("pull", "Failed")
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "pull-0" in degraded["message"] and "registry.invalid/x:1" in degraded["message"], degraded
    # The operator posts a transition's Event before the status that makes it: whoever sees the status finds
    # the Event at once, with the reason the status shows.
    assert degraded["reason"] in operated.event_reasons("pull"), (degraded, operated.event_reasons("pull"))

    # The failing pod is on the old template: the StatefulSet would wait for it forever, the operator
    # deletes it so the fixed template takes over.
    operated.patch("pull", {"spec": {"image": "python:3.12"}})

    def recovered(server: dict[str, Any]) -> bool:
        return any(c["type"] == "Degraded" and c["status"] == "False" for c in server["status"]["conditions"])

    operated.wait_phase("pull", "Running", check=recovered)
    assert "Recovered" in operated.event_reasons("pull"), operated.event_reasons("pull")


def test_home_size_change_recreates_the_statefulset_keeping_pods_data_and_claims(operated: OperatedNamespace) -> None:
    operated.create("grow", persistentHomeSize="1Gi")
    operated.wait_phase("grow", "Running")
    operated.exec("grow-0", "echo still-here > /home/dev/data.txt")
    old_uid = operated.statefulset("grow").metadata.uid

    # volumeClaimTemplates cannot change in place: orphan-delete the StatefulSet and create it again.
    operated.patch("grow", {"spec": {"persistentHomeSize": "2Gi"}})

    def recreated(server: dict[str, Any]) -> bool:
        sts = operated.statefulset("grow")
        return (
            sts is not None
            and sts.metadata.uid != old_uid
            and sts.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "2Gi"
            and server["status"]["observedGeneration"] == server["metadata"]["generation"]
            and [(ready(p), p.metadata.owner_references[0].uid) for p in operated.pods("grow")]
            == [(True, sts.metadata.uid)]
        )

    operated.wait_phase("grow", "Running", check=recreated)
    assert operated.exec("grow-0", "cat /home/dev/data.txt").strip() == "still-here"
    assert [claim.metadata.name for claim in operated.claims("grow")] == ["home-grow-0"]
    wait_for(lambda: "RecreatingStatefulSet" in operated.event_reasons("grow"), timeout=60,
             message="the RecreatingStatefulSet Event")
    # The claim belongs to the new StatefulSet: deleting the DevServer still removes it.
    operated.delete("grow")
    operated.wait_for_nothing_left("grow")
