"""exec, attach, logs and port-forward as the API server proxies them to the node's kubelet API.

Runs on both control planes (``DEVSERVERS_TEST_BACKEND=kubernetes`` for the real one): the emulator must answer
what kube-apiserver answers, with the real clients (kubectl over WebSockets and over SPDY, the Python client).
On the emulator the in-process kubelet API counts the sessions it serves, which shows what the API server
passed on; on the real control plane, two extra nodes (one declaring ``ExtendWebSocketsToKubelet``, one not)
show that kube-apiserver passes v5 WebSockets to a node that declares the feature and translates them into
SPDY for one that does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_support import RawHTTPS, RawResponse
from kubernetes import client, config
from kubernetes.stream import portforward, stream

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_for

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
PY = sys.executable
WEB = f'cd /tmp && echo served-by-$HOSTNAME > index.html && exec {PY} -m http.server "$PORT" --bind "$POD_IP"'


@pytest.fixture(scope="module")
def core(kubeconfig: str) -> Iterator[client.CoreV1Api]:
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    yield api
    api.api_client.close()


def kubectl(kubeconfig: str, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                          timeout=timeout, input=input, env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_pod(core: client.CoreV1Api, namespace: str, name: str, script: str, *, port: int | None = None,
            node: str | None = None, restart_policy: str = "Always") -> None:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    if port is not None:
        env.append({"name": "PORT", "value": str(port)})
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["sh", "-c", script], "env": env}
    if port is not None:
        # Ready once it listens: kubectl port-forward gives up for good on a connection the pod refuses.
        container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    if node is not None:
        spec["nodeName"] = node
    core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})


def wait_running(core: client.CoreV1Api, namespace: str, name: str) -> None:
    def running() -> bool:
        status = core.read_namespaced_pod(name, namespace).status
        return status.phase == "Running" and all(c.ready for c in status.container_statuses or [])

    wait_for(running, timeout=90, message=f"pod {name} Running")


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def python_port_forward(core: client.CoreV1Api, namespace: str, pod: str, port: int) -> bytes:
    forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    try:
        sock = forward.socket(port)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()
        return data
    finally:
        forward.close()


def kubectl_port_forward(kubeconfig: str, namespace: str, pod: str, port: int, *,
                         websockets: bool = True) -> list[str]:
    """Five pages through ``kubectl port-forward`` (each connection its own stream pair)."""
    local = free_port()
    env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    forward = subprocess.Popen([KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "port-forward",
                                f"pod/{pod}", f"{local}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        assert "Forwarding from 127.0.0.1" in line, (line, forward.stderr.read() if forward.poll() is not None
                                                     else "")
        url = f"http://127.0.0.1:{local}/index.html"
        first = wait_for(lambda: fetch(url), timeout=60, message="a page through kubectl port-forward")
        return [first] + [fetch(url) for _ in range(4)]
    finally:
        forward.terminate()
        forward.wait(10)


# -- both control planes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_to_a_web_server(kubeconfig: str, core: client.CoreV1Api, namespace: str,
                                              websockets: bool) -> None:
    port = free_port()
    run_pod(core, namespace, "web", WEB, port=port)
    wait_running(core, namespace, "web")
    assert kubectl_port_forward(kubeconfig, namespace, "web", port, websockets=websockets) == ["served-by-web\n"] * 5


def test_python_client_port_forward(core: client.CoreV1Api, namespace: str) -> None:
    port = free_port()
    run_pod(core, namespace, "web", WEB, port=port)
    wait_running(core, namespace, "web")
    data = wait_for(lambda: (lambda d: d if b"served-by-web" in d else b"")(
        python_port_forward(core, namespace, "web", port)), timeout=60, message="a page through portforward()")
    assert data.startswith(b"HTTP/1.0 200") and data.endswith(b"\r\n\r\nserved-by-web\n")


def test_port_forward_to_a_closed_port_says_so(core: client.CoreV1Api, namespace: str) -> None:
    run_pod(core, namespace, "idle", "exec sleep 3600")
    wait_running(core, namespace, "idle")
    closed = free_port()
    forward = portforward(core.connect_get_namespaced_pod_portforward, "idle", namespace, ports=str(closed))
    try:
        # The kubelet reports the refused connection on the port's error channel.
        error = wait_for(lambda: forward.error(closed), timeout=60, message="the port's error channel")
        assert f"error forwarding port {closed}" in error and "connection refused" in error
    finally:
        forward.close()


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
def test_kubectl_exec_stdin_output_and_exit_code(kubeconfig: str, core: client.CoreV1Api, namespace: str,
                                                 websockets: bool) -> None:
    run_pod(core, namespace, "box", "exec sleep 3600")
    wait_running(core, namespace, "box")
    env = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if websockets else "false"}
    result = kubectl(kubeconfig, "-n", namespace, "exec", "-i", "box", "--", "sh", "-c",
                     "tr a-z A-Z; echo to-stderr >&2; exit 3", env=env, input="typed text\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "TYPED TEXT\n"
    assert result.stderr.startswith("to-stderr\n")
    assert "command terminated with exit code 3" in result.stderr


def test_python_client_exec(core: client.CoreV1Api, namespace: str) -> None:
    run_pod(core, namespace, "box", "exec sleep 3600")
    wait_running(core, namespace, "box")
    out = stream(core.connect_get_namespaced_pod_exec, "box", namespace, command=["sh", "-c", "echo $((6*7))"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "42\n"


def test_logs_follow_to_the_end_and_with_options(kubeconfig: str, core: client.CoreV1Api,
                                                  namespace: str) -> None:
    run_pod(core, namespace, "talker", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; sleep 2",
            restart_policy="Never")
    result = None

    def followed() -> bool:
        nonlocal result
        result = kubectl(kubeconfig, "-n", namespace, "logs", "-f", "talker")
        return result.returncode == 0 and "line 5" in result.stdout

    wait_for(followed, timeout=90, interval=0.5, message="kubectl logs -f to the container's end")
    assert result is not None and result.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    tail = core.read_namespaced_pod_log("talker", namespace, tail_lines=2, timestamps=True)
    assert [line.split(" ", 1)[1] for line in tail.splitlines()] == ["line 4", "line 5"]
    assert core.read_namespaced_pod_log("talker", namespace, limit_bytes=8) == "line 1\nl"


def refusal(kubeconfig: str, path: str, headers: dict[str, str]) -> tuple[int, RawResponse]:
    response = RawHTTPS(kubeconfig).request("GET", path, headers=headers)
    return response.status, response


def test_refusals_are_the_api_servers_or_the_kubelets(kubeconfig: str, core: client.CoreV1Api,
                                                      namespace: str) -> None:
    run_pod(core, namespace, "box", "exec sleep 3600")
    wait_running(core, namespace, "box")
    base = f"/api/v1/namespaces/{namespace}/pods/box"
    spdy = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
    # The registry checks the container before anything else.
    status, answer = refusal(kubeconfig, f"{base}/exec?command=true&stdout=true&container=nope", spdy)
    assert status == 400 and answer.json["message"] == "container nope is not valid for pod box"
    # Not an upgrade: the proxy does not even dial.
    status, answer = refusal(kubeconfig, f"{base}/exec?command=true&stdout=true", {})
    assert status == 400 and answer.json["message"] == "Upgrade request required"
    # The kubelet's own refusal of the SPDY handshake comes back as it was.
    status, answer = refusal(kubeconfig, f"{base}/exec?command=true&stdout=true",
                             {**spdy, "X-Stream-Protocol-Version": "v9.channel.k8s.io"})
    assert status == 403 and b"unable to negotiate protocol" in answer.body
    assert b"server accepts [v4.channel.k8s.io" in answer.body
    assert answer.header("X-Accepted-Stream-Protocol-Versions")


def node_of(core: client.CoreV1Api, namespace: str, pod: str) -> Any:
    return core.read_node(core.read_namespaced_pod(pod, namespace).spec.node_name)


def test_an_unreachable_kubelet_is_a_500_in_gos_words(kubeconfig: str, core: client.CoreV1Api,
                                                       namespace: str) -> None:
    run_pod(core, namespace, "box", "echo hello; exec sleep 3600")
    wait_running(core, namespace, "box")
    node = node_of(core, namespace, "box")
    real_port = node.status.daemon_endpoints.kubelet_endpoint.port
    closed = free_port()
    core.patch_node_status(node.metadata.name, {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": closed}}}})
    try:
        base = f"/api/v1/namespaces/{namespace}/pods/box"
        dial = f"dial tcp 127.0.0.1:{closed}: connect: connection refused"
        spdy = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}

        def exec_refused() -> RawResponse | None:
            status, answer = refusal(kubeconfig, f"{base}/exec?command=true&stdout=true", spdy)
            return answer if status == 500 else None

        answer = wait_for(exec_refused, timeout=60, message="the API server to dial the closed port").json
        assert answer["message"] == f"error dialing backend: {dial}" and "reason" not in answer
        status, response = refusal(kubeconfig, f"{base}/log", {})
        assert status == 500
        message = response.json["message"]
        assert message == f'Get "https://127.0.0.1:{closed}/containerLogs/{namespace}/box/main": {dial}'
        status, response = refusal(kubeconfig, f"{base}/log?tailLines=3&timestamps=1&follow=true", {})
        assert status == 500 and response.json["message"] == (
            f'Get "https://127.0.0.1:{closed}/containerLogs/{namespace}/box/main?follow=true&tailLines=3&'
            f'timestamps=true": {dial}')
    finally:
        core.patch_node_status(node.metadata.name,
                               {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": real_port}}}})
    wait_for(lambda: core.read_namespaced_pod_log("box", namespace) == "hello\n", timeout=60,
             message="logs again once the Node advertises the kubelet's port")


# -- the emulator: what its API server passes on ---------------------------------------------------------


@pytest.mark.emulator_only
def test_the_emulator_passes_each_protocol_to_the_kubelet_as_it_came(cluster: ClusterHandle, kubeconfig: str,
                                                                       core: client.CoreV1Api,
                                                                       namespace: str) -> None:
    runtime = cluster.require_emulator().runtime
    assert runtime is not None
    sessions = runtime.kubelet_api.sessions
    assert core.read_node("localcluster").status.declared_features == ["ExtendWebSocketsToKubelet"]
    port = free_port()
    run_pod(core, namespace, "web", WEB, port=port)
    wait_running(core, namespace, "web")

    def grows(key: str, action: Callable[[], Any]) -> None:
        before = sessions[key]
        action()
        assert sessions[key] > before, (key, dict(sessions))

    grows("exec websocket v5.channel.k8s.io", lambda: kubectl(kubeconfig, "-n", namespace, "exec", "web", "--", "true"))
    grows("exec spdy v4.channel.k8s.io", lambda: kubectl(kubeconfig, "-n", namespace, "exec", "web", "--", "true",
                                                        env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}))
    grows("portforward websocket SPDY/3.1+portforward.k8s.io",
          lambda: kubectl_port_forward(kubeconfig, namespace, "web", port))
    grows("portforward spdy portforward.k8s.io",
          lambda: kubectl_port_forward(kubeconfig, namespace, "web", port, websockets=False))
    grows("portforward websocket v4.channel.k8s.io", lambda: python_port_forward(core, namespace, "web", port))


# -- the real control plane: nodes that declare ExtendWebSocketsToKubelet and nodes that do not -------------


class InProcessNode:
    """A node agent on its own event loop in this process, so a test can read its kubelet API's counters."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"node-{agent.config.node_name}",
                                       daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    @property
    def sessions(self) -> dict[str, int]:
        return dict(self.agent.kubelet_api.sessions)

    def stop(self) -> None:
        try:
            self.call(self.agent.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)


@pytest.fixture(scope="module")
def extra_nodes(cluster: ClusterHandle, core: client.CoreV1Api,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, InProcessNode]]:
    local = cluster.local
    if local is None or local.real is None:
        pytest.skip("needs the real control plane (DEVSERVERS_TEST_BACKEND=kubernetes)")
    from devservers_sdk.localcluster.node.agent import NodeAgent, NodeAgentConfig

    control_plane = local.real.control_plane
    taken = {n.spec.pod_cidr for n in core.list_node().items}
    cidrs = iter(c for c in (f"127.{octet}.0.0/16" for octet in range(254, 2, -1)) if c not in taken)
    nodes: dict[str, InProcessNode] = {}
    try:
        for name, declared in (("declares-websockets", None), ("declares-nothing", ())):
            directory = tmp_path_factory.mktemp(name)
            serving = control_plane.pki.kubelet_serving_certificate(name)
            config_ = NodeAgentConfig(
                kubeconfig=control_plane.kubeconfig_for(f"system:node:{name}", ("system:nodes",), name=f"node-{name}"),
                state_dir=directory, node_name=name, serving_cert=serving.cert, serving_key=serving.key,
                client_ca=control_plane.ca_file, pod_cidr=next(cidrs), declared_features=declared,
            )
            node = InProcessNode(NodeAgent(config_))
            nodes[name] = node
            node.call(node.agent.start())
        yield nodes
    finally:
        for name, node in nodes.items():
            node.stop()
            with contextlib.suppress(client.exceptions.ApiException):
                core.delete_node(name)


def test_a_node_declares_extend_websockets_to_kubelet_unless_told_not_to(
        core: client.CoreV1Api, extra_nodes: dict[str, InProcessNode]) -> None:
    assert core.read_node("declares-websockets").status.declared_features == ["ExtendWebSocketsToKubelet"]
    assert not core.read_node("declares-nothing").status.declared_features
    # The agents the cluster itself runs declare it too: a real 1.37 kubelet does by default.
    assert core.read_node("localcluster").status.declared_features == ["ExtendWebSocketsToKubelet"]


@pytest.mark.parametrize("node_name", ["declares-websockets", "declares-nothing"])
def test_the_real_api_server_passes_v5_websockets_only_to_a_node_that_declares_it(
        kubeconfig: str, core: client.CoreV1Api, namespace: str, extra_nodes: dict[str, InProcessNode],
        node_name: str) -> None:
    node = extra_nodes[node_name]
    declares = node_name == "declares-websockets"
    port = free_port()
    run_pod(core, namespace, "web", WEB, port=port, node=node_name)
    wait_running(core, namespace, "web")

    before = node.sessions
    result = kubectl(kubeconfig, "-n", namespace, "exec", "web", "--", "sh", "-c", "echo $((6*7)); exit 2")
    assert (result.returncode, result.stdout) == (2, "42\n"), result.stderr
    assert kubectl_port_forward(kubeconfig, namespace, "web", port) == ["served-by-web\n"] * 5
    after = node.sessions
    grew = {key for key in after if after[key] > before.get(key, 0)}
    if declares:
        assert grew == {"exec websocket v5.channel.k8s.io", "portforward websocket SPDY/3.1+portforward.k8s.io"}
    else:
        # Translated at the API server: v5 exec into SPDY, the tunnelled port-forward unwrapped to SPDY.
        assert grew == {"exec spdy v4.channel.k8s.io", "portforward spdy portforward.k8s.io"}
