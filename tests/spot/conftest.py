"""Fixtures for the interruption tests: the operator tests' fixtures on a local cluster of two nodes, so a
drained node's DevServer pods have somewhere to go (the emulator and the real control plane alike)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, cluster_for_tests
from tests.launch.conftest import pods_use_this_python  # noqa: F401 (a fixture, bound here)
from tests.operator.conftest import (  # noqa: F401 (fixtures, bound here)
    NODE_CAPACITY,
    crds,
    operated,
    operator,
    operator_settings,
)
from tests.platform_fixture import make_admin_a_devservers_admin, on_real_control_plane

NODES = 2


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, pods_use_this_python: None) -> Iterator[ClusterHandle]:  # noqa: F811
    """Two nodes with room for the sample CPU flavors; an outside cluster must bring its own spare node.
    The pods' python is this interpreter's (with torch)."""
    with cluster_for_tests(request, node_capacity=NODE_CAPACITY, nodes=NODES) as handle:
        if on_real_control_plane(handle):
            make_admin_a_devservers_admin(handle)
        yield handle
