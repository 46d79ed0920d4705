"""``devctl local up|status|down``: a second local cluster and operator, in a temporary state directory,
merged into a temporary kubeconfig (never the user's real one).

These tests start clusters of their own (the emulator, or with ``--kubernetes`` the real control plane) and
never touch the session's, so they run whatever ``DEVSERVERS_TEST_BACKEND`` says.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml
from devctl_support import DEVCTL, Devctl, devctl_env, make_devctl

from devservers_sdk.localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.slow

KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def current_context(kubeconfig: Path) -> str:
    result = subprocess.run([KUBECTL, "config", "current-context"], capture_output=True, text=True,
                            env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=60)
    return result.stdout.strip() or result.stderr.strip()


def kubectl_uid(kubeconfig: Path, name: str) -> str:
    result = subprocess.run([KUBECTL, "get", name, "-o", "jsonpath={.metadata.uid}"], capture_output=True,
                            text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=60)
    return result.stdout.strip()


def previous_kubeconfig(path: Path) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "previous",
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://elsewhere.invalid:6443"}}],
        "users": [{"name": "me", "user": {"token": "secret"}}],
        "contexts": [{"name": "previous", "context": {"cluster": "elsewhere", "user": "me"}}]}))
    path.chmod(0o600)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def local_env(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A state directory and a user kubeconfig of the test's own; whatever was started is stopped after."""
    state, kubeconfig = tmp_path / "state", tmp_path / "home" / "config"
    kubeconfig.parent.mkdir()
    yield state, kubeconfig
    subprocess.run([*DEVCTL, "local", "down", "--timeout", "5"], capture_output=True, timeout=120,
                   env=devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state)))


def test_up_status_down_as_a_user_runs_them(local_env: tuple[Path, Path]) -> None:
    state, kubeconfig = local_env
    previous_kubeconfig(kubeconfig)
    devctl = make_devctl("process", str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))

    before = devctl("local", "status")
    assert before.exit_code == 3 and "Local cluster: stopped" in before.stdout, str(before)

    up = devctl("local", "up")
    assert up.exit_code == 0, str(up)
    assert "cluster ready at https://127.0.0.1:" in up.stdout and "operator ready" in up.stdout
    assert "sample flavors installed: cpu-large, cpu-medium, cpu-small, gpu-large, gpu-medium, gpu-small" in up.stdout
    assert f"Context 'devservers-local' added to {kubeconfig} and selected (it was 'previous'" in up.stdout
    assert current_context(kubeconfig) == "devservers-local"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600

    again = devctl("local", "up")
    assert again.exit_code == 0 and "already running" in again.stdout, str(again)

    status = devctl("local", "status")
    assert status.exit_code == 0, str(status)
    assert "Local cluster: running (pid" in status.stdout and "Operator:      running (pid" in status.stdout
    assert f"devservers-local in {kubeconfig} (selected)" in status.stdout
    record = json.loads(devctl("local", "status", "-o", "json").stdout)
    assert record["running"] is True and record["url"].startswith("https://127.0.0.1:")

    # Every other command (and kubectl) now works against it, through the selected context.
    created = devctl("create", "hello", "--flavor", "cpu-small", "--wait", "--timeout", "2m")
    assert created.exit_code == 0, str(created)
    said = devctl("shell", "hello", "--", "echo", "hi")
    assert said.exit_code == 0 and said.stdout == "hi\n", str(said)
    flavors = subprocess.run([KUBECTL, "get", "devserverflavors", "-o", "name"], capture_output=True,
                             text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=60)
    assert "devserverflavor.devservers.io/cpu-large" in flavors.stdout.splitlines()

    down = devctl("local", "down")
    assert down.exit_code == 0, str(down)
    assert f"Context 'devservers-local' removed from {kubeconfig}; current context: previous." in down.stdout
    assert current_context(kubeconfig) == "previous"
    document = yaml.safe_load(kubeconfig.read_text())
    assert [c["name"] for c in document["contexts"]] == ["previous"]
    assert [c["name"] for c in document["clusters"]] == ["elsewhere"]
    assert [u["name"] for u in document["users"]] == ["me"]
    wait_for(lambda: gone(record["cluster_pid"]) and gone(record["operator_pid"]), timeout=60,
             message="both processes gone")
    assert (state / "cluster" / "objects.json").is_file() and (state / "cluster.log").is_file()
    assert "Its objects and volumes are kept in" in down.stdout

    twice = devctl("local", "down")
    assert twice.exit_code == 0 and "not running" in twice.stdout
    assert devctl("local", "status").exit_code == 3


def test_up_repairs_a_kubeconfig_that_is_no_kubeconfig_even_when_already_running(
    local_env: tuple[Path, Path],
) -> None:
    """Issue 14: a plain-text kubeconfig made `local up` report "already running" and leave it broken."""
    state, kubeconfig = local_env
    kubeconfig.write_text("remember to ask Bob for the cluster\n")
    devctl = make_devctl("process", str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))

    up = devctl("local", "up")
    assert up.exit_code == 0, str(up)
    [aside] = kubeconfig.parent.glob("config.broken-*")
    assert f"The kubeconfig {kubeconfig} is not a kubeconfig: it holds plain text" in up.stdout, str(up)
    assert f"Moved it to {aside} and wrote a new {kubeconfig}" in up.stdout, str(up)
    assert aside.read_text() == "remember to ask Bob for the cluster\n"  # moved aside, never lost
    assert current_context(kubeconfig) == "devservers-local"

    kubeconfig.write_bytes(bytes(range(256)))  # broken again behind the running cluster's back
    again = devctl("local", "up")
    assert again.exit_code == 0 and "already running" in again.stdout, str(again)
    assert f"The kubeconfig {kubeconfig} is not text (it holds binary data)" in again.stdout, str(again)
    assert len(list(kubeconfig.parent.glob("config.broken-*"))) == 2
    assert current_context(kubeconfig) == "devservers-local"
    assert devctl("flavors").exit_code == 0


def test_up_in_process_into_a_new_kubeconfig_and_recovery_after_a_crash(local_env: tuple[Path, Path]) -> None:
    state, kubeconfig = local_env
    devctl: Devctl = make_devctl("runner", None, DEVSERVERS_STATE_DIR=str(state))

    up = devctl("local", "up", "--kubeconfig", str(kubeconfig), "--node-capacity", "example.com/widget=3")
    assert up.exit_code == 0, str(up)
    assert f"Context 'devservers-local' added to {kubeconfig} and selected." in up.stdout
    assert current_context(kubeconfig) == "devservers-local"
    node = subprocess.run([KUBECTL, "get", "nodes", "-o", "json"], capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=60)
    capacity = json.loads(node.stdout)["items"][0]["status"]["capacity"]
    assert capacity["example.com/widget"] == "3" and capacity["cpu"] == "64"

    record = json.loads(devctl("local", "status", "-o", "json").stdout)
    os.kill(record["cluster_pid"], signal.SIGKILL)  # the cluster dies behind devctl's back
    wait_for(lambda: gone(record["cluster_pid"]), timeout=60, message="the cluster process gone")
    broken = devctl("local", "status")
    assert broken.exit_code == 3 and f"not running (pid {record['cluster_pid']} gone)" in broken.stdout

    again = devctl("local", "up", "--kubeconfig", str(kubeconfig))
    assert again.exit_code == 0 and "Cleaning up a local cluster that is no longer complete" in again.stdout
    assert json.loads(devctl("local", "status", "-o", "json").stdout)["running"] is True

    down = devctl("local", "down")
    assert down.exit_code == 0 and "no context is selected now" in down.stdout, str(down)
    assert "current-context" not in yaml.safe_load(kubeconfig.read_text())
    usage = devctl("local", "up", "--node-capacity", "cpu")
    assert usage.exit_code == 2 and "expected KEY=VALUE such as nvidia.com/gpu=2" in usage.stderr, str(usage)


def test_up_that_fails_says_why_and_leaves_nothing_behind(local_env: tuple[Path, Path], tmp_path: Path) -> None:
    state, kubeconfig = local_env
    previous_kubeconfig(kubeconfig)
    before = kubeconfig.read_text()
    broken = tmp_path / "broken" / "devservers_operator"  # an operator that dies at start
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("")
    (broken / "__main__.py").write_text("raise SystemExit('operator: cannot start (test)')\n")
    env = devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    env["PYTHONPATH"] = os.pathsep.join([str(broken.parent), env["PYTHONPATH"]])
    result = subprocess.run([*DEVCTL, "local", "up"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result
    assert "Error: The operator exited with code 1 while starting" in result.stderr
    assert "operator: cannot start (test)" in result.stderr and "Traceback" not in result.stderr
    assert kubeconfig.read_text() == before
    status = subprocess.run([*DEVCTL, "local", "status", "-o", "json"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 3 and json.loads(status.stdout)["cluster_pid"] is None, status
    assert "Local cluster stopped" in result.stdout


def test_up_kubernetes_keeps_every_devserver_and_home_across_down_and_purge_deletes_them(
        local_env: tuple[Path, Path], kubernetes_binaries: Any) -> None:
    state, kubeconfig = local_env
    data = state / "kubernetes"
    devctl = make_devctl("process", str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    version = kubernetes_binaries.kubernetes_version

    up = devctl("local", "up", "--kubernetes")
    assert up.exit_code == 0, str(up)
    assert f"Kubernetes {version} and etcd {kubernetes_binaries.etcd_version} ready in" in up.stdout
    assert f"Starting the Kubernetes control plane and the node, data in {data}" in up.stdout
    assert "operator ready" in up.stdout and f"The local cluster (Kubernetes {version}) is up at" in up.stdout
    record = json.loads(devctl("local", "status", "-o", "json").stdout)
    assert (record["running"], record["control_plane"], record["version"]) == (True, "kubernetes", version)
    shown = devctl("local", "status")
    assert shown.exit_code == 0 and f"Control plane: Kubernetes {version}: etcd and the kube-*" in shown.stdout
    # The server is the real kube-apiserver, not the emulator.
    server = subprocess.run([KUBECTL, "version", "-o", "json"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert json.loads(server.stdout)["serverVersion"]["gitVersion"] == version, server
    other = devctl("local", "up")
    assert other.exit_code == 1 and "already runs the kubernetes control plane" in other.stderr, str(other)

    created = devctl("create", "keep", "--flavor", "cpu-small", "--home-size", "1Gi", "--wait", "--timeout", "3m")
    assert created.exit_code == 0, str(created)
    uid = kubectl_uid(kubeconfig, "devserver/keep")
    assert uid
    marker = secrets.token_hex(8)
    wrote = devctl("shell", "keep", "--", "sh", "-c", f'echo {marker} > "$HOME/marker" && sync')
    assert wrote.exit_code == 0, str(wrote)

    down = devctl("local", "down")
    assert down.exit_code == 0, str(down)
    assert f"The local cluster is down. Its objects and volumes are kept in {data}: `devctl local up " \
           f"--kubernetes` starts it again" in down.stdout
    wait_for(lambda: gone(record["cluster_pid"]) and gone(record["operator_pid"]), timeout=90,
             message="the cluster and the operator gone")
    stopped = devctl("local", "status")
    assert stopped.exit_code == 3 and f"Kept data:     {data}" in stopped.stdout, str(stopped)

    again = devctl("local", "up", "--kubernetes")
    assert again.exit_code == 0, str(again)
    assert f"Starting the Kubernetes control plane and the node again, with the data kept in {data}" in again.stdout
    assert json.loads(devctl("local", "status", "-o", "json").stdout)["url"] == record["url"]  # same port
    waited = devctl("wait", "keep", "--for", "Running", "--timeout", "3m")
    assert waited.exit_code == 0, str(waited)
    assert kubectl_uid(kubeconfig, "devserver/keep") == uid  # the same object, not a new one of that name
    read = devctl("shell", "keep", "--", "sh", "-c", 'cat "$HOME/marker"')
    assert read.exit_code == 0 and read.stdout == f"{marker}\n", str(read)

    # --purge asks first on a terminal: "no" leaves everything running.
    _purge_declined_on_a_terminal(devctl, state, kubeconfig)

    purged = devctl("local", "down", "--purge")  # not a terminal: no question
    assert purged.exit_code == 0, str(purged)
    assert f"The local cluster is down; its state directory {state} is deleted, with every DevServer and home " \
           f"volume (purged)." in purged.stdout
    assert not state.exists()
    assert current_context(kubeconfig) != "devservers-local"


def test_down_then_up_keeps_every_devserver_and_home_of_the_emulator_and_purge_deletes_them(
        local_env: tuple[Path, Path]) -> None:
    """Issue 14: after `down` then `up` every server and home volume was gone, and down only said "down"."""
    state, kubeconfig = local_env
    data = state / "cluster"
    devctl = make_devctl("process", str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    assert devctl("local", "up").exit_code == 0
    created = devctl("create", "keep", "--flavor", "cpu-small", "--wait", "--timeout", "2m")  # the default home
    assert created.exit_code == 0, str(created)
    uid = kubectl_uid(kubeconfig, "devserver/keep")
    marker = secrets.token_hex(8)
    wrote = devctl("shell", "keep", "--", "sh", "-c", f'echo {marker} > "$HOME/marker"')
    assert wrote.exit_code == 0, str(wrote)
    record = json.loads(devctl("local", "status", "-o", "json").stdout)

    down = devctl("local", "down")
    assert down.exit_code == 0, str(down)
    assert f"The local cluster is down. Its objects and volumes are kept in {data}: `devctl local up` starts it " \
           f"again with every DevServer and home volume; `devctl local down --purge` deletes them." in down.stdout
    wait_for(lambda: gone(record["cluster_pid"]) and gone(record["operator_pid"]), timeout=60,
             message="the cluster and the operator gone")
    stopped = devctl("local", "status")
    assert stopped.exit_code == 3 and f"Kept data:     {data} (`devctl local up` starts" in stopped.stdout, str(stopped)

    again = devctl("local", "up")
    assert again.exit_code == 0, str(again)
    assert f"Starting the local cluster again, with the objects and volumes kept in {data}" in again.stdout
    waited = devctl("wait", "keep", "--for", "Running", "--timeout", "2m")
    assert waited.exit_code == 0, str(waited)
    assert kubectl_uid(kubeconfig, "devserver/keep") == uid  # the same object, not a new one of that name
    read = devctl("shell", "keep", "--", "sh", "-c", 'cat "$HOME/marker"')
    assert read.exit_code == 0 and read.stdout == f"{marker}\n", str(read)

    _purge_declined_on_a_terminal(devctl, state, kubeconfig)

    purged = devctl("local", "down", "--purge", "--yes")
    assert purged.exit_code == 0 and "(purged)" in purged.stdout, str(purged)
    assert not state.exists()
    fresh = devctl("local", "up")
    assert fresh.exit_code == 0 and "again" not in fresh.stdout.split("\n")[0], str(fresh)
    assert devctl("list", "-o", "name").stdout == ""


def test_up_kubernetes_without_go_and_binaries_says_what_to_install_and_starts_nothing(
        local_env: tuple[Path, Path], tmp_path: Path) -> None:
    state, kubeconfig = local_env
    env = devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state), PATH="/usr/bin:/bin",
                     DEVSERVERS_CONTROL_PLANE_CACHE=str(tmp_path / "empty-cache"))
    result = subprocess.run([*DEVCTL, "local", "up", "--kubernetes"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result
    assert "Error: The Kubernetes control plane could not be built: Go is not installed" in result.stderr
    assert "install it" in result.stderr and "Traceback" not in result.stderr
    assert not kubeconfig.exists() and not (state / "kubernetes").exists()
    status = subprocess.run([*DEVCTL, "local", "status", "-o", "json"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 3 and json.loads(status.stdout)["cluster_pid"] is None, status


def _purge_declined_on_a_terminal(devctl: Any, state: Path, kubeconfig: Path) -> None:
    """`local down --purge` on a terminal asks first; answering no exits 1 and leaves the cluster running."""
    env = devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    child = pexpect.spawn(DEVCTL[0], [*DEVCTL[1:], "local", "down", "--purge"], env=env, encoding="utf-8",
                          timeout=120)
    child.expect(rf"Delete {state} for good, with every DevServer and home volume .*\? \[y/N\]: ")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "Aborted!" in (child.before or "")
    assert json.loads(devctl("local", "status", "-o", "json").stdout)["running"] is True
