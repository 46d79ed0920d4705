"""Fixtures for the operator's end-to-end tests: a cluster big enough for the sample flavors, the CRDs and
flavors installed, and the operator itself running as ``python -m devservers_operator`` in a subprocess.

The cluster: the session's default local cluster has this machine's CPUs (often 2), where cpu-medium (4
CPUs) could never schedule. The operator tests get their own local cluster with the capacity of a small
GPU node (64 CPUs, 512Gi, 8 fake GPUs: ``node/fake_gpus.py``), so flavor changes schedule and gpu-large
(768Gi) does not. With
``DEVSERVERS_TEST_BACKEND=kubernetes`` that cluster is our real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) with the same node; with ``DEVSERVERS_TEST_KUBECONFIG`` set, the
outside cluster is used instead.

The operator is started by the suite's one ``platform`` fixture (``tests/platform_fixture.py``), once per
cluster, so once for these tests (it watches every namespace; each test has its own), with this folder's
``operator_settings``: the idle clock scaled (``DEVSERVERS_IDLE_TIMEOUT_SCALE=0.05``: the minimum idleTimeout of 60 s becomes 3 s) and a
probe interval of 1 s, so the idle tests take seconds. ``restart()`` kills and restarts it; its log is
checked for tracebacks and errors when the session ends.

On the real control plane the operator is not a process of ours: ``operator/deploy`` is applied as a
platform team applies it, and the operator is the Deployment's pod under its own ServiceAccount and RBAC
(``tests.platform_fixture.DeployedOperator``, with these settings in its environment). Restarting it is
scaling the Deployment to 0 and back; killing it is deleting its pod with grace period 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.localcluster.pytest_plugin import (
    ClusterHandle,
    cluster_for_tests,
    wait_established,
    wait_for,
)
from tests.platform_fixture import (
    DeployedOperator,
    OperatorProcess,
    OperatorSettings,
    Platform,
    make_admin_a_devservers_admin,
    on_real_control_plane,
)

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
GROUP, VERSION, PLURAL = "devservers.io", "v1", "devservers"
NODE_CAPACITY = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8", "pods": "200"}
# The pods of the local cluster share the machine's network: a torchrun master on the default 29500 collides
# with any other test session's on the same machine (EADDRINUSE). A port of this session's own instead, below
# the kernel's ephemeral range (32768-60999), where a client's outgoing connection had taken it (seen: 36278),
# and apart from the platform's range (tests/platform_fixture.py).
MASTER_PORT = str(11000 + os.getpid() % 9000)
OPERATOR_ENV = {
    "DEVSERVERS_MASTER_PORT": MASTER_PORT,
    "DEVSERVERS_IDLE_TIMEOUT_SCALE": "0.05",
    "DEVSERVERS_PROBE_INTERVAL": "1s",
    "DEVSERVERS_PROBE_WINDOW": "0.5",
    "DEVSERVERS_TERMINATION_GRACE_SECONDS": "2",
}


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """Overrides the plugin's cluster for these tests: one with room for every sample CPU flavor."""
    with cluster_for_tests(request, node_capacity=NODE_CAPACITY) as handle:
        if on_real_control_plane(handle):
            make_admin_a_devservers_admin(handle)
        yield handle


def kubectl(
    kubeconfig: str, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    # The process gets longer than any `kubectl wait --timeout` given here (120 s), so kubectl's own answer,
    # with what it was still waiting for, is what a failure shows.
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=180, input=input
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> str:
    kubectl(cluster.kubeconfig, "apply", "-f", str(ROOT / "crds"))
    wait_established(cluster.kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
    kubectl(cluster.kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors"))
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def operator_settings() -> OperatorSettings:
    """The idle clock scaled and the probe quick; the session fails if the operator logged an error."""
    return OperatorSettings(env=OPERATOR_ENV, check_log=True, ours=True)


@pytest.fixture(scope="module")
def operator(platform: Platform) -> OperatorProcess | DeployedOperator:
    """The operator of these tests' cluster (the ``platform`` fixture starts it, with ``operator_settings``)."""
    assert platform.operator is not None, "the platform of tests/operator runs an operator of its own"
    return platform.operator


class OperatedNamespace:
    """The test's namespace on a cluster where the operator runs (the ``operated`` fixture).

    What a test does with the cluster: the DevServer API, owned objects, exec, events."""

    def __init__(self, kubeconfig: str, namespace: str, operator: OperatorProcess | DeployedOperator) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.operator = operator
        api_client = config.new_client_from_config(kubeconfig)
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    # -- DevServers ----------------------------------------------------------------------------------

    def create(
        self, name: str, *, flavor: str = "cpu-small", owner: str = "alice", **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DevServer",
            "metadata": {"name": name},
            "spec": {"owner": owner, "flavor": flavor, **spec},
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return result

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )
        return result

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name) or {}).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c.get("type") == kind), {})

    def wait_phase(
        self,
        name: str,
        phase: str,
        *,
        timeout: float = 60.0,
        check: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The DevServer once its status has ``phase`` (and ``check`` holds), else the test fails."""

        def reached() -> dict[str, Any] | None:
            server = self.get(name)
            status = (server or {}).get("status") or {}
            if status.get("phase") == phase and server is not None and (check is None or check(server)):
                return server
            return None

        try:
            result: dict[str, Any] = wait_for(
                reached, timeout=timeout, interval=0.1, message=f"DevServer {name} to be {phase}"
            )
        except BaseException:
            print(json.dumps(self.status(name), indent=1))
            for pod in self.pods(name):
                print(pod.metadata.name, pod.metadata.labels, pod.status)
            print(self.kubectl("get", "events", check=False).stdout)
            print(self.operator.log_tail())
            raise
        return result

    def wait_gone(self, name: str, *, timeout: float = 30.0) -> None:
        wait_for(
            lambda: self.get(name) is None, timeout=timeout, interval=0.1, message=f"DevServer {name} deleted"
        )

    def wait_for_nothing_left(self, name: str, *, timeout: float = 30.0) -> None:
        """No StatefulSet, Service, pod or home claim of ``name`` remains."""

        def leftovers() -> list[str]:
            found = [
                kind
                for kind, obj in (("statefulset", self.statefulset(name)), ("service", self.service(name)))
                if obj is not None
            ]
            found += [f"pod {pod.metadata.name}" for pod in self.pods(name)]
            found += [f"claim {claim.metadata.name}" for claim in self.claims(name)]
            return found

        wait_for(
            lambda: not leftovers(),
            timeout=timeout,
            interval=0.1,
            message=f"everything of DevServer {name} to be deleted",
        )

    # -- owned objects -------------------------------------------------------------------------------

    def statefulset(self, name: str) -> Any:
        try:
            return self.apps.read_namespaced_stateful_set(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def service(self, name: str) -> Any:
        try:
            return self.core.read_namespaced_service(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, name: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{NAME_LABEL}={name}").items
        return sorted(pods, key=lambda pod: pod.metadata.name)

    def claims(self, name: str) -> list[Any]:
        claims = self.core.list_namespaced_persistent_volume_claim(
            self.namespace, label_selector=f"{NAME_LABEL}={name}"
        ).items
        return sorted(claims, key=lambda claim: claim.metadata.name)

    def events(self, name: str) -> list[Any]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=DevServer"
        ).items
        return list(events)

    def event_reasons(self, name: str) -> list[str]:
        return [event.reason for event in self.events(name)]

    def exec(self, pod: str, script: str, *, check: bool = True) -> str:
        result = kubectl(
            self.kubeconfig, "-n", self.namespace, "exec", pod, "--", "/bin/sh", "-c", script, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"exec in {pod} failed ({result.returncode}): {result.stdout}{result.stderr}"
            )
        return result.stdout

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, "-n", self.namespace, *args, check=check, input=input_text)


@pytest.fixture
def operated(operator: OperatorProcess | DeployedOperator, crds: str, namespace: str) -> OperatedNamespace:
    """The test's namespace, with the operator of this folder's cluster running."""
    operator.ensure_running()
    return OperatedNamespace(crds, namespace, operator)


def ready(pod: Any) -> bool:
    """Whether a pod (kubernetes client model) is Ready and not being deleted."""
    conditions = pod.status.conditions or [] if pod.status else []
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_counts(cluster: ClusterHandle) -> dict[str, int]:
    """The emulator's API request counters (verb and resource)."""
    emulator = cluster.require_emulator()
    assert emulator.runtime is not None
    server = emulator.runtime.server
    return emulator.call(lambda: dict(server.requests.counts))


def stays(predicate: Callable[[], bool], seconds: float, *, message: str) -> None:
    """Poll ``predicate`` for ``seconds`` and fail as soon as it is false (e.g. "no retry storm")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(0.1)
    assert predicate(), message
