"""Fixtures for the interruption tests: the operator tests' fixtures on a local cluster of two nodes, so a
drained node's DevServer pods have somewhere to go (the emulator and the real control plane alike)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.localcluster.pytest_plugin import REAL_CLUSTER_ENV, TEST_USERS, ClusterHandle, backend
from tests.launch.conftest import pods_use_this_python  # noqa: F401 (a fixture, bound here)
from tests.operator.conftest import NODE_CAPACITY, crds, kube, operator  # noqa: F401 (fixtures, bound here)
from tests.platform_fixture import make_admin_a_devservers_admin

NODES = 2


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, pods_use_this_python: None) -> Iterator[ClusterHandle]:  # noqa: F811
    """Two nodes with room for the sample CPU flavors; an outside cluster must bring its own spare node.

    The real control plane's node agents take PATH when they start, so this interpreter's bin (with torch) goes
    first before they do."""
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        yield ClusterHandle(kubeconfig=real, emulator=None)
        return
    if backend() == "kubernetes":
        request.getfixturevalue("kubernetes_binaries")
        with LocalCluster(control_plane="kubernetes", node_capacity=NODE_CAPACITY, users=TEST_USERS,
                          nodes=NODES) as local:
            handle = ClusterHandle(kubeconfig=local.kubeconfig, emulator=None, local=local)
            make_admin_a_devservers_admin(handle)
            yield handle
        return
    with LocalCluster(node_capacity=NODE_CAPACITY, nodes=NODES) as local:
        yield ClusterHandle(kubeconfig=local.kubeconfig, emulator=local, local=local)
