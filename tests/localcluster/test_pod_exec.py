"""``pods/exec`` over WebSockets, driven by the real clients: the Python client, kubectl and a terminal.

The handler is mounted on a tiny aiohttp app (with just enough discovery and a Running Pod for kubectl)
whose launch spec runs commands locally, served from a thread so the blocking clients can call it.
Raw aiohttp WebSocket clients pin down protocol details the high-level clients hide.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pexpect
import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.stream import stream
from multidict import MultiDict

from devservers_sdk.localcluster.node import pod_exec
from tests.localcluster.served_app import ServerThread

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
EXEC_PATH = "/api/v1/namespaces/default/pods/box/exec"


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s: {message or predicate}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its reaper may be another test's event loop).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class FakeLaunch:
    """What the kubelet's launch_spec returns, minus the container: run the command right here."""

    cwd: str
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "PS1": "$ "})
    argv_prefix: list[str] = field(default_factory=list)
    pod_uid: str = "uid-1"


def pod_json(name: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": "uid-1"},
        "spec": {"containers": [{"name": "main", "image": "local"}]},
        "status": {"phase": "Running"},
    }


def kubectl_app(routes: Callable[[web.Application], None]) -> web.Application:
    """An app with the discovery and Pod GET that kubectl performs before exec/logs."""
    app = web.Application()

    async def api(_: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def apis(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_v1(_: web.Request) -> web.Response:
        pods = {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get"]}
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]})

    async def get_pod(request: web.Request) -> web.Response:
        return web.json_response(pod_json(request.match_info["name"]))

    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", api_v1)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", get_pod)
    routes(app)
    return app


class ExecApp:
    def __init__(self, workdir: Path) -> None:
        self.launch = FakeLaunch(cwd=str(workdir))
        self.started: list[int] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            opts = pod_exec.parse_exec_query(request.query)
            return await pod_exec.serve_exec(
                request,
                launch=self.launch,
                command=opts.command,
                stdin=opts.stdin,
                stdout=opts.stdout,
                stderr=opts.stderr,
                tty=opts.tty,
                on_started=self.started.append,
            )

        self.app = kubectl_app(
            lambda app: app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/exec", handler)
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, ExecApp]]:
    exec_app = ExecApp(tmp_path_factory.mktemp("exec"))
    with ServerThread(exec_app.app) as srv:
        yield srv, exec_app


@pytest.fixture
def core_v1(server: tuple[ServerThread, ExecApp]) -> Iterator[client.CoreV1Api]:
    with client.ApiClient(client.Configuration(host=server[0].url)) as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture
def kubectl_env(tmp_path: Path) -> dict[str, str]:
    # An empty kubeconfig: only --server decides where kubectl goes.
    return {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}


def kubectl(
    srv: ServerThread, env: dict[str, str], *args: str, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [KUBECTL, "--server", srv.url, *args], env=env, capture_output=True, timeout=60, **kwargs
    )


# -- pure functions ------------------------------------------------------------------------------


def test_negotiation_mirrors_api_server_then_kubelet() -> None:
    assert pod_exec.negotiate_protocol(["v4.channel.k8s.io, v5.channel.k8s.io"]) == "v5.channel.k8s.io"
    assert pod_exec.negotiate_protocol(["v5.channel.k8s.io,v4.channel.k8s.io"]) == "v5.channel.k8s.io"
    assert (
        pod_exec.negotiate_protocol(["base64.channel.k8s.io", "v4.channel.k8s.io"]) == "base64.channel.k8s.io"
    )
    assert pod_exec.negotiate_protocol(["v3.channel.k8s.io,channel.k8s.io"]) == "channel.k8s.io"
    assert pod_exec.negotiate_protocol([]) == ""
    assert pod_exec.negotiate_protocol(["v3.channel.k8s.io"]) is None
    assert pod_exec.negotiate_protocol(["base64url.bearer.authorization.k8s.io.dG9rZW4"]) is None


def test_exec_query_uses_the_api_server_bool_conversion() -> None:
    opts = pod_exec.parse_exec_query(
        MultiDict(
            [
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo a b"),
                ("stdin", "True"),
                ("stdout", "1"),
                ("stderr", "FALSE"),
                ("tty", ""),
                ("container", "main"),
            ]
        )
    )
    assert opts == pod_exec.ExecOptions(
        command=["sh", "-c", "echo a b"], container="main", stdin=True, stdout=True, stderr=False, tty=True
    )
    assert pod_exec.parse_exec_query(MultiDict([("stdout", "0")])).stdout is False


def test_resize_stream_is_a_json_stream() -> None:
    sizes: list[tuple[int, int]] = []
    decoder = pod_exec._ResizeDecoder(lambda w, h: sizes.append((w, h)))
    decoder.feed(b'{"Width": 80, "Hei')
    decoder.feed(b'ght": 24}{"width":100,"height":30}\n')
    decoder.feed(b'{"Width": 0, "Height": 10}')  # ignored, like the kubelet
    assert sizes == [(80, 24), (100, 30)]


# -- raw protocol --------------------------------------------------------------------------------


async def raw_session(
    url: str,
    query: str,
    *,
    protocols: tuple[str, ...] = ("v5.channel.k8s.io",),
    send: tuple[bytes | str, ...] = (),
) -> tuple[str | None, list[tuple[int, bytes]]]:
    """Run one exec and return the negotiated protocol and every (channel, payload) received."""
    frames: list[tuple[int, bytes]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{url}{EXEC_PATH}?{query}", protocols=protocols, timeout=aiohttp.ClientWSTimeout(ws_close=10)
        ) as ws,
    ):
        for message in send:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                frames.append((msg.data[0], msg.data[1:]))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                frames.append((ord(msg.data[0]) - 48, base64.b64decode(msg.data[1:])))
        return ws.protocol, frames


def channel(frames: list[tuple[int, bytes]], number: int) -> bytes:
    return b"".join(data for ch, data in frames if ch == number)


def test_v5_frames_start_empty_and_end_with_status(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    query = "command=sh&command=-c&command=echo+out;+echo+err+>%262;+exit+2&stdout=1&stderr=1"
    protocol, frames = asyncio.run(raw_session(srv.url, query))
    assert protocol == "v5.channel.k8s.io"
    assert frames[0] == (1, b"")  # the "connection established" message on the lowest writable channel
    assert channel(frames, 1) == b"out\n" and channel(frames, 2) == b"err\n"
    assert frames[-1][0] == 3
    assert json.loads(frames[-1][1]) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: command terminated with exit code 2",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
    }


def test_v4_status_uses_the_kubelet_wording(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    query = "command=sh&command=-c&command=exit+2&stderr=1"
    protocol, frames = asyncio.run(raw_session(srv.url, query, protocols=("v4.channel.k8s.io",)))
    assert protocol == "v4.channel.k8s.io"
    assert frames[0] == (2, b"")  # no stdout requested: stderr is the lowest writable channel
    status = json.loads(channel(frames, 3))
    assert status["message"] == (
        "command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2"
    )
    _, frames = asyncio.run(raw_session(srv.url, "command=true&stdout=1", protocols=("v4.channel.k8s.io",)))
    assert json.loads(channel(frames, 3)) == {"metadata": {}, "status": "Success"}


def test_v1_reports_only_failures_as_text(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    protocol, frames = asyncio.run(raw_session(srv.url, "command=true&stdout=1", protocols=()))
    assert protocol is None and channel(frames, 3) == b""
    _, frames = asyncio.run(raw_session(srv.url, "command=false&stdout=1", protocols=("channel.k8s.io",)))
    assert channel(frames, 3).startswith(b"command terminated with non-zero exit code: ")


def test_base64_protocol_round_trips_stdin(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    payload = bytes(range(256))
    _, frames = asyncio.run(
        raw_session(
            srv.url,
            "command=head&command=-c&command=256&stdin=1&stdout=1",
            protocols=("v4.base64.channel.k8s.io",),
            send=("0" + base64.b64encode(payload).decode(),),
        )
    )
    assert channel(frames, 1) == payload
    assert json.loads(channel(frames, 3))["status"] == "Success"


def test_v5_close_signal_ends_stdin(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    _, frames = asyncio.run(
        raw_session(
            srv.url, "command=wc&command=-c&stdin=1&stdout=1", send=(b"\x00abc", b"\x00de", b"\xff\x00")
        )
    )
    assert channel(frames, 1).strip() == b"5"


def test_refusals_before_the_upgrade(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server

    async def attempts() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(
                    f"{srv.url}{EXEC_PATH}?command=true&stdout=1", protocols=("v3.channel.k8s.io",)
                )
            assert info.value.status == 400
            async with session.get(
                f"{srv.url}{EXEC_PATH}?command=true&stdout=1",
                headers={
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Protocol": "v2.channel.k8s.io",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as resp:
                assert resp.status == 400
                assert "v2/v3 exist only for SPDY" in (await resp.json())["message"]
            async with session.post(
                f"{srv.url}{EXEC_PATH}?command=true&stdout=1",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "SPDY/3.1",
                    "X-Stream-Protocol-Version": "v4.channel.k8s.io",
                },
            ) as resp:
                body = await resp.json()
                assert resp.status == 400 and body["reason"] == "BadRequest"
                assert "SPDY/3.1 is not supported" in body["message"]
            async with session.get(
                f"{srv.url}{EXEC_PATH}?command=true", headers={"Upgrade": "websocket"}
            ) as resp:
                assert resp.status == 400
                assert (await resp.json())[
                    "message"
                ] == "you must specify at least 1 of stdin, stdout, stderr"

    asyncio.run(attempts())


def test_missing_binary_is_an_internal_error(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    _, frames = asyncio.run(raw_session(srv.url, "command=no-such-binary-xyz&stdout=1"))
    status = json.loads(channel(frames, 3))
    assert status["reason"] == "InternalError" and status["code"] == 500
    assert 'exec: "no-such-binary-xyz": executable file not found in $PATH' in status["message"]


def test_death_by_signal_reports_128_plus_signal(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    _, frames = asyncio.run(raw_session(srv.url, "command=sh&command=-c&command=kill+-9+$$&stdout=1"))
    assert json.loads(channel(frames, 3))["details"]["causes"] == [{"reason": "ExitCode", "message": "137"}]


def test_client_disconnect_kills_the_process_group(server: tuple[ServerThread, ExecApp]) -> None:
    srv, exec_app = server
    exec_app.started.clear()

    async def hang_up() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{srv.url}{EXEC_PATH}?command=sh&command=-c&command=sleep+300+%26+sleep+300&stdout=1",
                protocols=("v5.channel.k8s.io",),
            ) as ws,
        ):
            await ws.receive()  # the initial empty frame: the process is being started
            await asyncio.get_running_loop().run_in_executor(
                None, wait_until, lambda: exec_app.started, 10, "the process to start"
            )

    asyncio.run(hang_up())
    pid = exec_app.started[0]
    wait_until(lambda: not pid_alive(pid), message="the exec'd process to be killed")

    def group_alive() -> list[int]:
        out = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True)
        return [member for member in map(int, out.stdout.split()) if pid_alive(member)]

    wait_until(lambda: not group_alive(), message="the background child to be killed too")


def test_idle_background_child_does_not_hold_the_session(server: tuple[ServerThread, ExecApp]) -> None:
    srv, _ = server
    started = time.monotonic()
    _, frames = asyncio.run(
        raw_session(srv.url, "command=sh&command=-c&command=sleep+30+%26+echo+hi&stdout=1")
    )
    assert channel(frames, 1) == b"hi\n"
    assert json.loads(channel(frames, 3))["status"] == "Success"
    assert time.monotonic() - started < 10


# -- the official Python client ------------------------------------------------------------------


def test_python_client_stdout_stderr_and_exit_code(core_v1: client.CoreV1Api) -> None:
    resp = stream(
        core_v1.connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=["sh", "-c", "echo out; echo err >&2; exit 7"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "out\n"
    assert resp.read_stderr() == "err\n"
    assert resp.returncode == 7
    resp.close()


def test_python_client_stdin_and_close(core_v1: client.CoreV1Api) -> None:
    resp = stream(
        core_v1.connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=["cat"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("hello\n")
    assert resp.readline_stdout(timeout=10) == "hello"
    resp.write_stdin(b"bytes too\n")
    assert resp.readline_stdout(timeout=10) == "bytes too"
    resp.close_channel(0)  # v5: cat sees EOF
    resp.run_forever(timeout=20)
    assert resp.returncode == 0
    resp.close()


def test_python_client_preloaded_output(core_v1: client.CoreV1Api) -> None:
    out = stream(
        core_v1.connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=["sh", "-c", "printf 'a\\nb\\n'"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out == "a\nb\n"


def test_python_client_tty_sees_first_resize(core_v1: client.CoreV1Api) -> None:
    resp = stream(
        core_v1.connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=["sh", "-c", "stty size; echo err >&2; exit 4"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    resp.write_channel(4, json.dumps({"Width": 91, "Height": 27}))
    resp.run_forever(timeout=20)
    # A terminal merges stderr into stdout and translates newlines.
    assert resp.read_stdout() == "27 91\r\nerr\r\n"
    assert resp.returncode == 4
    resp.close()


# -- kubectl ---------------------------------------------------------------------------------------


def test_kubectl_exec_stdin_and_exit_code(
    server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str]
) -> None:
    srv, _ = server
    out = kubectl(
        srv,
        kubectl_env,
        "exec",
        "-i",
        "box",
        "--",
        "sh",
        "-c",
        "cat; echo oops >&2; exit 3",
        input=b"from stdin\n",
    )
    assert out.stdout == b"from stdin\n"
    assert out.returncode == 3, out.stderr
    assert b"oops\n" in out.stderr
    assert b"command terminated with exit code 3" in out.stderr


def test_kubectl_exec_large_stdin_through_cat(
    server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    srv, _ = server
    data = os.urandom(32 * 1024 * 1024)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    started = time.monotonic()
    with source.open("rb") as stdin:
        out = kubectl(srv, kubectl_env, "exec", "-i", "box", "--", "cat", stdin=stdin)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert out.stdout == data
    assert elapsed < 20, f"32 MiB took {elapsed:.1f}s"


def test_kubectl_without_websockets_gets_a_clear_error(
    server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str]
) -> None:
    srv, _ = server
    env = {**kubectl_env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    out = kubectl(srv, env, "exec", "box", "--", "true")
    assert out.returncode != 0
    assert b"not supported by the local cluster" in out.stderr


def test_kubectl_interrupted_kills_the_remote_process(
    server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str]
) -> None:
    srv, exec_app = server
    exec_app.started.clear()
    proc = subprocess.Popen(
        [KUBECTL, "--server", srv.url, "exec", "box", "--", "sleep", "300"],
        env=kubectl_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: exec_app.started, message="the remote sleep to start")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    pid = exec_app.started[0]
    wait_until(lambda: not pid_alive(pid), message="the remote sleep to be killed")


@pytest.mark.skipif(shutil.which("stty") is None, reason="needs stty")
def test_kubectl_exec_tty(server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str]) -> None:
    srv, _ = server
    term = pexpect.spawn(
        KUBECTL,
        ["--server", srv.url, "exec", "-it", "box", "--", "sh"],
        env=kubectl_env,
        dimensions=(33, 101),
        timeout=10,
        encoding="utf-8",
    )
    try:
        term.sendline("stty size")
        term.expect(r"33 101\r\n")  # a prompt may precede it: keys typed early echo early
        term.sendline("echo $((6*7))")
        term.expect(r"42\r\n")
        term.sendline("sleep 171")

        def sleeping() -> bool:
            found = subprocess.run(["pgrep", "-f", "^sleep 171$"], capture_output=True, text=True).stdout
            return any(pid_alive(int(pid)) for pid in found.split())

        wait_until(sleeping, message="the remote shell to run sleep in the foreground")
        term.send("\x03")  # ^C travels as a byte; the remote line discipline turns it into SIGINT
        term.sendline("echo after''interrupt")  # the echo of this line cannot match the output
        term.expect("afterinterrupt", timeout=60)
        term.setwinsize(40, 120)
        term.sendline("stty size")
        term.expect(r"40 120\r\n")
        term.sendline("exit 5")
        term.expect(pexpect.EOF)
    finally:
        term.close(force=True)
    assert term.exitstatus == 5


def test_kubectl_cp_both_ways(
    server: tuple[ServerThread, ExecApp], kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    # kubectl cp pipes a tar stream into `tar x` and relies on the v5 stdin close to end it.
    srv, _ = server
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    inside = tmp_path / "inside"
    inside.mkdir()
    out = kubectl(srv, kubectl_env, "cp", str(source), f"box:{inside}/copied.bin")
    assert out.returncode == 0, out.stderr
    assert (inside / "copied.bin").read_bytes() == source.read_bytes()
    out = kubectl(
        srv, kubectl_env, "cp", f"box:{inside}/copied.bin", str(tmp_path / "back.bin"), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
