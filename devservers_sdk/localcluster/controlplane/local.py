"""The real control plane plus our node agent: what ``LocalCluster(control_plane="kubernetes")`` runs.

etcd and the three kube-* components come from :class:`KubernetesControlPlane`; the node is our agent
(``python -m devservers_sdk.localcluster node``) in a child process of its own, authenticated as
``system:node:<name>``, serving the kubelet API with a certificate of the cluster CA and running the
local-path provisioner under an identity that may only manage volumes. Everything lives in one state dir::

    <state>/control-plane/   etcd data, PKI, component logs, kubeconfigs (see runner.py)
    <state>/node/            the agent's pods, volumes, hosts file; <state>/node/agent.log
    <state>/node-2/ ...      further nodes (``nodes=N``), each an agent of its own named localcluster-2, ...

Ready means: ``/readyz`` ok, the default ServiceAccount exists, and every Node is Ready. Each node hands out pod
addresses from its own /16 of 127.0.0.0/8, advertised as its ``podCIDR``, so pods on different nodes never share
an address; the first node also runs the volume provisioner (one per cluster, as one would deploy it).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .build import ensure_binaries
from .runner import ControlPlaneError, KubernetesControlPlane, spawn_child

NODE_NAME = "localcluster"
PROVISIONER_USER = "system:devservers:local-path-provisioner"
PROVISIONER_ROLE: dict[str, Any] = {
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
NAMES_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "devservers:cluster-names"},
    "rules": [
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints", "namespaces"],
         "verbs": ["get", "list", "watch"]},
    ],
}
NAMES_BINDING: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "devservers:cluster-names"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devservers:cluster-names"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": NAMES_USER}],
}
PROVISIONER_BINDING: dict[str, Any] = {
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
                 progress: Callable[[str], None] | None = None, ready_timeout: float = 180.0,
                 nodes: int = 1) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.state_dir = Path(state_dir)
        self.node_capacity = dict(node_capacity or {})
        self.users = list(users)
        self.progress = progress or (lambda line: None)
        self.ready_timeout = ready_timeout
        self.node_names = [NODE_NAME] + [f"{NODE_NAME}-{n}" for n in range(2, nodes + 1)]
        self.control_plane: KubernetesControlPlane | None = None
        self._agents: dict[str, Any] = {}

    def node_dir(self, name: str = NODE_NAME) -> Path:
        return self.state_dir / ("node" if name == NODE_NAME else name.replace(NODE_NAME, "node", 1))

    def agent_log(self, name: str = NODE_NAME) -> Path:
        return self.node_dir(name) / "agent.log"

    def start(self) -> None:
        binaries = ensure_binaries(progress=self.progress)
        self.control_plane = KubernetesControlPlane(
            self.state_dir / "control-plane", binaries=binaries, users=self.users, ready_timeout=self.ready_timeout)
        self.control_plane.start()
        self._bootstrap()
        for name in self.node_names:
            self.start_node(name)

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

    def start_node(self, name: str = NODE_NAME) -> None:
        """Start a node's agent (again) and wait until its Node is Ready."""
        assert self.control_plane is not None
        if self.node_running(name):
            return
        cp = self.control_plane
        directory = self.node_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        node_kubeconfig = cp.kubeconfig_for(f"system:node:{name}", ("system:nodes",), name=f"node-{name}")
        names_kubeconfig = cp.kubeconfig_for(NAMES_USER, (), name="cluster-names")
        serving = cp.pki.kubelet_serving_certificate(name)
        port_file = directory / "kubelet-port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        command = [
            sys.executable, "-m", "devservers_sdk.localcluster", "node",
            "--kubeconfig", str(node_kubeconfig), "--state-dir", str(directory), "--name", name,
            "--serving-cert", str(serving.cert), "--serving-key", str(serving.key), "--client-ca", str(cp.ca_file),
            "--port", str(port), "--port-file", str(port_file), "--names-kubeconfig", str(names_kubeconfig),
            "--pod-cidr", self._pod_cidr(name),
        ]
        if name == NODE_NAME:
            provisioner_kubeconfig = cp.kubeconfig_for(PROVISIONER_USER, (), name="local-path-provisioner")
            command += ["--provisioner-kubeconfig", str(provisioner_kubeconfig)]
        for resource, amount in self.node_capacity.items():
            command += ["--capacity", f"{resource}={amount}"]
        self._agents[name] = spawn_child(command, self.agent_log(name))
        self.wait_for_node_ready(name)

    def _pod_cidr(self, name: str) -> str:
        """The node's /16 of 127.0.0.0/8: remembered in its state dir, distinct from the other nodes'."""
        remembered = self.node_dir(name) / "pod-cidr"
        if remembered.exists():
            return remembered.read_text().strip()
        taken = set()
        for other in self.node_names:
            path = self.node_dir(other) / "pod-cidr"
            if path.exists():
                taken.add(path.read_text().strip())
        choices = [f"127.{octet}.0.0/16" for octet in range(2, 255) if f"127.{octet}.0.0/16" not in taken]
        cidr = random.choice(choices)
        remembered.write_text(cidr + "\n")
        return cidr

    def stop_node(self, name: str = NODE_NAME, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop a node's agent: SIGTERM (its pods stop with it), or SIGKILL as a crashed node would."""
        agent = self._agents.pop(name, None)
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

    def node_running(self, name: str = NODE_NAME) -> bool:
        agent = self._agents.get(name)
        return agent is not None and agent.poll() is None

    def node_pid(self, name: str = NODE_NAME) -> int | None:
        """The process id of a node's running agent (its pods are its descendants), or None."""
        agent = self._agents.get(name)
        return agent.pid if agent is not None and agent.poll() is None else None

    def wait_for_node_ready(self, name: str = NODE_NAME) -> None:
        assert self.control_plane is not None
        deadline = time.monotonic() + self.ready_timeout
        last = "no Node object yet"
        while time.monotonic() < deadline:
            agent = self._agents.get(name)
            if agent is not None and agent.poll() is not None:
                raise ControlPlaneError(
                    f"the node agent of {name} exited with code {agent.returncode}; its log {self.agent_log(name)} "
                    f"ends with:\n{_tail(self.agent_log(name))}")
            status, node = self.control_plane.request("GET", f"/api/v1/nodes/{name}")
            if status == 200:
                ready = next((c for c in node.get("status", {}).get("conditions") or [] if c["type"] == "Ready"),
                             None)
                if ready is not None and ready.get("status") == "True":
                    return
                last = json.dumps(ready) if ready else "no Ready condition"
            time.sleep(0.2)
        raise ControlPlaneError(f"node {name} was not Ready within {self.ready_timeout:.0f}s ({last}); "
                                f"the agent's log {self.agent_log(name)} ends with:\n{_tail(self.agent_log(name))}")

    def stop(self) -> None:
        for name in list(self._agents):
            self.stop_node(name)
        if self.control_plane is not None:
            self.control_plane.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
