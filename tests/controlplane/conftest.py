"""The real control plane's fixtures; the binaries come from the pytest plugin's ``kubernetes_binaries``.

The plugin builds them once collection is finished, before any test runs, when a selected test needs them
(never inside a test's timeout), and skips only when Go is absent and nothing is cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devservers_sdk.localcluster.controlplane.build import ControlPlaneBinaries
from devservers_sdk.localcluster.controlplane.runner import KubernetesControlPlane


@pytest.fixture(scope="session")
def binaries(kubernetes_binaries: Any) -> ControlPlaneBinaries:
    assert isinstance(kubernetes_binaries, ControlPlaneBinaries)
    return kubernetes_binaries


@pytest.fixture(scope="module")
def control_plane(binaries: ControlPlaneBinaries, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[KubernetesControlPlane]:
    plane = KubernetesControlPlane(tmp_path_factory.mktemp("control-plane"), binaries=binaries)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
