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
  ``python`` (the Deployment's command, ``python -m devservers_operator``, is also the image's) and
  ``PYTHONPATH`` to this checkout's code, the liveness
  endpoint binds the pod's own loopback IP rather than ``0.0.0.0`` (pods share this machine's ports), and
  tests may add ``DEVSERVERS_*`` settings. The RBAC is never patched.

  The owner policy binds cluster-wide, as shipped, and the suite's admin creates DevServers for made-up
  owners: so the session's admin kubeconfig is re-minted for ``kubernetes-admin`` in ``system:masters``
  *and* ``devservers:admins`` (what a platform admin is), see ``make_admin_a_devservers_admin``.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_established, wait_for


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
    # Our process on the emulator or an outside cluster, the Deployment's pod on the real control plane;
    # None when the outside cluster runs its own (DEVSERVERS_TEST_EXTERNAL_OPERATOR).
    operator: OperatorProcess | DeployedOperator | None
    operator_log: Path


@dataclass(frozen=True)
class OperatorSettings:
    """How a folder's tests want the operator of their cluster run (override the ``operator_settings`` fixture).

    Args:
        env: ``DEVSERVERS_*`` settings on top of the shipped ones (e.g. a scaled idle clock).
        check_log: at the end of the session, fail if the operator logged an error or a traceback, or (on the
            real control plane) its container restarted.
        ours: run our own operator even where ``DEVSERVERS_TEST_EXTERNAL_OPERATOR`` says the outside cluster
            has one (tests that restart or kill it).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    check_log: bool = False
    ours: bool = False


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
        node_logs: the node agents' logs, whose warnings a failure to start or stop the operator shows.
    """

    def __init__(self, kubeconfig: str, workdir: Path, *, env: dict[str, str] | None = None,
                 node_logs: Sequence[Path] = ()) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.env = dict(env or {})
        self.node_logs = list(node_logs)
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
            # The code under test, as the emulator's OperatorProcess runs it: the venv's editable install
            # points at one checkout, and a worktree's run would otherwise deploy that checkout's operator.
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
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
        wait_established(self.kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
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
        # The log of a pod that never answered is not followed yet: show what its process printed, if anything.
        unanswered = "".join(
            f"\n===== log of {pod.metadata.name}, not live =====\n"
            + _kubectl(self.kubeconfig, "-n", OPERATOR_NAMESPACE, "logs", pod.metadata.name, "--tail=80",
                       check=False).stdout
            for pod in self.pods())
        pytest.fail(f"the operator's pod did not start within {timeout}s ({last}):\n{self.log_tail()}{unanswered}\n"
                    f"{_kubectl(self.kubeconfig, '-n', OPERATOR_NAMESPACE, 'describe', 'pods', check=False).stdout}"
                    f"{self.node_warnings()}")

    def node_warnings(self, lines: int = 30) -> str:
        """The last warnings of the node agents (an overdue deletion says there where the pod's stop waits)."""
        said = []
        for path in self.node_logs:
            found = [line for line in path.read_text(errors="replace").splitlines() if " WARNING " in line] \
                if path.exists() else []
            said.append(f"\n===== warnings in {path} =====\n" + ("\n".join(found[-lines:]) or "(none)"))
        return "".join(said)

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

    def stop(self, *, kill: bool = False, timeout: float = 180.0) -> None:
        """Scale to 0 and wait until no operator process is left (``kill``: delete the pod with grace 0).

        Generous: the ReplicaSet controller, the kubelet's graceful stop and kopf's own shutdown each wait their
        turn on a loaded machine, where 60 s was once not enough."""
        from kubernetes.client.exceptions import ApiException

        self._count_restarts()
        self._scale(0)
        if kill and self._pod is not None:
            # Right after the scale, before the ReplicaSet's graceful delete can finish: the node SIGKILLs.
            with contextlib.suppress(ApiException):
                self.core.delete_namespaced_pod(self._pod["name"], OPERATOR_NAMESPACE, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while (left := self.pods()) or (self._pod is not None and self._answers(self.liveness)):
            if time.monotonic() > deadline:
                what = ", ".join(f"{pod.metadata.name} ({pod.status.phase}"
                                 f"{', terminating' if pod.metadata.deletion_timestamp else ''})" for pod in left)
                described = _kubectl(self.kubeconfig, "-n", OPERATOR_NAMESPACE, "describe", "pods",
                                     check=False).stdout
                pytest.fail(f"the operator was still there {timeout:.0f}s after scaling to 0: "
                            f"{what or 'no pod, but its health endpoint still answered'}\n{self.log_tail()}\n"
                            f"{described}{self.node_warnings()}")
            time.sleep(0.2)
        self._pod = None
        self._stop_followers()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def ensure_running(self) -> None:
        """Scale back to 1 if an earlier test stopped the operator and failed before it started it again: one
        test's failure must not fail every later test of the module."""
        # Not "== 0": the real API server omits a replicas of 0 from a Scale (omitempty), which reads as None.
        if not self.apps.read_namespaced_deployment_scale(OPERATOR_NAME, OPERATOR_NAMESPACE).spec.replicas:
            self._pod = None
            self._stop_followers()
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
    """``python -m devservers_operator`` (the command of its image) against a test cluster, restartable.

    Its liveness endpoint is on a free port (a fixed one would collide with other sessions' operators), and
    ``start()`` returns once it answers."""

    def __init__(self, kubeconfig: str, log_path: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env or {})
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def liveness(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
            "DEVSERVERS_LIVENESS": self.liveness,
        }
        env.pop("DEVSERVERS_NAMESPACES", None)
        log = self.log_path.open("ab")
        log.write(f"\n===== operator start {self.starts + 1} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devservers_operator"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.starts += 1
        # Generous: kopf, pydantic and the kubernetes client take seconds to import on a loaded machine; a
        # process that exits fails at once (_alive).
        wait_for(self._alive, timeout=120, interval=0.1, message="the operator's liveness endpoint to answer")

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
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def ensure_running(self) -> None:
        """Start again an operator that an earlier test stopped and failed before it started it again."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def check_operator_log(log: str) -> None:
    problems = [
        line for line in log.splitlines() if "Traceback" in line or "[ERROR" in line or " ERROR " in line
    ]
    assert not problems, f"the operator logged errors:\n{log[-8000:]}"


@contextlib.contextmanager
def running_platform(cluster: ClusterHandle, settings: OperatorSettings, workdir: Path) -> Iterator[Platform]:
    """CRDs, sample flavors and the operator on ``cluster``, for as long as the context lasts."""
    if on_real_control_plane(cluster):
        make_admin_a_devservers_admin(cluster)
        real = cluster.local.real if cluster.local is not None else None
        node_logs = [real.agent_log(name) for name in real.node_names] if real is not None else []
        deployed = DeployedOperator(cluster.kubeconfig, workdir, env=dict(settings.env), node_logs=node_logs)
        deployed.install()
        try:
            yield Platform(cluster.kubeconfig, deployed, deployed.log_path)
        finally:
            deployed.close()
        if settings.check_log:
            assert deployed.restarts_seen == 0, f"the operator's container restarted:\n{deployed.log()[-8000:]}"
            check_operator_log(deployed.log())
        return
    apply_crds_and_flavors(cluster.kubeconfig)
    if cluster.emulator is None and os.environ.get("DEVSERVERS_TEST_EXTERNAL_OPERATOR") and not settings.ours:
        yield Platform(cluster.kubeconfig, None, workdir / "operator.log")
        return
    process = OperatorProcess(cluster.kubeconfig, workdir / "operator.log", env=settings.env)
    process.start()
    try:
        yield Platform(cluster.kubeconfig, process, process.log_path)
    finally:
        process.stop()
    if settings.check_log:
        check_operator_log(process.log())


_platforms: pytest.StashKey[dict[str, tuple[OperatorSettings, Platform]]] = pytest.StashKey()


# The pods of the local cluster share the machine's network: with the shipped torchrun master port (29500),
# two test sessions on one machine (CI beside another copy of the suite) failed each other's launches with
# EADDRINUSE. Below the kernel's ephemeral range, and apart from tests/operator's own (11000 + pid % 9000).
PLATFORM_MASTER_PORT = str(20000 + os.getpid() % 9000)


@pytest.fixture(scope="session")
def operator_settings() -> OperatorSettings:
    """The shipped settings but a torchrun master port of this session's own; a folder whose tests need others
    overrides this fixture."""
    return OperatorSettings(env={"DEVSERVERS_MASTER_PORT": PLATFORM_MASTER_PORT})


@pytest.fixture(scope="module")
def platform(request: pytest.FixtureRequest, cluster: ClusterHandle, operator_settings: OperatorSettings,
             tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """The whole product on the test's cluster: the one fixture that starts an operator.

    One platform per cluster, started by the first module that asks and kept until the session ends.
    Module-scoped, over a per-cluster cache, rather than session-scoped: pytest computes a session fixture
    once, for whichever folder asks first, so a folder with a ``cluster`` of its own (tests/operator,
    tests/spot) would get the other folder's platform.
    """
    running = request.session.stash.setdefault(_platforms, {})
    if cluster.kubeconfig in running:
        settings, found = running[cluster.kubeconfig]
        if settings != operator_settings:
            pytest.fail(f"{request.node.nodeid} wants the operator of {cluster.kubeconfig} run with "
                        f"{operator_settings}, but it runs with {settings}: give those tests a cluster of their "
                        f"own")
        return found
    # A session finalizer registered now runs before the cluster's own teardown, which was registered earlier.
    stack = contextlib.ExitStack()
    request.session.addfinalizer(stack.close)
    started = stack.enter_context(running_platform(cluster, operator_settings, tmp_path_factory.mktemp("operator")))
    running[cluster.kubeconfig] = (operator_settings, started)
    return started
