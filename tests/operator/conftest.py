"""Fixtures for the operator's end-to-end tests: a cluster big enough for the sample flavors, the CRDs and
flavors installed, and the operator itself running as ``python -m devservers_operator`` in a subprocess.

The cluster: the session's default local cluster has this machine's CPUs (often 2), where cpu-medium (4
CPUs) could never schedule. The operator tests get their own local cluster with the capacity of a small
GPU node (64 CPUs, 512Gi, 8 fake GPUs: ``node/fake_gpus.py``), so flavor changes schedule and gpu-large
(768Gi) does not. With
``DEVSERVERS_TEST_BACKEND=kubernetes`` that cluster is our real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) with the same node; with ``DEVSERVERS_TEST_KUBECONFIG`` set, the
outside cluster is used instead.

The operator runs once for the session (it watches every namespace; each test has its own), with the idle
clock scaled (``DEVSERVERS_IDLE_TIMEOUT_SCALE=0.05``: the minimum idleTimeout of 60 s becomes 3 s) and a
probe interval of 1 s, so the idle tests take seconds. ``restart()`` kills and restarts it; its log is
checked for tracebacks and errors when the session ends.

On the real control plane the operator is not a process of ours: ``operator/deploy`` is applied as a
platform team applies it, and the operator is the Deployment's pod under its own ServiceAccount and RBAC
(``tests.platform_fixture.DeployedOperator``, with these settings in its environment). Restarting it is
scaling the Deployment to 0 and back; killing it is deleting its pod with grace period 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.localcluster.pytest_plugin import (
    REAL_CLUSTER_ENV,
    TEST_USERS,
    ClusterHandle,
    backend,
    wait_for,
)
from tests.platform_fixture import DeployedOperator, make_admin_a_devservers_admin, on_real_control_plane

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
GROUP, VERSION, PLURAL = "devservers.io", "v1", "devservers"
NAME_LABEL = "devservers.io/name"
NODE_CAPACITY = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8", "pods": "200"}
# The pods of the local cluster share the machine's network: a torchrun master on the default 29500 collides
# with any other test session's on the same machine (EADDRINUSE). A port of this session's own instead.
MASTER_PORT = str(30000 + os.getpid() % 20000)
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
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        yield ClusterHandle(kubeconfig=real, emulator=None)
        return
    if backend() == "kubernetes":
        request.getfixturevalue("kubernetes_binaries")
        # The node agent takes its PATH once, at start: this interpreter's bin first, so that pods find this
        # environment's python (with torch), as the plugin's kubernetes_cluster does.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
            local = LocalCluster(control_plane="kubernetes", node_capacity=NODE_CAPACITY, users=TEST_USERS).start()
        try:
            handle = ClusterHandle(kubeconfig=local.kubeconfig, emulator=None, local=local)
            make_admin_a_devservers_admin(handle)
            yield handle
        finally:
            local.stop()
        return
    with LocalCluster(node_capacity=NODE_CAPACITY) as local:
        yield ClusterHandle(kubeconfig=local.kubeconfig, emulator=local, local=local)


def kubectl(
    kubeconfig: str, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        input=input,
    )


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> str:
    kubectl(cluster.kubeconfig, "apply", "-f", str(ROOT / "crds"))
    kubectl(
        cluster.kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/devservers.devservers.io",
        "crd/devserverflavors.devservers.io",
    )
    kubectl(cluster.kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors"))
    return cluster.kubeconfig


def _die_with_parent() -> None:
    """In the operator's child process: get SIGTERM if pytest dies, so no operator outlives the session."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """``python -m devservers_operator`` against the test cluster, restartable."""

    def __init__(self, kubeconfig: str, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def liveness(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        env = {
            **os.environ,
            **OPERATOR_ENV,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)]),
            "DEVSERVERS_LIVENESS": self.liveness,
        }
        env.pop("DEVSERVERS_NAMESPACES", None)
        log = self.log_path.open("ab")
        log.write(f"\n===== operator start {self.starts + 1} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devservers_operator"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.starts += 1
        wait_for(self._alive, timeout=30, interval=0.1, message="the operator's liveness endpoint")

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.liveness, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@pytest.fixture(scope="session")
def operator(
    cluster: ClusterHandle, crds: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess | DeployedOperator]:
    workdir = tmp_path_factory.mktemp("operator")
    if on_real_control_plane(cluster):
        deployed = DeployedOperator(crds, workdir, env=OPERATOR_ENV)
        deployed.install()
        try:
            yield deployed
        finally:
            deployed.close()
        assert deployed.restarts_seen == 0, f"the operator's container restarted:\n{deployed.log()[-8000:]}"
        check_operator_log(deployed.log())
        return
    process = OperatorProcess(crds, workdir / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
    check_operator_log(process.log())


def check_operator_log(log: str) -> None:
    problems = [
        line for line in log.splitlines() if "Traceback" in line or "[ERROR" in line or " ERROR " in line
    ]
    assert not problems, f"the operator logged errors:\n{log[-8000:]}"


class Cluster:
    """What a test does with the cluster: the DevServer API, owned objects, exec, events."""

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
def kube(operator: OperatorProcess | DeployedOperator, crds: str, namespace: str) -> Cluster:
    return Cluster(crds, namespace, operator)


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
