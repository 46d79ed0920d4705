"""The scene of the fast list path's tests: a private emulator without kubelet or operator, DevServers in three
namespaces whose statuses are written here (every column has something to show), and two kubeconfigs that
differ only in the user entry: a bearer token, which ``devservers_sdk.lightweight_read`` handles, and an exec
credential plugin handing out the same token, which it leaves to the SDK's client.

Shared by the SDK's tests of the fast path (``tests/sdk/test_lightweight_read_listing.py``) and devctl's
(``tests/cli/test_devctl_list_fast_path.py``); each module starts its own scene, so faults injected by one
reach no other.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from devservers_sdk.kube import DEVSERVERS, Kube, Resource
from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.settings import load_kubeconfig
from tests.platform_fixture import apply_crds_and_flavors

HOME, OTHER, EMPTY = "fast-home", "fast-other", "fast-empty"
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)


@dataclass
class Scene:
    cluster: LocalCluster
    directory: Path
    token: Path  # kubeconfig with the admin token: the fast path
    exec: Path  # the same user through an exec plugin: the client's path
    calls: Path  # one line per run of the exec plugins
    now: datetime  # the renderer's clock in every comparison

    def variant(self, name: str, *, user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
                source: Path | None = None) -> Path:
        """A copy of a kubeconfig (the token one by default) with its user replaced or cluster fields changed."""
        document = yaml.safe_load((source or self.token).read_text())
        if user is not None:
            document["users"][0]["user"] = user
        if cluster is not None:
            document["clusters"][0]["cluster"].update(cluster)
        path = self.directory / name
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def exec_user(self, token: str) -> dict[str, Any]:
        """An exec credential plugin that hands out ``token`` and counts its runs in ``calls``."""
        script = self.directory / f"credential-{len(list(self.directory.glob('credential-*')))}.py"
        credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                      "status": {"token": token}}
        script.write_text(f"import json\nwith open({str(self.calls)!r}, 'a') as calls:\n    calls.write('run\\n')\n"
                          f"print(json.dumps({credential!r}))\n")
        return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                         "args": [str(script)]}}

    def plugin_runs(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _populate(kube: Kube, now: datetime) -> None:
    """DevServers that exercise every column, and the defaults a manifest may leave to the model."""
    for namespace in (HOME, OTHER, EMPTY):
        kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    servers: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        (HOME, "alpha", {"owner": "alice", "flavor": "cpu-small", "lifecycle": {"timeToLive": "4h"}},
         {"phase": "Running", "readyReplicas": 1, "replicas": 1, "message": "1/1 pods ready",
          "lastActivityTime": _timestamp(now - timedelta(minutes=3))}),
        # distributed without a `distributed` section: the model's default world size (2) applies
        (HOME, "beta", {"owner": "bob", "flavor": "cpu-small", "mode": "distributed", "image": "python:3.11",
                        "persistentHomeSize": "10Gi"}, {}),
        (HOME, "gamma", {"owner": "alice", "flavor": "cpu-large", "mode": "distributed",
                         "distributed": {"worldSize": 3, "backend": "gloo", "ncclSettings": {"NCCL_DEBUG": "INFO"}},
                         "lifecycle": {"expirationTime": _timestamp(now + timedelta(days=2)), "timeToLive": "1d"}},
         {"phase": "Starting", "readyReplicas": 1, "replicas": 3, "expiresAt": _timestamp(now + timedelta(hours=5)),
          "conditions": [
              {"type": "Ready", "status": "False", "reason": "PodsStarting", "message": "1/3 pods ready",
               "lastTransitionTime": _timestamp(now - timedelta(minutes=2))},
              {"type": "Expiring", "status": "Unknown", "reason": "Soon", "message": "",
               "lastTransitionTime": _timestamp(now - timedelta(minutes=9))}]}),
        (HOME, "delta", {"owner": "alice", "flavor": "cpu-small", "lifecycle": {"autoShutdown": False}},
         {"phase": "Stopped", "readyReplicas": 0, "replicas": 0, "stoppedReason": "IdleTimeout",
          "conditions": [{"type": "Stopped", "status": "True", "reason": "IdleTimeout",
                          "lastTransitionTime": _timestamp(now - timedelta(hours=1))}]}),
        (OTHER, "epsilon", {"owner": "carol", "flavor": "gpu-small",
                            "lifecycle": {"expirationTime": _timestamp(now - timedelta(minutes=1))}},
         {"phase": "Failed", "message": "ImagePullBackOff"}),
    ]
    for namespace, name, spec, status in servers:
        kube.create(DEVSERVERS, {"apiVersion": "devservers.io/v1", "kind": "DevServer",
                                 "metadata": {"name": name, "namespace": namespace}, "spec": spec},
                    namespace=namespace)
        if status:
            kube.patch(DEVSERVERS, name, {"status": status}, namespace=namespace, subresource="status")


@contextmanager
def running_scene(directory: Path) -> Iterator[Scene]:
    """The scene on a fresh private emulator, stopped on leaving; kubeconfigs and plugins go to ``directory``."""
    with LocalCluster(kubelet=False) as cluster:
        apply_crds_and_flavors(cluster.kubeconfig)
        kube = Kube(load_kubeconfig(cluster.kubeconfig))
        now = datetime.now(UTC).replace(microsecond=0)
        _populate(kube, now)
        kube.close()
        token = Path(cluster.kubeconfig_for(directory / "token.kubeconfig", namespace=HOME))
        # 20m30s later: every age and deadline is then shown in minutes, whichever second the objects got.
        scene = Scene(cluster, directory, token, token, directory / "plugin-runs",
                      now + timedelta(minutes=20, seconds=30))
        scene.exec = scene.variant("exec.kubeconfig", user=scene.exec_user(cluster.token))
        yield scene
