"""The dashboard as a researcher on the real control plane (RBAC enforced): alice, holding only ``edit`` in her
namespace, sees and drives her DevServers there; asked for every namespace (``-A``), the list says why it cannot
instead of showing an empty page. Skipped on the emulator, which stores RBAC without enforcing it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from dashboard_support import start_dashboard, stop_dashboard
from playwright.sync_api import expect

from devservers_sdk import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace, delete_test_namespace, wait_for
from tests.platform_fixture import KUBECTL, Platform


def test_a_researcher_sees_her_namespace_and_why_not_every_namespace(real_control_plane: Any, cluster: Any,
                                                                     platform: Platform, tmp_path: Path,
                                                                     page: Any) -> None:
    namespace = create_test_namespace(cluster.kubeconfig, "ui-alice")
    try:
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "alice-edit", "namespace": namespace},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}
        subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "apply", "-f", "-"], check=True,
                       input=json.dumps(binding), text=True, capture_output=True, timeout=60)
        alice = str(real_control_plane.user_kubeconfig("alice", [], path=tmp_path / "alice", namespace=namespace))
        with DevServerClient(kubeconfig=alice) as client:
            wait_for(lambda: _can_list(client), timeout=60, message="alice's edit binding in force")
            client.create("alice-gpu", flavor="gpu-small", time_to_live="1h")  # stays Pending: no GPU node

            mine = start_dashboard(alice)
            try:
                page.goto(mine.url)
                row = page.locator(f'tr[data-key="{namespace}/alice-gpu"]')
                expect(row).to_contain_text("alice")
                expect(row).to_contain_text("Pending")
                expect(page.locator("#live-error")).to_be_hidden()
            finally:
                stop_dashboard(mine)

            everywhere = start_dashboard(alice, "--all-namespaces")
            try:
                page.goto(everywhere.url)
                expect(page.locator("#live-error")).to_contain_text("Permission denied")
            finally:
                stop_dashboard(everywhere)
            client.delete("alice-gpu", wait=True, timeout=120)
    finally:
        delete_test_namespace(cluster.kubeconfig, namespace)


def _can_list(client: DevServerClient) -> bool:
    from devservers_sdk import PermissionDeniedError

    try:
        client.list()
    except PermissionDeniedError:
        return False
    return True
