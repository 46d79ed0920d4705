"""The real control plane on loopback: version, readiness, authentication by client certificate, RBAC, objects
that survive restarts, and children that never outlive their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devservers_sdk.localcluster.controlplane.build import ControlPlaneBinaries
from devservers_sdk.localcluster.controlplane.runner import COMPONENTS, KubernetesControlPlane

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

KUBECTL = str(Path(sys.executable).parent / "kubectl")
REPO = Path(__file__).resolve().parents[2]


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "--request-timeout=30s", *args],
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f}s for {what}")
        time.sleep(0.2)


def processes_using(state_dir: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line mentions ``state_dir``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state_dir) in command:
            found[int(entry.name)] = command[:200]
    return found


def test_version_is_the_pinned_release(control_plane: KubernetesControlPlane,
                                       binaries: ControlPlaneBinaries) -> None:
    status, version = control_plane.request("GET", "/version")
    assert status == 200 and version["gitVersion"] == binaries.kubernetes_version == "v1.37.2", version
    assert (version["major"], version["minor"]) == ("1", "37")

    shown = json.loads(kubectl(control_plane.admin_kubeconfig, "version", "-o", "json").stdout)
    assert shown["serverVersion"]["gitVersion"] == "v1.37.2", shown


def test_readyz_is_ok(control_plane: KubernetesControlPlane) -> None:
    result = kubectl(control_plane.admin_kubeconfig, "get", "--raw", "/readyz?verbose")
    assert "readyz check passed" in result.stdout, result.stdout
    for component in COMPONENTS:
        assert control_plane.is_running(component), f"{component} is not running"


@pytest.mark.parametrize(("user", "groups"), [
    ("alice", ()),
    ("carol", ("devservers:admins",)),
    ("system:node:worker-1", ("system:nodes",)),
    ("kubernetes-admin", ("system:masters",)),
])
def test_whoami_shows_each_minted_identity(control_plane: KubernetesControlPlane, user: str,
                                           groups: tuple[str, ...]) -> None:
    kubeconfig = (control_plane.user_kubeconfigs[user] if user in control_plane.user_kubeconfigs
                  else control_plane.kubeconfig_for(user, groups))
    assert kubeconfig.stat().st_mode & 0o777 == 0o600

    review = json.loads(kubectl(kubeconfig, "auth", "whoami", "-o", "json").stdout)

    info = review["status"]["userInfo"]
    assert info["username"] == user, review
    assert set(info["groups"]) == {*groups, "system:authenticated"}, review


def test_a_user_without_rights_is_forbidden(control_plane: KubernetesControlPlane) -> None:
    result = kubectl(control_plane.user_kubeconfigs["alice"], "get", "pods", "-n", "default", check=False)

    assert result.returncode != 0
    assert "Forbidden" in result.stderr and 'User "alice" cannot list resource "pods"' in result.stderr, \
        result.stderr


def test_admin_creates_a_namespace_and_a_configmap(control_plane: KubernetesControlPlane) -> None:
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "namespace", "team-a")
    kubectl(admin, "-n", "team-a", "create", "configmap", "settings", "--from-literal=answer=42")

    stored = json.loads(kubectl(admin, "-n", "team-a", "get", "configmap", "settings", "-o", "json").stdout)
    assert stored["data"] == {"answer": "42"}
    # The controller manager runs: it publishes the cluster CA into every new namespace.
    wait_for(lambda: kubectl(admin, "-n", "team-a", "get", "configmap", "kube-root-ca.crt",
                             check=False).returncode == 0, what="kube-root-ca.crt in namespace team-a")

    def audited() -> bool:
        for line in control_plane.audit_log.read_text().splitlines():
            event = json.loads(line)
            target = event.get("objectRef", {})
            if (event["user"]["username"] == "kubernetes-admin" and event["verb"] == "create"
                    and target.get("resource") == "configmaps" and target.get("namespace") == "team-a"):
                return event["level"] == "Metadata" and "requestObject" not in event
        return False
    wait_for(audited, what="a Metadata-level audit event for the admin's ConfigMap create")


def test_the_default_storage_class_is_standard(control_plane: KubernetesControlPlane) -> None:
    status, storage_class = control_plane.request("GET", "/apis/storage.k8s.io/v1/storageclasses/standard")
    assert status == 200, storage_class
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class["provisioner"] == "devservers.io/local-path"
    assert storage_class["reclaimPolicy"] == "Delete"


def marked_unschedulable(admin: Path, pod_name: str) -> bool:
    pod = json.loads(kubectl(admin, "-n", "default", "get", "pod", pod_name, "-o", "json").stdout)
    return any(condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable"
               for condition in pod["status"].get("conditions", []))


def test_the_scheduler_sees_pods_but_no_node(control_plane: KubernetesControlPlane) -> None:
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "-n", "default", "run", "pending", "--image=busybox", "--restart=Never")
    wait_for(lambda: marked_unschedulable(admin, "pending"),
             what="the scheduler to mark pod 'pending' Unschedulable (there is no node)")


def test_restarting_the_api_server_alone(control_plane: KubernetesControlPlane) -> None:
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "-n", "default", "create", "configmap", "before-restart", "--from-literal=a=b")
    old_pid = control_plane.pid("kube-apiserver")

    control_plane.stop_component("kube-apiserver")
    assert not control_plane.is_running("kube-apiserver")
    assert kubectl(admin, "get", "namespaces", check=False).returncode != 0, "the API server still answers"
    control_plane.start_component("kube-apiserver")

    assert control_plane.pid("kube-apiserver") not in (None, old_pid)
    stored = json.loads(kubectl(admin, "-n", "default", "get", "configmap", "before-restart", "-o", "json").stdout)
    assert stored["data"] == {"a": "b"}
    for component in COMPONENTS:
        assert control_plane.is_running(component), f"{component} died while the API server restarted"


def test_killing_and_restarting_etcd_under_a_running_api_server(control_plane: KubernetesControlPlane) -> None:
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "-n", "default", "create", "configmap", "before-etcd-kill", "--from-literal=c=d")

    control_plane.stop_component("etcd", kill=True)
    assert not control_plane.is_running("etcd")
    control_plane.start_component("etcd")

    def readable() -> bool:
        result = kubectl(admin, "-n", "default", "get", "configmap", "before-etcd-kill", "-o", "json", check=False)
        return result.returncode == 0 and json.loads(result.stdout)["data"] == {"c": "d"}
    wait_for(readable, what="the API server to serve the ConfigMap again from the restarted etcd")
    kubectl(admin, "-n", "default", "create", "configmap", "after-etcd-kill", "--from-literal=e=f")
    assert control_plane.is_running("kube-apiserver"), "the API server died with etcd"


def test_stop_and_start_keep_objects_url_and_credentials(binaries: ControlPlaneBinaries, tmp_path: Path) -> None:
    state = tmp_path / "state"
    plane = KubernetesControlPlane(state, binaries=binaries)
    plane.start()
    try:
        server, carol = plane.server, plane.user_kubeconfigs["carol"]
        kubectl(plane.admin_kubeconfig, "-n", "default", "create", "configmap", "kept", "--from-literal=k=v")
    finally:
        plane.stop()
    assert processes_using(state) == {}, "processes left after stop()"

    again = KubernetesControlPlane(state, binaries=binaries)
    again.start()
    try:
        assert again.server == server
        stored = json.loads(kubectl(again.admin_kubeconfig, "-n", "default", "get", "configmap", "kept",
                                    "-o", "json").stdout)
        assert stored["data"] == {"k": "v"}
        review = json.loads(kubectl(carol, "auth", "whoami", "-o", "json").stdout)
        assert review["status"]["userInfo"]["username"] == "carol", "a kubeconfig from the first run stopped working"
    finally:
        again.stop()
    assert processes_using(state) == {}, "processes left after the second stop()"


def test_children_die_with_a_killed_parent(binaries: ControlPlaneBinaries, tmp_path: Path) -> None:
    state, ready = tmp_path / "state", tmp_path / "ready.json"
    script = textwrap.dedent(f"""
        import json, threading, time
        from pathlib import Path
        from devservers_sdk.localcluster.controlplane.build import ensure_binaries
        from devservers_sdk.localcluster.controlplane.runner import COMPONENTS, KubernetesControlPlane

        binaries = ensure_binaries(cache_dir=Path({str(binaries.kube_apiserver.parent.parent)!r}))
        plane = KubernetesControlPlane(Path({str(state)!r}), binaries=binaries)
        # Started from a thread that then ends: the children must still live as long as this process.
        worker = threading.Thread(target=plane.start)
        worker.start()
        worker.join()
        Path({str(ready)!r}).write_text(json.dumps({{c: plane.pid(c) for c in COMPONENTS}}))
        time.sleep(3600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        wait_for(lambda: ready.exists() or parent.poll() is not None, what="the control plane in the child",
                 timeout=600)
        assert parent.poll() is None, f"the parent process exited with {parent.returncode} before it was ready"
        pids = json.loads(ready.read_text())
        assert all(pids.values()), pids
        assert set(processes_using(state)) >= set(pids.values()), "the children outlived their thread"

        parent.send_signal(signal.SIGKILL)
        parent.wait()

        wait_for(lambda: not processes_using(state), what=f"children of the killed parent to die: "
                                                         f"{processes_using(state)}", timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_component_that_exits_on_its_own_is_started_again(control_plane: KubernetesControlPlane) -> None:
    """kube-scheduler exits by design when it finds its cache corrupted; like the kubelet for static pods, the
    control plane starts it again, and it goes on scheduling."""
    admin = control_plane.admin_kubeconfig
    old_pid = control_plane.pid("kube-scheduler")
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: control_plane.pid("kube-scheduler") not in (None, old_pid),
             what="kube-scheduler started again after it died")
    kubectl(admin, "-n", "default", "run", "after-restart", "--image=busybox", "--restart=Never")
    wait_for(lambda: marked_unschedulable(admin, "after-restart"),
             what="the new kube-scheduler to judge pod 'after-restart' (there is no node)")
    # A component stopped on purpose stays stopped.
    control_plane.stop_component("kube-scheduler")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert not control_plane.is_running("kube-scheduler"), "a stopped component was started again"
        time.sleep(0.2)
    control_plane.start_component("kube-scheduler")
