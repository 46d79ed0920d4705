"""The dashboard's flavor menu says when a size runs on spot capacity (and may be interrupted)."""

from __future__ import annotations

from devservers_ui.pages import _flavor_label

from devservers_sdk.models import DevServerFlavor


def flavor(capacity_type: str) -> DevServerFlavor:
    return DevServerFlavor.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": "gpu-small-spot"},
        "spec": {"capacityType": capacity_type, "resources": {"limits": {"cpu": "8", "memory": "32Gi",
                                                                         "nvidia.com/gpu": "1"}}},
    })


def test_the_flavor_menu_says_spot() -> None:
    assert _flavor_label(flavor("spot")) == "gpu-small-spot: 8 CPU, 32Gi memory, 1 GPU, spot: may be interrupted"
    assert _flavor_label(flavor("on-demand")) == "gpu-small-spot: 8 CPU, 32Gi memory, 1 GPU"
