"""Researchers with real identities on the real control plane: what ``edit`` and the owner policy allow.

The project is installed from ``operator/deploy`` by the session's ``platform`` fixture (operator pod, RBAC,
the owner policy). Each test gets namespaces of its own: ``alice``'s and ``bob``'s, where each holds only
the built-in ``edit`` ClusterRole (into which ``devservers-user`` aggregates), and a shared one where both
hold ``edit`` and so does the group ``devservers:admins`` (carol). The identities are client certificates
of the cluster CA, so RBAC and the ValidatingAdmissionPolicy see exactly these users. Only the real
control plane enforces RBAC, so these tests skip on the emulator.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import (
    ClusterHandle,
    create_test_namespace,
    delete_test_namespace,
    wait_for,
)
from tests.platform_fixture import ADMIN_GROUP, Platform

KUBECTL = str(Path(sys.executable).parent / "kubectl")
DEVCTL = str(Path(sys.executable).parent / "devctl")


@dataclass
class People:
    admin: str
    alice_ns: str
    bob_ns: str
    shared_ns: str
    kubeconfigs: dict[str, str]

    def kubectl(self, who: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        kubeconfig = self.admin if who == "admin" else self.kubeconfigs[who]
        return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                              timeout=60, input=input)

    def devctl(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DEVCTL, "--kubeconfig", self.kubeconfigs[who], *args], capture_output=True,
                              text=True, timeout=180)


def _bind_edit(people: People, namespace: str, subjects: list[dict[str, Any]]) -> None:
    import json

    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "researchers-edit", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **s} for s in subjects]}
    result = people.kubectl("admin", "apply", "-f", "-", input=json.dumps(binding))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def people(real_control_plane: Any, cluster: ClusterHandle, platform: Platform, tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[People]:
    base = request.node.name[:30]
    names = [create_test_namespace(cluster.kubeconfig, f"{who}-{base}") for who in ("alice", "bob", "shared")]
    kubeconfigs = {
        "alice": real_control_plane.user_kubeconfig("alice", [], path=tmp_path / "alice", namespace=names[0]),
        "bob": real_control_plane.user_kubeconfig("bob", [], path=tmp_path / "bob", namespace=names[1]),
        "carol": real_control_plane.user_kubeconfig("carol", [ADMIN_GROUP], path=tmp_path / "carol",
                                                    namespace=names[2]),
    }
    result = People(platform.kubeconfig, *names, kubeconfigs=kubeconfigs)
    _bind_edit(result, names[0], [{"kind": "User", "name": "alice"}])
    _bind_edit(result, names[1], [{"kind": "User", "name": "bob"}])
    _bind_edit(result, names[2], [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                                  {"kind": "Group", "name": ADMIN_GROUP}])
    # RBAC reads bindings through an informer: wait until alice's is in force (and `edit` aggregates ours).
    wait_for(lambda: result.kubectl("alice", "auth", "can-i", "create", "devservers.devservers.io", "-n",
                                    names[0]).stdout.strip() == "yes",
             timeout=60, message="alice's edit binding (with devservers-user aggregated) in force")
    try:
        yield result
    finally:
        for name in names:
            delete_test_namespace(cluster.kubeconfig, name)
