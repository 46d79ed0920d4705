"""Our node agent as the node of a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler v1.37.2, built from Go modules).

Everything goes through the real API server: it schedules, runs the StatefulSet and volume binding
controllers, authorizes the node with the Node authorizer and NodeRestriction, and proxies exec, attach,
logs and port-forward to the agent's kubelet API. The clients are the real ones: kubectl and the official
Python client.

Tests that stop the node or the control plane get a cluster of their own (``own_cluster``); the rest share
one per module.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster import LocalCluster
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace, wait_for

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
PY = sys.executable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(kubernetes_binaries: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state = tmp_path_factory.mktemp("real-cluster")
    with LocalCluster(state_dir=state, control_plane="kubernetes", users=[("nobody", [])]) as cluster:
        yield cluster


@pytest.fixture
def own_cluster(kubernetes_binaries: Any, tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(state_dir=tmp_path / "cluster", control_plane="kubernetes") as cluster:
        yield cluster


def kubectl(cluster: LocalCluster, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, *args], capture_output=True, text=True,
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def get(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(cluster, "get", *args, "-o", "json").stdout))


def pod_phase(cluster: LocalCluster, namespace: str, name: str) -> str:
    result = kubectl(cluster, "-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout if result.returncode == 0 else ""


def running(cluster: LocalCluster, namespace: str, name: str) -> Callable[[], bool]:
    return lambda: pod_phase(cluster, namespace, name) == "Running" and kubectl(
        cluster, "-n", namespace, "get", "pod", name, "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout == "True"


def run_pod(cluster: LocalCluster, namespace: str, name: str, script: str, **spec: Any) -> None:
    """``script`` gets ``$POD_IP`` (the downward API) to bind its servers to: pods share this machine's network, and a
    server on 0.0.0.0 answers on every other pod's IP too, another copy of the suite's included."""
    pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script], "env": [pod_ip]}
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container], **spec},
    }
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(manifest))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ns(real: LocalCluster, request: pytest.FixtureRequest) -> str:
    return create_test_namespace(real.kubeconfig, f"node-{request.node.name}")


def test_the_node_registers_ready_with_the_real_version(real: LocalCluster) -> None:
    node = get(real, "node", "localcluster")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    lease = get(real, "-n", "kube-node-lease", "lease", "localcluster")
    assert lease["spec"]["holderIdentity"] == "localcluster"
    assert "v1.37.2" in kubectl(real, "version", "-o", "json").stdout
    assert kubectl(real, "get", "--raw", "/readyz").stdout.strip() == "ok"


def test_a_pod_runs_and_its_logs_stream(real: LocalCluster, ns: str) -> None:
    run_pod(real, ns, "talker", "for i in 1 2 3; do echo line $i; sleep 1; done; echo done; sleep 3600")
    wait_for(running(real, ns, "talker"), timeout=60, message="the pod Running and Ready")
    follow = subprocess.Popen([KUBECTL, "--kubeconfig", real.kubeconfig, "-n", ns, "logs", "-f", "talker"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        lines = [follow.stdout.readline().strip() for _ in range(4)]
        assert lines == ["line 1", "line 2", "line 3", "done"]
    finally:
        follow.kill()
        follow.wait()
    assert kubectl(real, "-n", ns, "logs", "talker", "--tail", "1").stdout == "done\n"
    events = get(real, "-n", ns, "events", "--field-selector", "involvedObject.name=talker")["items"]
    reasons = {e["reason"] for e in events}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons, reasons


def test_exec_with_a_tty_and_resize(real: LocalCluster, ns: str) -> None:
    pexpect = pytest.importorskip("pexpect")
    run_pod(real, ns, "box", "sleep 3600")
    wait_for(running(real, ns, "box"), timeout=60, message="the pod Running")
    child = pexpect.spawn(KUBECTL, ["--kubeconfig", real.kubeconfig, "-n", ns, "exec", "-it", "box", "--", "sh"],
                          encoding="utf-8", timeout=60, dimensions=(30, 100))
    try:
        child.expect(r"[#$] ")
        child.sendline("stty size; tty")
        child.expect(r"30 100")
        child.expect(r"/dev/pts/\d+")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect(r"40 120")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 7
    plain = kubectl(real, "-n", ns, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (plain.returncode, plain.stdout) == (3, "out\n")
    assert "err" in plain.stderr
    assert kubectl(real, "-n", ns, "exec", "-i", "box", "--", "cat", input="through stdin\n").stdout == (
        "through stdin\n")


def test_port_forward_to_a_web_server_in_a_pod(real: LocalCluster, ns: str) -> None:
    # Pods share the machine's network: a fixed 8080 was taken by another session's operator (its health
    # port) when a second copy of the suite ran beside this one.
    pod_port = free_port()
    run_pod(real, ns, "web", f"cd /tmp && echo served > index.html && exec {PY} -m http.server --bind $POD_IP {pod_port}")
    wait_for(running(real, ns, "web"), timeout=60, message="the web pod Running")
    port = free_port()
    forward = subprocess.Popen([KUBECTL, "--kubeconfig", real.kubeconfig, "-n", ns, "port-forward", "pod/web",
                                f"{port}:{pod_port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None
        assert "Forwarding from 127.0.0.1" in forward.stdout.readline()

        def fetch() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
                    return str(response.read().decode())
            except OSError:
                return ""

        assert wait_for(fetch, timeout=60, message="the page through the forward") == "served\n"
        # Several connections at once, each its own stream pair through the API server and the kubelet.
        answers = [fetch() for _ in range(5)]
        assert answers == ["served\n"] * 5
    finally:
        forward.terminate()
        forward.wait(10)


def test_kubectl_cp_both_ways(real: LocalCluster, ns: str, tmp_path: Path) -> None:
    run_pod(real, ns, "files", "sleep 3600")
    wait_for(running(real, ns, "files"), timeout=60, message="the pod Running")
    source = tmp_path / "payload.txt"
    source.write_text("payload from the host\n")
    kubectl(real, "-n", ns, "cp", str(source), "files:/tmp/payload.txt")
    assert kubectl(real, "-n", ns, "exec", "files", "--", "cat", "/tmp/payload.txt").stdout == (
        "payload from the host\n")
    kubectl(real, "-n", ns, "exec", "files", "--", "sh", "-c", "echo made in the pod > /tmp/back.txt")
    kubectl(real, "-n", ns, "cp", "files:/tmp/back.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "made in the pod\n"


def test_the_python_client_execs_and_port_forwards(real: LocalCluster, ns: str) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward, stream

    run_pod(real, ns, "pyclient", f"cd /tmp && echo via-python > index.html && exec {PY} -m http.server --bind $POD_IP 8081")
    wait_for(running(real, ns, "pyclient"), timeout=60, message="the pod Running")
    api = client.CoreV1Api(config.new_client_from_config(real.kubeconfig))
    try:
        out = stream(api.connect_get_namespaced_pod_exec, "pyclient", ns,
                     command=["sh", "-c", "echo from-exec $((6*7))"], stderr=True, stdin=False, stdout=True,
                     tty=False)
        assert out == "from-exec 42\n"

        def fetch_once() -> bytes:
            forward = portforward(api.connect_get_namespaced_pod_portforward, "pyclient", ns, ports="8081")
            sock = forward.socket(8081)
            sock.setblocking(True)
            sock.settimeout(10)
            sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            sock.close()
            forward.close()
            return data

        data = wait_for(lambda: (lambda d: d if b"via-python" in d else b"")(fetch_once()), timeout=60,
                        message="the page through the Python client's port-forward")
        assert data.startswith(b"HTTP/1.0 200")
    finally:
        api.api_client.close()


def test_statefulset_claims_bind_and_data_survive_pod_deletion_and_restart(own_cluster: LocalCluster) -> None:
    cluster = own_cluster
    manifests = textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: db, namespace: default}
        spec: {clusterIP: None, selector: {app: db}, ports: [{port: 80}]}
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db, namespace: default}
        spec:
          serviceName: db
          replicas: 2
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "echo boot-$(hostname) >> /data/boots; exec sleep 3600"]
                volumeMounts: [{name: data, mountPath: /data}]
          volumeClaimTemplates:
          - metadata: {name: data}
            spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
    """)
    kubectl(cluster, "apply", "-f", "-", input=manifests)
    for rank in (0, 1):
        wait_for(running(cluster, "default", f"db-{rank}"), timeout=120, message=f"db-{rank} Running")
    claims = get(cluster, "-n", "default", "pvc")["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    volumes = {v["spec"]["claimRef"]["name"]: v for v in get(cluster, "pv")["items"]}
    directory = Path(volumes["data-db-0"]["spec"]["hostPath"]["path"])
    assert directory.is_dir() and cluster.state_dir in directory.parents
    # Names resolve for any program in a pod, through the node's hosts file.
    resolved = kubectl(cluster, "-n", "default", "exec", "db-1", "--", "getent", "hosts",
                       "db-0.db.default.svc.cluster.local")
    assert "db-0" in resolved.stdout

    def boots() -> list[str]:
        result = kubectl(cluster, "-n", "default", "exec", "db-0", "--", "cat", "/data/boots", check=False)
        return result.stdout.split() if result.returncode == 0 else []

    assert boots() == ["boot-db-0"]
    old_uid = get(cluster, "-n", "default", "pod", "db-0")["metadata"]["uid"]
    kubectl(cluster, "-n", "default", "delete", "pod", "db-0", "--wait=true")
    wait_for(lambda: get(cluster, "-n", "default", "pod", "db-0")["metadata"]["uid"] != old_uid
             if pod_phase(cluster, "default", "db-0") else False, timeout=60, message="a new db-0")
    wait_for(running(cluster, "default", "db-0"), timeout=120, message="the new db-0 Running")
    assert wait_for(lambda: boots() == ["boot-db-0", "boot-db-0"], timeout=60,
                    message="the second boot appended to the same volume")

    # Stop everything (node and control plane), start it again on the same state: objects and data are kept.
    assert cluster.real is not None
    cluster.real.stop()
    cluster.real.control_plane.start()
    cluster.real.start_node()
    for rank in (0, 1):
        wait_for(running(cluster, "default", f"db-{rank}"), timeout=180, message=f"db-{rank} Running again")
    assert wait_for(lambda: boots()[:2] == ["boot-db-0", "boot-db-0"] and len(boots()) >= 3, timeout=60,
                    message="the data written before the restart, plus a boot after it")

    # Deleting the claim (reclaim policy Delete) deletes the volume and its directory.
    kubectl(cluster, "-n", "default", "delete", "statefulset", "db", "--wait=true")
    kubectl(cluster, "-n", "default", "delete", "pvc", "data-db-0", "--wait=true", timeout=120)
    wait_for(lambda: not directory.exists(), timeout=60, message=f"{directory} removed with its claim")


def test_a_drained_node_evicts_its_pods_and_uncordon_brings_them_back(own_cluster: LocalCluster) -> None:
    cluster = own_cluster
    kubectl(cluster, "create", "deployment", "worker", "--image=busybox", "--", "sleep", "3600")
    wait_for(lambda: get(cluster, "deployment", "worker").get("status", {}).get("readyReplicas") == 1,
             timeout=120, message="the deployment's pod Ready")
    first = get(cluster, "pods", "-l", "app=worker")["items"][0]["metadata"]["name"]
    kubectl(cluster, "drain", "localcluster", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s",
            timeout=180)
    node = get(cluster, "node", "localcluster")
    assert node["spec"].get("unschedulable") is True
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in node["spec"].get("taints") or [])

    def replacement_pending() -> bool:
        pods = get(cluster, "pods", "-l", "app=worker")["items"]
        names = [p["metadata"]["name"] for p in pods]
        return first not in names and any(p["status"].get("phase") == "Pending" for p in pods)

    wait_for(replacement_pending, timeout=120, message="the evicted pod gone and its replacement Pending")
    kubectl(cluster, "uncordon", "localcluster")
    wait_for(lambda: get(cluster, "deployment", "worker").get("status", {}).get("readyReplicas") == 1,
             timeout=120, message="the replacement Ready after uncordon")


def test_a_killed_agent_makes_the_node_not_ready_and_a_restart_brings_it_back(own_cluster: LocalCluster) -> None:
    cluster = own_cluster
    assert cluster.real is not None

    def ready_status() -> str:
        node = get(cluster, "node", "localcluster")
        return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")

    assert ready_status() == "True"
    cluster.real.stop_node(kill=True)
    # node-monitor-grace-period is 50 s in 1.37; the node lifecycle controller then marks it Unknown.
    wait_for(lambda: ready_status() == "Unknown", timeout=180, interval=1,
             message="the Ready condition Unknown after the kubelet stopped posting")
    taints = {t["key"] for t in get(cluster, "node", "localcluster")["spec"].get("taints") or []}
    assert "node.kubernetes.io/unreachable" in taints
    cluster.real.start_node()
    wait_for(lambda: ready_status() == "True", timeout=120, message="the node Ready again")
    wait_for(lambda: not any(t["key"] == "node.kubernetes.io/unreachable"
                             for t in get(cluster, "node", "localcluster")["spec"].get("taints") or []),
             timeout=120, message="the unreachable taint removed")


def test_a_user_without_rights_is_refused(real: LocalCluster, tmp_path: Path) -> None:
    nobody = real.user_kubeconfig("nobody", path=tmp_path / "nobody.kubeconfig")
    result = subprocess.run([KUBECTL, "--kubeconfig", nobody, "get", "pods", "-n", "default"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert 'User "nobody" cannot list resource "pods"' in result.stderr
    whoami = subprocess.run([KUBECTL, "--kubeconfig", nobody, "auth", "whoami", "-o", "json"], capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "nobody"


def test_the_node_cannot_read_what_its_pods_do_not_use(real: LocalCluster, ns: str, tmp_path: Path) -> None:
    """The agent's identity is a node's: the Node authorizer lets it read only its own pods' objects."""
    kubectl(real, "-n", ns, "create", "secret", "generic", "unused", "--from-literal=k=v")
    node = real.user_kubeconfig("system:node:localcluster", ["system:nodes"], path=tmp_path / "node.kubeconfig")
    result = subprocess.run([KUBECTL, "--kubeconfig", node, "-n", ns, "get", "secret", "unused"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no relationship found between node 'localcluster' and this object" in result.stderr
    listing = subprocess.run([KUBECTL, "--kubeconfig", node, "get", "pods", "-A"], capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 1
    assert "can only list/watch pods with spec.nodeName field selector" in listing.stderr


def test_two_nodes_share_names_and_a_drain_moves_a_pod(kubernetes_binaries: Any, tmp_path: Path) -> None:
    with LocalCluster(state_dir=tmp_path / "cluster", control_plane="kubernetes", nodes=2) as cluster:
        nodes = get(cluster, "nodes")["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["localcluster", "localcluster-2"]
        cidrs = {n["spec"]["podCIDR"] for n in nodes}
        assert len(cidrs) == 2, cidrs
        for name, node in (("a", "localcluster"), ("b", "localcluster-2")):
            run_pod(cluster, "default", name, "sleep 3600", nodeName=node, hostname=name, subdomain="pair")
        kubectl(cluster, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "pair", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"pair": "yes"}, "ports": [{"port": 80}]}}))
        for name in ("a", "b"):
            wait_for(running(cluster, "default", name), timeout=120, message=f"pod {name} Running")
        ip_b = get(cluster, "pod", "b")["status"]["podIP"]
        # A pod on one node resolves a pod on the other by name: each node's hosts file knows every pod.
        resolved = wait_for(lambda: kubectl(cluster, "exec", "a", "--", "getent", "hosts", ip_b,
                                            check=False).stdout, timeout=60, message="b's address from a")
        assert ip_b in resolved

        kubectl(cluster, "create", "deployment", "mover", "--image=busybox", "--", "sleep", "3600")
        wait_for(lambda: get(cluster, "deployment", "mover").get("status", {}).get("readyReplicas") == 1,
                 timeout=120, message="the deployment's pod Ready")
        first = get(cluster, "pods", "-l", "app=mover")["items"][0]
        source = first["spec"]["nodeName"]
        target = "localcluster-2" if source == "localcluster" else "localcluster"
        kubectl(cluster, "drain", source, "--ignore-daemonsets", "--force", "--timeout=120s", timeout=180)

        def moved() -> bool:
            pods = get(cluster, "pods", "-l", "app=mover")["items"]
            return any(p["spec"].get("nodeName") == target and p["status"].get("phase") == "Running"
                       and p["metadata"]["name"] != first["metadata"]["name"] for p in pods)

        wait_for(moved, timeout=120, message=f"the deployment's pod Running on {target} after draining {source}")


def test_nothing_outlives_a_killed_parent(kubernetes_binaries: Any, tmp_path: Path) -> None:
    """SIGKILL the process that runs the control plane and the node: no etcd, kube-*, agent or pod survives."""
    state = tmp_path / "cluster"
    marker = f"orphan-marker-{tmp_path.name}"
    script = textwrap.dedent(f"""
        import json, subprocess, sys, time
        from pathlib import Path
        from devservers_sdk.localcluster import LocalCluster
        cluster = LocalCluster(state_dir=Path({str(state)!r}), control_plane="kubernetes").start()
        kubectl = [{KUBECTL!r}, "--kubeconfig", cluster.kubeconfig]
        pod = {{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "sleeper"}},
               "spec": {{"containers": [{{"name": "main", "image": "busybox",
                                         "command": ["sh", "-c", "sleep 3600", "{marker}"]}}]}}}}
        subprocess.run(kubectl + ["apply", "-f", "-"], input=json.dumps(pod), text=True, check=True,
                       capture_output=True)
        while subprocess.run(kubectl + ["get", "pod", "sleeper", "-o", "jsonpath={{.status.phase}}"],
                             capture_output=True, text=True).stdout != "Running":
            time.sleep(0.2)
        print("running", flush=True)
        time.sleep(3600)
    """)
    parent = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])

    def survivors() -> list[str]:
        listing = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
        return [line for line in listing.splitlines() if str(state) in line or marker in line]

    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "running"
        assert any("kube-apiserver" in line for line in survivors()), survivors()
        wait_for(lambda: any(marker in line for line in survivors()), timeout=60, message="the pod's process")
    finally:
        parent.kill()
        parent.wait(30)
    assert wait_for(lambda: not survivors(), timeout=60, message="every child gone") is True
