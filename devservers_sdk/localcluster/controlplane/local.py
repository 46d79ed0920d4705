"""The real control plane plus our node agent: what ``LocalCluster(control_plane="kubernetes")`` runs.

etcd and the three kube-* components come from :class:`KubernetesControlPlane`; the node is our agent
(``python -m devservers_sdk.localcluster node``) in a child process of its own, authenticated as
``system:node:<name>``, serving the kubelet API with a certificate of the cluster CA and running the
local-path provisioner under an identity that may only manage volumes. Everything lives in one state dir::

    <state>/control-plane/   etcd data, PKI, component logs, kubeconfigs (see runner.py)
    <state>/node/            the agent's pods, volumes, hosts file; <state>/node/agent.log

Ready means: ``/readyz`` ok, the default ServiceAccount exists, and the Node is Ready.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .build import ensure_binaries
from .runner import ControlPlaneError, KubernetesControlPlane, spawn_child

NODE_NAME = "localcluster"
PROVISIONER_USER = "system:devservers:local-path-provisioner"
PROVISIONER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "devservers:local-path-provisioner"},
    "rules": [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ],
}
NAMES_USER = "system:devservers:cluster-names"
NAMES_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "devservers:cluster-names"},
    "rules": [
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints", "namespaces"],
         "verbs": ["get", "list", "watch"]},
    ],
}
NAMES_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "devservers:cluster-names"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devservers:cluster-names"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": NAMES_USER}],
}
PROVISIONER_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "devservers:local-path-provisioner"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "devservers:local-path-provisioner"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROVISIONER_USER}],
}


class KubernetesRuntime:
    """A real control plane and one node agent; ``start()`` blocks until both are ready."""

    def __init__(self, state_dir: Path, *, node_capacity: dict[str, str] | None = None,
                 users: Sequence[tuple[str, Sequence[str]]] = (),
                 progress: Callable[[str], None] | None = None, ready_timeout: float = 180.0) -> None:
        self.state_dir = Path(state_dir)
        self.node_capacity = dict(node_capacity or {})
        self.users = list(users)
        self.progress = progress or (lambda line: None)
        self.ready_timeout = ready_timeout
        self.control_plane: KubernetesControlPlane | None = None
        self._agent: Any = None

    @property
    def node_dir(self) -> Path:
        return self.state_dir / "node"

    @property
    def agent_log(self) -> Path:
        return self.node_dir / "agent.log"

    def start(self) -> None:
        binaries = ensure_binaries(progress=self.progress)
        self.control_plane = KubernetesControlPlane(
            self.state_dir / "control-plane", binaries=binaries, users=self.users, ready_timeout=self.ready_timeout)
        self.control_plane.start()
        self._bootstrap()
        self.start_node()

    def _bootstrap(self) -> None:
        assert self.control_plane is not None
        for collection, manifest in (
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", PROVISIONER_ROLE),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", PROVISIONER_BINDING),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", NAMES_ROLE),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", NAMES_BINDING),
        ):
            status, answer = self.control_plane.request("POST", collection, manifest)
            if status not in (200, 201, 409):
                raise ControlPlaneError(f"creating {manifest['metadata']['name']} failed: HTTP {status} {answer}")

    def start_node(self) -> None:
        """Start the node agent (again) and wait until its Node is Ready."""
        assert self.control_plane is not None
        if self._agent is not None and self._agent.poll() is None:
            return
        cp = self.control_plane
        self.node_dir.mkdir(parents=True, exist_ok=True)
        node_kubeconfig = cp.kubeconfig_for(f"system:node:{NODE_NAME}", ("system:nodes",), name=f"node-{NODE_NAME}")
        provisioner_kubeconfig = cp.kubeconfig_for(PROVISIONER_USER, (), name="local-path-provisioner")
        names_kubeconfig = cp.kubeconfig_for(NAMES_USER, (), name="cluster-names")
        serving = cp.pki.kubelet_serving_certificate(NODE_NAME)
        port_file = self.node_dir / "kubelet-port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        command = [
            sys.executable, "-m", "devservers_sdk.localcluster", "node",
            "--kubeconfig", str(node_kubeconfig), "--state-dir", str(self.node_dir), "--name", NODE_NAME,
            "--serving-cert", str(serving.cert), "--serving-key", str(serving.key),
            "--client-ca", str(cp.ca_file), "--provisioner-kubeconfig", str(provisioner_kubeconfig),
            "--port", str(port), "--port-file", str(port_file), "--names-kubeconfig", str(names_kubeconfig),
        ]
        for resource, amount in self.node_capacity.items():
            command += ["--capacity", f"{resource}={amount}"]
        self._agent = spawn_child(command, self.agent_log)
        self.wait_for_node_ready()

    def stop_node(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop the agent: SIGTERM (its pods stop with it), or SIGKILL as a crashed node would."""
        agent, self._agent = self._agent, None
        if agent is None or agent.poll() is not None:
            return
        if kill:
            agent.kill()
        else:
            agent.terminate()
        try:
            agent.wait(timeout)
        except Exception:
            agent.kill()
            agent.wait(10)

    def node_running(self) -> bool:
        return self._agent is not None and self._agent.poll() is None

    def wait_for_node_ready(self) -> None:
        assert self.control_plane is not None
        deadline = time.monotonic() + self.ready_timeout
        last = "no Node object yet"
        while time.monotonic() < deadline:
            if self._agent is not None and self._agent.poll() is not None:
                raise ControlPlaneError(
                    f"the node agent exited with code {self._agent.returncode}; its log {self.agent_log} ends "
                    f"with:\n{_tail(self.agent_log)}")
            status, node = self.control_plane.request("GET", f"/api/v1/nodes/{NODE_NAME}")
            if status == 200:
                ready = next((c for c in node.get("status", {}).get("conditions") or [] if c["type"] == "Ready"),
                             None)
                if ready is not None and ready.get("status") == "True":
                    return
                last = json.dumps(ready) if ready else "no Ready condition"
            time.sleep(0.2)
        raise ControlPlaneError(f"node {NODE_NAME} was not Ready within {self.ready_timeout:.0f}s ({last}); "
                                f"the agent's log {self.agent_log} ends with:\n{_tail(self.agent_log)}")

    def stop(self) -> None:
        self.stop_node()
        if self.control_plane is not None:
            self.control_plane.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
