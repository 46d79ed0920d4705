"""The whole product on the session's cluster: CRDs, the sample flavors and a running operator.

Front ends (devctl, magics, notebooks, launch) test end to end against this one platform.

* On the emulator the operator runs as a local process, ``python -m devservers_operator``, exactly the
  command of its image.
* On the real control plane the project is installed the way a platform team installs it:
  ``kubectl apply -k`` of ``operator/deploy`` (CRDs, namespace, ServiceAccount, roles and bindings, the owner
  policy, flavors, the operator Deployment). kube-controller-manager makes the ReplicaSet and the pod, and our
  node agent runs it with its projected ServiceAccount token and in-cluster config, so the operator holds
  exactly the rights ``operator-rbac.yaml`` gives it. The overlay (``DeployedOperator.overlay``) changes only
  the operator container's environment: images are not pulled here, so ``PATH`` leads to this venv's
  ``python`` (the Deployment's command, ``python -m devservers_operator``, is also the image's), the liveness
  endpoint binds the pod's own loopback IP rather than ``0.0.0.0`` (pods share this machine's ports), and
  tests may add ``DEVSERVERS_*`` settings. The RBAC is never patched.

  The owner policy binds cluster-wide, as shipped, and the suite's admin creates DevServers for made-up
  owners: so the session's admin kubeconfig is re-minted for ``kubernetes-admin`` in ``system:masters``
  *and* ``devservers:admins`` (what a platform admin is), see ``make_admin_a_devservers_admin``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_for


@contextlib.contextmanager
def this_python_first_on_path() -> Iterator[None]:
    """The local cluster's pods take PATH from the process that starts them: this interpreter's bin first makes
    it the pods' "image" Python, the one with torch and JupyterLab installed."""
    before = os.environ.get("PATH", os.defpath)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before

REPO = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
DEPLOY = REPO / "operator" / "deploy"
OPERATOR_NAMESPACE = "devservers-system"
OPERATOR_NAME = "devservers-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_NAME}"
OPERATOR_SELECTOR = f"app.kubernetes.io/name={OPERATOR_NAME}"
ADMIN_GROUP = "devservers:admins"
HEALTH_PORT = 8080


@dataclass
class Platform:
    kubeconfig: str
    operator: subprocess.Popen[bytes] | None
    operator_log: Path
    # On the real control plane: the operator's Deployment (``operator`` is then None).
    deployed: DeployedOperator | None = None


def on_real_control_plane(cluster: ClusterHandle) -> bool:
    """Whether ``cluster`` is our real control plane (RBAC enforced, real CEL, real controllers)."""
    return cluster.local is not None and cluster.emulator is None


@pytest.fixture
def real_control_plane(cluster: ClusterHandle) -> Any:
    """The ``LocalCluster`` running the real control plane behind ``cluster``; skips on any other cluster."""
    if not on_real_control_plane(cluster):
        pytest.skip("needs our real control plane (DEVSERVERS_TEST_BACKEND=kubernetes): the emulator stores RBAC "
                    "without enforcing it and keeps no audit log")
    return cluster.local


def apply_crds_and_flavors(kubeconfig: str) -> None:
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(REPO / "crds")],
                   check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "get", "devserverflavors"],
                         capture_output=True, timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail("the DevServer CRDs were not served within 30s")
        time.sleep(0.1)
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(REPO / "examples" / "flavors")],
                   check=True, capture_output=True, timeout=120)


def make_admin_a_devservers_admin(cluster: ClusterHandle) -> None:
    """Re-mint the cluster's admin kubeconfig (same path) for ``kubernetes-admin`` in ``system:masters`` and
    ``devservers:admins``: RBAC never applies to system:masters, but the owner policy lets only that group
    create DevServers for someone else, which the suite's admin does all the time."""
    assert cluster.local is not None
    cluster.local.user_kubeconfig("kubernetes-admin", ["system:masters", ADMIN_GROUP], path=cluster.kubeconfig)


def _kubectl(kubeconfig: str, *args: str, check: bool = True, timeout: float = 120,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


class DeployedOperator:
    """The operator as ``operator/deploy`` runs it: the pod of a Deployment, under its own ServiceAccount.

    ``stop()`` scales the Deployment to 0 (``kill=True``: and deletes the pod with grace period 0, so the node
    SIGKILLs it), ``start()`` scales it back to 1 and waits for the liveness endpoint of the new pod;
    ``restart()`` is both. Every pod's log is followed into ``log_path`` (pods do not outlive their deletion,
    their logs would), and the container restarts are counted (a crash-looping operator is a failure).

    Args:
        kubeconfig: an admin kubeconfig of the cluster.
        workdir: where the kustomize overlay and the log go.
        env: ``DEVSERVERS_*`` settings for the operator, on top of the shipped ones.
    """

    def __init__(self, kubeconfig: str, workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.env = dict(env or {})
        self.log_path = workdir / "operator.log"
        self.starts = 0
        self.restarts_seen = 0
        self._followers: list[subprocess.Popen[bytes]] = []
        self._pod: dict[str, Any] | None = None
        from kubernetes import client, config

        api = config.new_client_from_config(kubeconfig)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    # -- install -------------------------------------------------------------------------------------

    def overlay(self) -> Path:
        """A kustomization over ``operator/deploy`` as shipped that replaces only the operator's env."""
        shipped = next(doc for doc in yaml.safe_load_all((DEPLOY / "deployment.yaml").read_text())
                       if doc and doc.get("kind") == "Deployment")
        container = shipped["spec"]["template"]["spec"]["containers"][0]
        overrides = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
            "DEVSERVERS_LIVENESS": f"http://$(POD_IP):{HEALTH_PORT}/healthz",
            **self.env,
        }
        # POD_IP first: $(VAR) references expand only to variables defined earlier in the list.
        env: list[dict[str, Any]] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        for item in container.get("env") or []:
            if item["name"] in overrides:
                env.append({"name": item["name"], "value": overrides.pop(item["name"])})
            else:
                env.append(item)
        env += [{"name": name, "value": value} for name, value in overrides.items()]
        directory = self.workdir / "overlay"
        directory.mkdir(parents=True, exist_ok=True)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(DEPLOY, directory)],
            "patches": [{
                "target": {"kind": "Deployment", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE},
                "patch": json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/env",
                                      "value": env}]),
            }],
        }
        (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        return directory

    def install(self) -> None:
        """``kubectl apply -k`` the overlay; then wait for the operator to answer."""
        overlay = self.overlay()
        # The CRDs first, until their resources are served. In one go, the flavors (custom resources) can
        # race their own CRD, and the operator's first LIST of DevServers meets the real API server's
        # "429 storage is (re)initializing" of a CRD a moment old, which kopf retries but logs as an ERROR.
        _kubectl(self.kubeconfig, "apply", "-f", str(DEPLOY / "crds.yaml"))
        _kubectl(self.kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                 "crd/devservers.devservers.io", "crd/devserverflavors.devservers.io")
        deadline = time.monotonic() + 60
        while _kubectl(self.kubeconfig, "get", "devservers,devserverflavors", "-A", check=False).returncode:
            if time.monotonic() > deadline:
                pytest.fail("the DevServer CRDs were established but not served within 60s")
            time.sleep(0.2)
        _kubectl(self.kubeconfig, "apply", "-k", str(overlay))
        self._wait_started()

    # -- lifetime ------------------------------------------------------------------------------------

    def _scale(self, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(OPERATOR_NAME, OPERATOR_NAMESPACE,
                                                    {"spec": {"replicas": replicas}})

    def pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=OPERATOR_SELECTOR).items)

    def start(self) -> None:
        self._scale(1)
        self._wait_started()

    def _wait_started(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no pod yet"
        while time.monotonic() < deadline:
            live = [pod for pod in self.pods() if not pod.metadata.deletion_timestamp]
            if len(live) > 1:
                last = f"{len(live)} operator pods at once"
            elif live and live[0].status.pod_ip and live[0].status.phase == "Running":
                pod = live[0]
                last = f"pod {pod.metadata.name} Running; liveness not answering yet"
                if self._answers(f"http://{pod.status.pod_ip}:{HEALTH_PORT}/healthz"):
                    self._pod = {"name": pod.metadata.name, "ip": pod.status.pod_ip}
                    self.starts += 1
                    self._follow(pod.metadata.name)
                    return
            elif live:
                reasons = [s.state.waiting.reason for s in live[0].status.container_statuses or []
                           if s.state and s.state.waiting]
                last = f"pod {live[0].metadata.name} {live[0].status.phase} {reasons}"
            time.sleep(0.2)
        pytest.fail(f"the operator's pod did not start within {timeout}s ({last}):\n{self.log_tail()}\n"
                    f"{_kubectl(self.kubeconfig, '-n', OPERATOR_NAMESPACE, 'describe', 'pods', check=False).stdout}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _follow(self, pod: str) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== operator pod {pod} (start {self.starts}) =====\n".encode())
            log.flush()
            self._followers.append(subprocess.Popen(
                [KUBECTL, "--kubeconfig", self.kubeconfig, "-n", OPERATOR_NAMESPACE, "logs", "-f", pod],
                stdout=log, stderr=subprocess.STDOUT))

    @property
    def liveness(self) -> str:
        assert self._pod is not None, "the operator is not running"
        return f"http://{self._pod['ip']}:{HEALTH_PORT}/healthz"

    def stop(self, *, kill: bool = False, timeout: float = 60.0) -> None:
        """Scale to 0 and wait until no operator process is left (``kill``: delete the pod with grace 0)."""
        from kubernetes.client.exceptions import ApiException

        self._count_restarts()
        self._scale(0)
        if kill and self._pod is not None:
            # Right after the scale, before the ReplicaSet's graceful delete can finish: the node SIGKILLs.
            with contextlib.suppress(ApiException):
                self.core.delete_namespaced_pod(self._pod["name"], OPERATOR_NAMESPACE, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while self.pods() or (self._pod is not None and self._answers(self.liveness)):
            if time.monotonic() > deadline:
                pytest.fail(f"the operator's pod was still there {timeout}s after scaling to 0")
            time.sleep(0.2)
        self._pod = None
        self._stop_followers()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def _count_restarts(self) -> None:
        for pod in self.pods():
            self.restarts_seen += sum(s.restart_count for s in pod.status.container_statuses or [])

    def _stop_followers(self) -> None:
        for follower in self._followers:
            try:
                follower.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()
        self._followers.clear()

    def close(self) -> None:
        """Stop following logs (the cluster, and the operator with it, ends with the session)."""
        self._count_restarts()
        for follower in self._followers:
            follower.terminate()
        self._stop_followers()
        self.core.api_client.close()
        self.apps.api_client.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def remove_devservers(kubeconfig: str) -> None:
    """Delete the namespace's DevServers and wait until their pods are gone (the node is small)."""
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.kube import PODS, Kube
    from devservers_sdk.settings import load_kubeconfig

    kube = Kube(load_kubeconfig(kubeconfig))
    with DevServerClient(kubeconfig=kubeconfig) as client:
        for server in client.list():
            client.delete(server.name)
        wait_for(lambda: not client.list(), timeout=60, message="DevServers deleted")
        wait_for(lambda: not kube.list(PODS, namespace=client.namespace).get("items"), timeout=60,
                 message=f"pods of namespace {client.namespace} gone")
    kube.close()


@pytest.fixture(scope="session")
def platform(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("operator")
    log_path = workdir / "operator.log"
    if on_real_control_plane(cluster):
        make_admin_a_devservers_admin(cluster)
        deployed = DeployedOperator(cluster.kubeconfig, workdir)
        deployed.install()
        try:
            yield Platform(cluster.kubeconfig, None, deployed.log_path, deployed=deployed)
        finally:
            deployed.close()
        return
    apply_crds_and_flavors(cluster.kubeconfig)
    if cluster.emulator is None and os.environ.get("DEVSERVERS_TEST_EXTERNAL_OPERATOR"):
        yield Platform(cluster.kubeconfig, None, log_path)
        return
    # No liveness endpoint: a fixed port would collide with other operators on the same machine.
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONPATH": str(REPO / "operator"),
           "DEVSERVERS_LIVENESS": ""}
    with log_path.open("wb") as log:
        operator = subprocess.Popen([sys.executable, "-m", "devservers_operator"], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Platform(cluster.kubeconfig, operator, log_path)
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
