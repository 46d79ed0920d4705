"""The kubelet's HTTPS API (``node/kubelet_api.py``), served for the emulator's kubelet and driven the
way a real API server drives it: client-go's own SPDY executor and port-forwarder (a small Go program,
``kubelet_probe/``), our SPDY client, and raw WebSockets for the protocols passed through as they came.

One module-wide namespace holds the pods: ``box`` idles (exec target), ``web`` serves HTTP on its pod IP
(port-forward target), ``logs`` writes known lines then idles, ``talker`` writes a line every 0.2 s.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from kubernetes import client, config

from devservers_sdk.localcluster import LocalCluster, tls
from devservers_sdk.localcluster.node import spdy
from devservers_sdk.localcluster.node.kubelet_api import KubeletAPIServer
from devservers_sdk.localcluster.pytest_plugin import (
    ClusterHandle,
    create_test_namespace,
    delete_test_namespace,
    wait_for,
)

pytestmark = pytest.mark.emulator_only

PY = sys.executable
PROBE_SOURCES = Path(__file__).parent / "kubelet_probe"

WEB_SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""
LOGS = """
import signal, sys
for n in range(1, 6):
    print(f"out {n}", flush=True)
print("err 1", file=sys.stderr, flush=True)
signal.pause()
"""
TALKER = """
import itertools, sys, time
for n in itertools.count():
    print(f"tick {n}", flush=True)
    print(f"tock {n}", file=sys.stderr, flush=True)
    time.sleep(0.2)
"""
# Ticks until something connects to port 9000, then says goodbye and exits.
FINISHER = """
import os, socket, sys, threading, time
server = socket.create_server((os.environ["POD_IP"], 9000))
def tick():
    n = 0
    while True:
        print(f"tick {n}", flush=True)
        n += 1
        time.sleep(0.2)
threading.Thread(target=tick, daemon=True).start()
server.accept()
print("bye", flush=True)
print("bye on stderr", file=sys.stderr, flush=True)
os._exit(0)
"""


# -- the Go probe ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubelet_probe() -> Path:
    """client-go's SPDY clients as a binary, built once per source change (cached in ~/.cache)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed: the client-go interoperability probe cannot be built")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (PROBE_SOURCES / name).read_bytes() + b"\0")
    binary = Path.home() / ".cache" / "devservers" / f"kubelet_probe-{digest.hexdigest()[:16]}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.partial")
        build = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), "."],
            cwd=PROBE_SOURCES,
            env={**os.environ, "CGO_ENABLED": "0"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert build.returncode == 0, f"building the kubelet probe failed:\n{build.stderr}"
        os.replace(partial, binary)
    return binary


def probe(binary: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)


# -- the node ----------------------------------------------------------------------------------------


@dataclass
class Node:
    cluster: LocalCluster
    server: KubeletAPIServer
    namespace: str
    core: Any
    ca: ssl.SSLContext

    @property
    def url(self) -> str:
        return self.server.url

    def path(self, kind: str, pod: str, *rest: str, query: Any = ()) -> str:
        path = "/".join([f"/{kind}", self.namespace, pod, *rest])
        encoded = urlencode(query, doseq=True)
        return f"{path}?{encoded}" if encoded else path

    def pod_ip(self, pod: str) -> str:
        return str(self.core.read_namespaced_pod(pod, self.namespace).status.pod_ip)

    def pod_uid(self, pod: str) -> str:
        return str(self.core.read_namespaced_pod(pod, self.namespace).metadata.uid)

    def run_pod(self, name: str, script: str | None, *, ready_port: int | None = None, **spec: Any) -> None:
        container: dict[str, Any] = {
            "name": "main",
            "image": "busybox",
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        }
        if script is not None:
            container["command"] = [PY, "-u", "-c", script]
        if ready_port is not None:
            container["readinessProbe"] = {"tcpSocket": {"port": ready_port}, "periodSeconds": 1}
        body = {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}
        self.core.create_namespaced_pod(self.namespace, body)

    def wait_ready(self, name: str) -> None:
        def ready() -> bool:
            status = self.core.read_namespaced_pod(name, self.namespace).status
            return status.phase == "Running" and all(c.ready for c in status.container_statuses or [])

        wait_for(ready, timeout=60, message=f"pod {name} Running and ready")


def _on_loop(cluster: LocalCluster, coro: Any) -> Any:
    assert cluster._loop is not None
    return asyncio.run_coroutine_threadsafe(coro, cluster._loop).result(60)


@pytest.fixture(scope="module")
def node(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    local = cluster.require_emulator()
    assert local.runtime is not None and local.runtime.kubelet is not None
    certificate = tls.generate()
    server = KubeletAPIServer(
        local.runtime.kubelet, ssl_context=certificate.server_context(tmp_path_factory.mktemp("kubelet-tls"))
    )
    _on_loop(local, server.start())
    namespace = create_test_namespace(cluster.kubeconfig, "kubelet-api")
    core = client.CoreV1Api(config.new_client_from_config(cluster.kubeconfig))
    ca = ssl.create_default_context(cadata=certificate.ca_pem.decode())
    node = Node(local, server, namespace, core, ca)
    try:
        node.run_pod("box", None)
        node.run_pod("web", WEB_SERVER, ready_port=8080)
        node.run_pod("logs", LOGS)
        node.run_pod("talker", TALKER)
        for name in ("box", "web", "logs", "talker"):
            node.wait_ready(name)
        yield node
    finally:
        delete_test_namespace(cluster.kubeconfig, namespace)
        core.api_client.close()
        _on_loop(local, server.stop())


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def exec_query(
    command: list[str], *, stdin: bool = False, stderr: bool = True, tty: bool = False
) -> list[Any]:
    query: list[Any] = [("command", part) for part in command] + [("output", "1")]
    if stdin:
        query.append(("input", "1"))
    if stderr:
        query.append(("error", "1"))
    if tty:
        query.append(("tty", "1"))
    return query


def test_healthz_over_verified_tls(node: Node) -> None:
    async def get() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{node.url}/healthz", ssl=node.ca) as resp,
        ):
            return resp.status, await resp.text()

    assert run(get()) == (200, "ok")


# -- exec over SPDY, with client-go ---------------------------------------------------------------------


def test_go_spdy_exec_streams_stdin_output_and_the_exit_code(node: Node, kubelet_probe: Path) -> None:
    script = "cat; echo; echo to-stderr >&2; exit 3"
    url = node.url + node.path("exec", "box", "main", query=exec_query(["sh", "-c", script], stdin=True))
    result = probe(kubelet_probe, "exec", url, "-stdin", "typed text")
    # cat saw end of file once the client closed stdin, or the command would never get to exit.
    assert result.returncode == 3, result.stderr
    assert result.stdout == "typed text\n"
    assert result.stderr.startswith("to-stderr\n")
    assert "command terminated with exit code 3" in result.stderr

    ok = probe(kubelet_probe, "exec", node.url + node.path("exec", "box", "main", query=exec_query(["true"])))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


def test_go_spdy_exec_with_a_terminal_follows_resizes(node: Node, kubelet_probe: Path) -> None:
    script = (
        "import os, signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGWINCH])\n"
        "print('size', *os.get_terminal_size(0), flush=True)\n"
        "signal.sigwait([signal.SIGWINCH])\n"
        "print('size', *os.get_terminal_size(0), flush=True)\n"
    )
    query = exec_query([PY, "-c", script], stdin=True, tty=True)
    result = probe(
        kubelet_probe, "exec", node.url + node.path("exec", "box", "main", query=query), "-tty",
        "-resize", "30x100,40x120",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The first size was in place before the command started; the second arrived as a SIGWINCH.
    assert result.stdout.splitlines() == ["size 100 30", "size 120 40"]


def test_go_spdy_exec_of_a_missing_binary_fails_with_the_runtimes_message(
    node: Node, kubelet_probe: Path
) -> None:
    url = node.url + node.path("exec", "box", "main", query=exec_query(["no-such-binary-here"]))
    result = probe(kubelet_probe, "exec", url)
    assert result.returncode != 0
    assert 'exec: "no-such-binary-here": executable file not found in $PATH' in result.stderr


# -- exec over SPDY, with our client (every protocol version) ----------------------------------------


async def spdy_exec(
    node: Node,
    query: list[Any],
    protocol: str,
    *,
    stdin: bytes | None = None,
    sizes: list[tuple[int, int]] = (),  # type: ignore[assignment]
    pod: str = "box",
) -> tuple[bytes, bytes, bytes]:
    """Run an exec like client-go does: error stream first, then one per channel; (stdout, stderr, error)."""
    session, chosen = await spdy.dial(
        "127.0.0.1",
        node.server.port,
        node.path("exec", pod, "main", query=query),
        [protocol],
        ssl_context=node.ca,
    )
    assert chosen == protocol
    kinds = dict(query)
    error = await session.open_stream({"streamType": "error"})
    streams = {}
    if stdin is not None:
        streams["stdin"] = await session.open_stream({"streamType": "stdin"})
    streams["stdout"] = await session.open_stream({"streamType": "stdout"})
    if kinds.get("error") == "1" and kinds.get("tty") != "1":
        streams["stderr"] = await session.open_stream({"streamType": "stderr"})
    if kinds.get("tty") == "1" and protocol in ("v4.channel.k8s.io", "v3.channel.k8s.io"):
        resize = await session.open_stream({"streamType": "resize"})
        for width, height in sizes:
            await resize.write(json.dumps({"Width": width, "Height": height}).encode())
    if stdin is not None:
        await streams["stdin"].write(stdin)
        await streams["stdin"].close()
    stderr_stream = streams.get("stderr")
    out, err, status = await asyncio.gather(
        streams["stdout"].read_all(),
        stderr_stream.read_all() if stderr_stream is not None else asyncio.sleep(0, b""),
        error.read_all(),
    )
    await session.close(grace=5)
    return out, err, status


@pytest.mark.parametrize(
    "protocol", ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
)
def test_spdy_exec_status_per_protocol_version(node: Node, protocol: str) -> None:
    query = exec_query(["sh", "-c", "cat; echo oops >&2; exit 2"], stdin=True)
    out, err, status = run(spdy_exec(node, query, protocol, stdin=b"line\n"))
    assert (out, err) == (b"line\n", b"oops\n")
    message = "command terminated with non-zero exit code: error executing command [sh -c cat; echo oops >&2; exit 2], exit code 2"
    if protocol == "v4.channel.k8s.io":
        assert json.loads(status) == {
            "status": "Failure",
            "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
        }
    else:
        assert status.decode() == message  # older versions: the failure's text only

    out, _, status = run(spdy_exec(node, exec_query(["echo", "fine"]), protocol))
    assert out == b"fine\n"
    assert status == (b'{"status":"Success"}' if protocol == "v4.channel.k8s.io" else b"")


def test_spdy_exec_terminal_size_from_the_resize_stream(node: Node) -> None:
    query = exec_query(["stty", "size"], stdin=True, tty=True)
    out, _, status = run(spdy_exec(node, query, "v4.channel.k8s.io", stdin=b"", sizes=[(132, 43)]))
    assert out == b"43 132\r\n"
    assert json.loads(status)["status"] == "Success"


def test_spdy_exec_refusals(node: Node) -> None:
    async def attempt(path: str, protocols: list[str]) -> spdy.UpgradeRefused:
        with pytest.raises(spdy.UpgradeRefused) as info:
            await spdy.dial("127.0.0.1", node.server.port, path, protocols, ssl_context=node.ca)
        return info.value

    none = run(attempt(node.path("exec", "box", "main", query=[("command", "true")]), ["v4.channel.k8s.io"]))
    assert (none.status, none.body) == (400, "you must specify at least 1 of stdin, stdout, stderr")
    v5 = run(attempt(node.path("exec", "box", "main", query=exec_query(["true"])), ["v5.channel.k8s.io"]))
    assert v5.status == 403
    assert v5.headers["x-accepted-stream-protocol-versions"] == "v4.channel.k8s.io"
    missing = run(
        attempt(node.path("exec", "box", "nope", query=exec_query(["true"])), ["v4.channel.k8s.io"])
    )
    assert (
        missing.status == 400
        and json.loads(missing.body)["message"] == "container nope is not valid for pod box"
    )
    wrong_uid = node.path("exec", "box", "not-the-uid", "main", query=exec_query(["true"]))
    assert run(attempt(wrong_uid, ["v4.channel.k8s.io"])).status == 404
    nowhere = run(
        attempt(node.path("exec", "ghost", "main", query=exec_query(["true"])), ["v4.channel.k8s.io"])
    )
    assert nowhere.status == 404

    uid_path = node.path("exec", "box", node.pod_uid("box"), "main", query=exec_query(["echo", "by uid"]))

    async def by_uid() -> bytes:
        session, _ = await spdy.dial(
            "127.0.0.1", node.server.port, uid_path, ["v4.channel.k8s.io"], ssl_context=node.ca
        )
        error = await session.open_stream({"streamType": "error"})
        stdout = await session.open_stream({"streamType": "stdout"})
        stderr = await session.open_stream({"streamType": "stderr"})
        out, _, _ = await asyncio.gather(stdout.read_all(), stderr.read_all(), error.read_all())
        await session.close(grace=5)
        return out

    assert run(by_uid()) == b"by uid\n"


# -- exec over WebSocket, passed through by the API server ---------------------------------------------


async def websocket_session(node: Node, path: str, protocol: str) -> dict[int, bytes]:
    channels: dict[int, bytes] = {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{node.url}{path}", protocols=(protocol,), ssl=node.ca) as ws,
    ):
        assert ws.protocol == protocol
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY and message.data:
                channels[message.data[0]] = channels.get(message.data[0], b"") + message.data[1:]
    return channels


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v5.channel.k8s.io"])
def test_websocket_exec(node: Node, protocol: str) -> None:
    path = node.path("exec", "box", "main", query=exec_query(["sh", "-c", "echo out; echo err >&2; exit 4"]))
    channels = run(websocket_session(node, path, protocol))
    assert channels[1] == b"out\n" and channels[2] == b"err\n"
    status = json.loads(channels[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]
    wording = "command terminated with exit code 4" if protocol.startswith("v5") else "exit code 4"
    assert status["message"].endswith(wording)


# -- logs ------------------------------------------------------------------------------------------------


def get_logs(node: Node, pod: str, query: Any = ()) -> tuple[int, str]:
    async def get() -> tuple[int, str]:
        url = node.url + node.path("containerLogs", pod, "main", query=query)
        async with aiohttp.ClientSession() as session, session.get(url, ssl=node.ca) as resp:
            return resp.status, await resp.text()

    return run(get())  # type: ignore[no-any-return]


def test_container_logs_with_query_options(node: Node) -> None:
    wait_for(lambda: "err 1" in get_logs(node, "logs")[1], message="the logs pod's output")
    status, text = get_logs(node, "logs")
    assert status == 200
    assert text.splitlines() == ["out 1", "out 2", "out 3", "out 4", "out 5", "err 1"]
    assert get_logs(node, "logs", {"tailLines": "2"})[1] == "out 5\nerr 1\n"
    assert get_logs(node, "logs", {"tail": "1"})[1] == "err 1\n"  # the kubelet's legacy name
    assert get_logs(node, "logs", {"tail": "all"})[1] == text
    assert get_logs(node, "logs", {"limitBytes": "8"})[1] == "out 1\nou"
    stamped = get_logs(node, "logs", {"timestamps": "true", "tailLines": "1"})[1]
    assert stamped.endswith("Z err 1\n") and len(stamped.split(" ")[0]) == 30
    assert get_logs(node, "logs", {"sinceSeconds": "3600"})[1] == text
    assert get_logs(node, "logs", {"sinceTime": "2999-01-01T00:00:00Z"})[1] == ""
    # The real kubelet's answers: text (its literal JSON included), which the API server wraps in a Status.
    invalid = get_logs(node, "logs", {"sinceSeconds": "5", "sinceTime": "2020-01-01T00:00:00Z"})
    assert invalid == (422, '{"message": "Invalid request."}')
    previous = get_logs(node, "logs", {"previous": "true"})
    assert previous == (400, 'previous terminated container "main" in pod "logs" not found')
    assert get_logs(node, "ghost") == (404, 'pod "ghost" does not exist')


def test_container_logs_follow(node: Node) -> None:
    async def follow() -> list[str]:
        url = node.url + node.path(
            "containerLogs", "talker", "main", query={"follow": "true", "tailLines": "0"}
        )
        lines: list[str] = []
        async with aiohttp.ClientSession() as session, session.get(url, ssl=node.ca) as resp:
            assert resp.status == 200
            while len(lines) < 4:
                lines.append((await resp.content.readline()).decode())
        return lines

    lines = run(follow())
    # New lines keep coming (ticks on stdout and tocks on stderr), in the container's order.
    numbers = [int(line.split()[1]) for line in lines]
    assert [line.split()[0] for line in lines] in (
        ["tick", "tock", "tick", "tock"],
        ["tock", "tick", "tock", "tick"],
    )
    assert numbers == sorted(numbers)


# -- attach -------------------------------------------------------------------------------------------------


def test_go_spdy_attach_streams_new_output_until_the_container_exits(node: Node, kubelet_probe: Path) -> None:
    # No readiness probe: a connection to port 9000 is what ends it.
    node.run_pod("finisher", FINISHER, restartPolicy="Never")
    node.wait_ready("finisher")
    wait_for(lambda: "tick" in get_logs(node, "finisher")[1], timeout=60, message="the finisher listening")
    query = [("output", "1"), ("error", "1"), ("input", "1")]
    url = node.url + node.path("attach", "finisher", "main", query=query)
    attach = subprocess.Popen(
        [str(kubelet_probe), "exec", url, "-stdin", "dropped"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert attach.stdout is not None
        first = attach.stdout.readline()
        assert first.startswith("tick "), first
        with socket.create_connection((node.pod_ip("finisher"), 9000), timeout=10):
            pass
        out, err = attach.communicate(timeout=60)
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    assert attach.returncode == 0, err
    assert out.splitlines()[-1] == "bye"
    assert err == "bye on stderr\n"


def test_websocket_attach_follows_output(node: Node) -> None:
    async def attach() -> list[bytes]:
        url = node.url + node.path("attach", "talker", "main", query=[("output", "1")])
        chunks: list[bytes] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, protocols=("v4.channel.k8s.io",), ssl=node.ca) as ws,
        ):
            while b"".join(chunks).count(b"\n") < 3:
                message = await ws.receive()
                assert message.type == aiohttp.WSMsgType.BINARY, message
                assert message.data[0] == 1  # stdout only: stderr was not asked for
                chunks.append(message.data[1:])
        return chunks

    lines = b"".join(run(attach())).splitlines()
    assert all(line.startswith(b"tick ") for line in lines), lines


def test_attach_refusals(node: Node) -> None:
    status, body = run(_plain_get(node, node.path("attach", "talker", "main")))
    assert (status, body) == (400, "you must specify at least 1 of stdin, stdout, stderr")
    status, body = run(_plain_get(node, node.path("attach", "talker", "main", query=[("output", "1")])))
    assert status == 400 and "unable to upgrade: missing upgrade headers" in body


async def _plain_get(node: Node, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{node.url}{path}", ssl=node.ca) as resp:
        return resp.status, await resp.text()


# -- port-forward -------------------------------------------------------------------------------------------


def test_go_port_forward_with_concurrent_connections(node: Node, kubelet_probe: Path) -> None:
    result = probe(kubelet_probe, "forward", node.url + node.path("portForward", "web"), "8080", "8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"hello /get-{n}" for n in range(8)]


def closed_port(ip: str) -> int:
    """A port nothing listens on at ``ip`` now. Not a fixed one: the pods of every cluster on this machine
    share its network, and a second copy of the suite once had a pod serving 0.0.0.0:8081, which then
    answered here where the test expected a refusal."""
    with socket.socket() as probe_socket:
        probe_socket.bind((ip, 0))  # the kernel picks a port no listener holds, wildcard ones included
        return int(probe_socket.getsockname()[1])


def test_go_port_forward_refused_port_keeps_the_session(node: Node, kubelet_probe: Path) -> None:
    uid = node.pod_uid("web")
    ip = node.pod_ip("web")
    closed = closed_port(ip)
    result = probe(
        kubelet_probe, "pairs", node.url + node.path("portForward", "web", uid), str(closed), "8080", "8080"
    )
    assert result.returncode == 0, result.stderr
    refused, *served = result.stdout.splitlines()
    assert refused == (
        f"{closed} error: error forwarding port {closed} to pod {uid}, uid : failed to connect to {ip}:{closed} "
        f"inside the pod: dial tcp4 {ip}:{closed}: connect: connection refused"
    )
    assert served == ["8080 body: hello /pair-1", "8080 body: hello /pair-2"]


def test_spdy_port_forward_with_our_client_and_stream_validation(node: Node) -> None:
    async def scenario() -> None:
        session, protocol = await spdy.dial(
            "127.0.0.1", node.server.port, node.path("portForward", "web"), ["portforward.k8s.io"],
            ssl_context=node.ca,
        )  # fmt: skip
        assert protocol == "portforward.k8s.io"
        with pytest.raises(ConnectionResetError):
            await session.open_stream({"streamType": "data"})  # no port header
        with pytest.raises(ConnectionResetError):
            await session.open_stream({"streamType": "other", "port": "8080"})
        # Without requestID the kubelet pairs an error stream with the data stream two ids later.
        error = await session.open_stream({"streamType": "error", "port": "8080"})
        data = await session.open_stream({"streamType": "data", "port": "8080"})
        assert data.id == error.id + 2
        await data.write(b"GET /ours HTTP/1.0\r\n\r\n")
        await data.close()
        response = await data.read_all()
        assert response.startswith(b"HTTP/1.0 200") and response.endswith(b"hello /ours")
        assert await error.read_all() == b""
        await session.close(grace=5)

    run(scenario())


def test_websocket_port_forward(node: Node) -> None:
    closed = closed_port(node.pod_ip("web"))

    async def scenario(protocol: str) -> dict[int, bytes]:
        url = node.url + node.path("portForward", "web", query={"port": f"8080,{closed}"})
        channels: dict[int, bytes] = {}
        encoded = "base64" in protocol
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, protocols=(protocol,), ssl=node.ca) as ws,
        ):
            request = b"GET /websocket HTTP/1.0\r\n\r\n"
            if encoded:
                await ws.send_str("0" + base64.b64encode(request).decode())
            else:
                await ws.send_bytes(b"\x00" + request)
            async for message in ws:
                raw = message.data if isinstance(message.data, bytes) else message.data.encode()
                channel = raw[0] - 48 if encoded else raw[0]
                payload = base64.b64decode(raw[1:]) if encoded else raw[1:]
                channels[channel] = channels.get(channel, b"") + payload
        return channels

    for protocol in ("v4.channel.k8s.io", "v4.base64.channel.k8s.io"):
        channels = run(scenario(protocol))
        # Each channel opens with its port, little-endian, as the Python client expects.
        for channel, port in ((0, 8080), (1, 8080), (2, closed), (3, closed)):
            assert channels[channel][:2] == struct.pack("<H", port)
        assert channels[0][2:].startswith(b"HTTP/1.0 200") and channels[0].endswith(b"hello /websocket")
        assert channels[1] == struct.pack("<H", 8080)  # no error for the port that answered
        assert b"connect: connection refused" in channels[3][2:]


def test_port_forward_tunneled_in_a_websocket(node: Node) -> None:
    async def scenario() -> bytes:
        url = node.url + node.path("portForward", "web")
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",), ssl=node.ca) as ws,
        ):
            reader = asyncio.StreamReader()

            async def pump() -> None:
                async for message in ws:
                    reader.feed_data(message.data)
                reader.feed_eof()

            pumping = asyncio.create_task(pump())
            session = spdy.SpdySession(reader, spdy.MessageWriter(ws.send_bytes, ws.close), server=False)
            session.start()
            headers = {"port": "8080", "requestID": "0"}
            error = await session.open_stream({**headers, "streamType": "error"})
            data = await session.open_stream({**headers, "streamType": "data"})
            await data.write(b"GET /tunnel HTTP/1.0\r\n\r\n")
            await data.close()
            response = await data.read_all()
            assert await error.read_all() == b""
            await ws.close()
            await pumping
            return response

    assert run(scenario()).endswith(b"hello /tunnel")


def test_port_forward_requires_ports_over_websocket(node: Node) -> None:
    async def attempt() -> int:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(
                    node.url + node.path("portForward", "web"), protocols=("v4.channel.k8s.io",), ssl=node.ca
                )
            return info.value.status

    assert run(attempt()) == 400


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_spdy_exec_client_hanging_up_kills_the_command(node: Node) -> None:
    marker = f"kubelet-api-hangup-{os.getpid()}-{time.monotonic_ns()}"
    query = exec_query([PY, "-c", "import time; time.sleep(300)", marker])

    async def start_and_hang_up() -> None:
        session, _ = await spdy.dial(
            "127.0.0.1", node.server.port, node.path("exec", "box", "main", query=query), ["v4.channel.k8s.io"],
            ssl_context=node.ca,
        )  # fmt: skip
        for kind in ("error", "stdout", "stderr"):
            await session.open_stream({"streamType": kind})
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for(lambda: _processes_with(marker), message="the command running")
        )
        await session.close()  # no status read: the client is simply gone

    run(start_and_hang_up())
    wait_for(lambda: not _processes_with(marker), message="the command killed after the client hung up")
