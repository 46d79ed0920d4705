"""``client.port_forward`` and ``devctl port-forward`` to a web server in a DevServer, through the API server.

What a user does with it: open a server of the pod (JupyterLab, TensorBoard) from the laptop, with the many
parallel requests a browser makes; a connection the pod refuses is reported and the forward lives on.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from devservers_sdk.contract import ACTIVITY_ANNOTATION, ACTIVITY_SOURCE_ANNOTATION
from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.connect.conftest import Server, free_port


def start_web_server(server: Server, port: int, text: str) -> None:
    """``python -m http.server`` in the pod, serving ``page.txt``, left running after the exec ends."""
    script = (f"mkdir -p /tmp/web-{port} && cd /tmp/web-{port} && printf %s {text!r} > page.txt && "
              f"setsid -f python3 -m http.server {port} --bind 0.0.0.0 > server.log 2>&1")
    server.client.exec(server.name, script, check=True)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


def test_fifty_concurrent_requests_through_one_forward(server: Server) -> None:
    port = free_port()
    start_web_server(server, port, "hello from the pod")
    with server.client.port_forward(server.name, port) as (host, local_port):
        url = f"http://{host}:{local_port}/page.txt"
        wait_for(lambda: get(url)[0] == 200, timeout=60, message="the pod's web server through the forward")

        def fetch(_: int) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection(host, local_port, timeout=60)
            try:
                connection.request("GET", "/page.txt")
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(fetch, range(50)))
    assert results == [(200, b"hello from the pod")] * 50
    # An open forward is activity, and says so (devctl describe: "via port-forward").
    annotations = server.client.get(server.name).metadata.annotations
    assert annotations.get(ACTIVITY_SOURCE_ANNOTATION) == "port-forward" and annotations.get(ACTIVITY_ANNOTATION)


def test_a_refused_connection_is_reported_and_the_forward_goes_on(server: Server) -> None:
    port = free_port()
    errors: list[str] = []
    forward = server.client.port_forward(server.name, port, on_error=errors.append)
    with forward as address:
        status, _ = get(f"{address.url}/page.txt")  # nothing listens in the pod yet
        assert status == 0
        wait_for(lambda: errors, timeout=60, message="the refused connection reported")
        assert "connection refused" in errors[0] and str(port) in errors[0], errors
        start_web_server(server, port, "now it listens")
        assert wait_for(lambda: get(f"{address.url}/page.txt")[1], timeout=60,
                        message="a page through the same forward") == b"now it listens"
    assert forward.connections >= 2


def test_port_forward_checks_its_ports(server: Server) -> None:
    with pytest.raises(InvalidSpecError, match="remote_port"):
        server.client.port_forward(server.name, 70000)
    with server.client.port_forward(server.name, 80) as (host, taken), \
            pytest.raises(InvalidSpecError, match=f"Local port {taken} .* already in use"):
        server.client.port_forward(server.name, 80, local_port=taken, address=host)


def test_devctl_port_forward_until_ctrl_c(server: Server) -> None:
    port = free_port()
    start_web_server(server, port, "via devctl")
    env = {**os.environ, "KUBECONFIG": server.kubeconfig}
    process = subprocess.Popen([sys.executable, "-m", "devservers_cli", "port-forward", server.name, f":{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.rstrip().endswith(f"-> {port}"), (
            line, process.stderr.read() if process.poll() is not None else "")
        local = int(line.split(":")[1].split()[0])
        assert wait_for(lambda: get(f"http://127.0.0.1:{local}/page.txt")[1], timeout=60,
                        message="a page through devctl port-forward") == b"via devctl"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0  # as kubectl port-forward: Ctrl-C is how it ends
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert get(f"http://127.0.0.1:{local}/page.txt")[0] == 0  # the port is closed with the forward
