"""Fixtures for the SDK tests: a cluster of their own with the generated CRDs and sample flavors installed
once, a client per test, and DevServers with real pods behind them.

No operator runs on that cluster (the session's platform operator watches every namespace of the session's
cluster, and would act on these tests' objects, whatever order the tests run in), so a "running" DevServer is made the way the operator will make it: a
StatefulSet named like the DevServer whose pod template carries ``devservers.io/name=<name>`` (the
StatefulSet controller adds ``apps.kubernetes.io/pod-index``), plus a status written through the status
subresource when a test needs a phase.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.kube import DEVSERVERS, PODS, Kube, Resource
from devservers_sdk.localcluster.pytest_plugin import (
    ROOMY_NODE,
    ClusterHandle,
    cluster_for_tests,
    wait_established,
    wait_for,
)
from devservers_sdk.settings import load_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")


def kubectl(kubeconfig: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=input, capture_output=True,
                          text=True, check=check, timeout=60)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """Overrides the plugin's cluster for these tests: one where no operator runs (an outside cluster given by
    ``DEVSERVERS_TEST_KUBECONFIG`` is used as it is, and must have none)."""
    with cluster_for_tests(request, node_capacity=ROOMY_NODE) as handle:
        yield handle


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> str:
    """The generated CRDs and the sample flavors, applied with the real kubectl."""
    kubeconfig = cluster.kubeconfig
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
    wait_established(kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors"))
    return kubeconfig


@pytest.fixture(scope="session")
def admin_user(cluster: ClusterHandle) -> str:
    """Who the session's kubeconfig authenticates as, in the cluster's own words (``kubectl auth whoami``):
    localcluster-admin on the emulator, kubernetes-admin on the real control plane."""
    answer = kubectl(cluster.kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()
    assert answer, "kubectl auth whoami named no user"
    return answer


@pytest.fixture
def client(crds: str, namespace_kubeconfig: str) -> Iterator[DevServerClient]:
    """A client whose kubeconfig context defaults to the test's namespace."""
    with DevServerClient(kubeconfig=namespace_kubeconfig) as sdk:
        yield sdk


@pytest.fixture
def run_kubectl(crds: str, namespace_kubeconfig: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The real kubectl, with the test's namespace as its default."""
    return lambda *args, **kwargs: kubectl(namespace_kubeconfig, *args, **kwargs)


@pytest.fixture
def kube(crds: str, namespace_kubeconfig: str) -> Iterator[Kube]:
    """The SDK's transport, for tests that play the operator (status writes, pods)."""
    transport = Kube(load_kubeconfig(namespace_kubeconfig))
    yield transport
    transport.close()


def _set_status(kube: Kube, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return kube.patch(DEVSERVERS, name, {"status": status}, namespace=namespace, subresource="status")


@pytest.fixture
def set_status(kube: Kube, namespace: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """Write a DevServer status as the operator would (status subresource, merge patch)."""
    return lambda name, status: _set_status(kube, namespace, name, status)


def statefulset(name: str, *, replicas: int = 1, command: list[str] | None = None) -> dict[str, Any]:
    labels = {NAME_LABEL: name}
    container: dict[str, Any] = {"name": "main", "image": "local", "command": command or ["sleep", "3600"]}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}},
    }


@pytest.fixture
def running_devserver(client: DevServerClient, kube: Kube, namespace: str) -> Callable[..., str]:
    """Create a DevServer with ``replicas`` running pods (ranks 0..n-1) and phase Running; returns its name."""

    def make(name: str = "box", *, replicas: int = 1, command: list[str] | None = None,
             running: bool = True) -> str:
        client.create(name, flavor="cpu-small")
        kube.create(STATEFULSETS, statefulset(name, replicas=replicas, command=command), namespace=namespace)

        def pods_up() -> bool:
            pods = kube.list(PODS, namespace=namespace, label_selector=f"{NAME_LABEL}={name}")["items"]
            wanted = "Running" if running else None
            return len(pods) == replicas and all(
                wanted is None or (p.get("status") or {}).get("phase") == wanted for p in pods)

        # Generous: on the real control plane a pod passes the StatefulSet controller, the scheduler and the node,
        # and this machine is shared.
        wait_for(pods_up, timeout=90, message=f"{replicas} running pod(s) of {name}")
        _set_status(kube, namespace, name, {"phase": "Running", "readyReplicas": replicas, "replicas": replicas})
        return name

    return make
