from __future__ import annotations

from collections.abc import Iterator

import pytest
from conformance_support import Clients, clients_for

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle


@pytest.fixture(scope="module")
def k8s(cluster: ClusterHandle) -> Iterator[Clients]:
    """The official client's APIs and a raw HTTPS client for the session's cluster, one set per module."""
    with clients_for(cluster.kubeconfig) as clients:
        yield clients
