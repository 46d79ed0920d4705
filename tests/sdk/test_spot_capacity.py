"""capacityType: spot becomes each shipped platform's node selector and toleration; on-demand removes them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from devservers_sdk.manifests import SPOT_PLATFORMS, OperatorConfig, build_statefulset
from devservers_sdk.models import DevServer, DevServerFlavor

SERVER = DevServer.from_manifest({
    "apiVersion": "devservers.io/v1", "kind": "DevServer",
    "metadata": {"name": "mydev", "namespace": "alice", "uid": "6f1c1e8e-0000-4000-8000-000000000001"},
    "spec": {"owner": "alice", "flavor": "gpu-spot"},
})
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def flavor(**spec: Any) -> DevServerFlavor:
    return DevServerFlavor.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": "gpu-spot"},
        "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "tolerations": [GPU_TOLERATION], **spec},
    })


def placement(spec: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    pod = spec["spec"]["template"]["spec"]
    return pod.get("nodeSelector", {}), pod.get("tolerations", [])


@pytest.mark.parametrize(("platform", "label", "value"), [
    ("eks", "eks.amazonaws.com/capacityType", "SPOT"),
    ("karpenter", "karpenter.sh/capacity-type", "spot"),
])
def test_spot_flavor_pods_carry_the_platform_selector_and_toleration(platform: str, label: str, value: str) -> None:
    config = OperatorConfig.from_env({"DEVSERVERS_SPOT_PLATFORM": platform})
    selector, tolerations = placement(build_statefulset(SERVER, flavor(capacityType="spot"), config))
    assert selector == {"nvidia.com/gpu.present": "true", label: value}
    assert tolerations == [GPU_TOLERATION, {"key": label, "operator": "Equal", "value": value,
                                            "effect": "NoSchedule"}]

    # The same DevServer moved to an on-demand flavor: the full replacement has none of it.
    selector, tolerations = placement(build_statefulset(SERVER, flavor(capacityType="on-demand"), config))
    assert selector == {"nvidia.com/gpu.present": "true"}
    assert tolerations == [GPU_TOLERATION]


def test_every_shipped_platform_is_tested_above() -> None:
    assert sorted(SPOT_PLATFORMS) == ["eks", "karpenter"]


def test_on_demand_is_the_default_and_adds_nothing() -> None:
    assert flavor().capacity_type == "on-demand"
    assert flavor(capacityType="spot").capacity_type == "spot"
    assert placement(build_statefulset(SERVER, flavor(), OperatorConfig())) == (
        {"nvidia.com/gpu.present": "true"}, [GPU_TOLERATION])


def test_a_flavor_may_name_its_own_capacity_selector() -> None:
    own = flavor(capacityType="spot", capacitySelector={"node.example.com/lifecycle": "spot"})
    selector, tolerations = placement(build_statefulset(SERVER, own, OperatorConfig()))
    assert selector == {"nvidia.com/gpu.present": "true", "node.example.com/lifecycle": "spot"}
    assert tolerations == [GPU_TOLERATION]


def test_bad_capacity_type_and_platform_are_refused_with_the_field() -> None:
    with pytest.raises(ValidationError, match="capacityType"):
        flavor(capacityType="preemptible")
    with pytest.raises(ValueError, match=r"DEVSERVERS_SPOT_PLATFORM.*'gke' is not one of eks, karpenter"):
        OperatorConfig.from_env({"DEVSERVERS_SPOT_PLATFORM": "gke"})

