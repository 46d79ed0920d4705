"""exec, exec_stream and shell against real pods of the local cluster (processes run by its kubelet)."""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import DevServerNotFoundError, DevServerNotReadyError, ExecError
from devservers_sdk.exec import DEFAULT_SHELL, ExecResult

ROOT = Path(__file__).resolve().parents[2]
Make = Callable[..., str]


@pytest.fixture
def box(running_devserver: Make) -> str:
    return running_devserver("box")


def test_exec_collects_stdout_stderr_and_exit_code(client: DevServerClient, box: str) -> None:
    result = client.exec(box, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert isinstance(result, ExecResult)
    assert (result.args, result.returncode, result.stdout, result.stderr) == (
        ["sh", "-c", "echo out; echo err >&2; exit 3"], 3, "out\n", "err\n")
    assert (result.devserver, result.pod) == ("box", "box-0")
    ok = client.exec(box, "echo $((6 * 7)) | tr -d '\\n'")  # a string runs through /bin/sh -c
    assert (ok.args, ok.returncode, ok.stdout, ok.stderr) == ("echo $((6 * 7)) | tr -d '\\n'", 0, "42", "")


def test_exec_check_raises_with_the_result(client: DevServerClient, box: str) -> None:
    with pytest.raises(ExecError) as caught:
        client.exec(box, ["sh", "-c", "echo first >&2; echo last words >&2; exit 5"], check=True)
    assert caught.value.returncode == 5 and caught.value.result.stderr == "first\nlast words\n"
    assert "exited with code 5 in DevServer 'box': first / last words" in str(caught.value)
    assert client.exec(box, ["true"], check=True).returncode == 0


@pytest.mark.parametrize("kind", ["bytes", "str", "binary file", "text file", "iterable", "pipe"])
def test_exec_stdin(client: DevServerClient, box: str, kind: str) -> None:
    payload = "héllo\nwörld\n" * 1000
    data = payload.encode()
    if kind == "bytes":
        stdin: object = data
    elif kind == "str":
        stdin = payload
    elif kind == "binary file":
        stdin = io.BytesIO(data)
    elif kind == "text file":
        stdin = io.StringIO(payload)
    elif kind == "iterable":
        stdin = (data[i:i + 1000] for i in range(0, len(data), 1000))
    else:
        read_fd, write_fd = os.pipe()

        def writer() -> None:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(data)

        threading.Thread(target=writer, daemon=True).start()
        stdin = os.fdopen(read_fd, "rb")
    result = client.exec(box, ["cat"], stdin=stdin)  # type: ignore[arg-type]
    assert result.stdout == payload


def test_exec_binary_round_trip(client: DevServerClient, box: str) -> None:
    data = bytes(range(256)) * 4096 + os.urandom(3 * 1024 * 1024 + 7)  # frames of every size class
    result = client.exec(box, ["cat"], stdin=data, text=False)
    assert result.stdout == data and result.returncode == 0


def test_exec_timeout_stops_the_command(client: DevServerClient, box: str) -> None:
    with pytest.raises(ExecError, match=r"did not finish within 0\.5s") as caught:
        client.exec(box, ["sh", "-c", "echo started; exec sleep 30"], timeout=0.5)
    assert caught.value.result.stdout == "started\n"


def test_exec_missing_command(client: DevServerClient, box: str) -> None:
    """As with kubectl on containerd: exit status 127 and the runtime's complaint on stderr."""
    result = client.exec(box, ["no-such-tool"])
    assert result.returncode == 127 and "executable file not found" in result.stderr
    with pytest.raises(ExecError, match=r"`no-such-tool` exited with code 127 .*executable file not found"):
        client.exec(box, ["no-such-tool"], check=True)


def test_exec_by_rank(client: DevServerClient, running_devserver: Make) -> None:
    name = running_devserver("ddp", replicas=2)
    assert client.exec(name, "echo $HOSTNAME", rank=1).stdout == "ddp-1\n"
    assert client.exec(name, "echo $HOSTNAME").stdout == "ddp-0\n"
    with pytest.raises(DevServerNotReadyError, match=r"no running pod for rank 5: .*ranks present: 0, 1"):
        client.exec(name, ["true"], rank=5)


def test_exec_without_devserver_or_pods(client: DevServerClient, set_status: Callable[..., object]) -> None:
    with pytest.raises(DevServerNotFoundError, match="DevServer 'ghost' not found"):
        client.exec("ghost", ["true"])
    client.create("idle", flavor="cpu-small")
    set_status("idle", {"phase": "Stopped"})
    with pytest.raises(DevServerNotReadyError, match=r"it is stopped\. Start it with: devctl start idle"):
        client.exec("idle", ["true"])


def test_exec_stream_yields_output_as_it_arrives(client: DevServerClient, box: str) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as stdin, os.fdopen(write_fd, "wb", buffering=0) as feed:
        run = client.exec_stream(box, ["sh", "-c", "echo first; read reply; echo got $reply; echo bye >&2; exit 4"],
                                 stdin=stdin)
        chunks = iter(run)
        assert next(chunks) == ("stdout", "first\n")  # before any input was given: streamed, not collected
        feed.write(b"ping\n")
        feed.close()
        rest = list(chunks)
    assert "".join(str(chunk) for stream, chunk in rest if stream == "stdout") == "got ping\n"
    assert [chunk for stream, chunk in rest if stream == "stderr"] == ["bye\n"]
    assert run.returncode == 4


def test_exec_stream_large_output(client: DevServerClient, box: str) -> None:
    with client.exec_stream(box, ["head", "-c", "3000000", "/dev/urandom"], text=False) as run:
        chunks = list(run)
    assert {stream for stream, _ in chunks} == {"stdout"} and all(isinstance(c, bytes) for _, c in chunks)
    assert sum(len(chunk) for _, chunk in chunks) == 3_000_000 and run.returncode == 0


def test_exec_stream_check_and_bytes(client: DevServerClient, box: str) -> None:
    run = client.exec_stream(box, ["sh", "-c", "printf '\\377'; exit 2"], text=False, check=True)
    with pytest.raises(ExecError, match="exited with code 2"):
        assert list(run) == [("stdout", b"\xff")]
    with client.exec_stream(box, ["sh", "-c", "echo a; exec sleep 30"]) as early:
        assert next(iter(early)) == ("stdout", "a\n")
    assert early.returncode is None  # hung up before the end


SHELL_SCRIPT = """
import sys
from devservers_sdk.client import DevServerClient
sys.exit(DevServerClient(kubeconfig=sys.argv[1]).shell(sys.argv[2]))
"""


def test_shell_through_a_pty(client: DevServerClient, box: str, namespace_kubeconfig: str, tmp_path: Path) -> None:
    script = tmp_path / "shell.py"
    script.write_text(SHELL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    child = pexpect.spawn(sys.executable, [str(script), namespace_kubeconfig, box], env=env, timeout=20,
                          dimensions=(24, 80), encoding="utf-8")
    container_path = client.exec(box, ["printenv", "PATH"]).stdout.strip()
    try:
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.sendline('echo "P=[""$PATH""]"')  # the quotes keep the echoed command line from matching
        child.expect(r"P=\[(/[^\]]*)\]")
        # The same machine as `devctl shell NAME -- cmd` (start-up files may add entries, never drop any).
        assert set(container_path.split(":")) <= set(child.match.group(1).split(":"))
        child.sendline("stty size")
        child.expect("24 80")
        child.setwinsize(40, 100)  # SIGWINCH in the client, a resize message to the remote terminal
        child.sendline("stty size")
        child.expect("40 100")
        child.sendline("sh -c 'echo sleep$((1+1)) && exec sleep 30'")
        child.expect("sleep2")  # printed by the foreground process that becomes `sleep`
        child.sendcontrol("c")  # raw mode: ^C reaches the remote shell instead of killing the client
        child.expect(r"\^C")
        child.expect(r"[#$] ")  # a fresh prompt: the remote terminal flushed its input on SIGINT
        child.sendline("echo still $((1+1))")
        child.expect("still 2")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3


def test_default_shell_keeps_the_containers_path(tmp_path: Path) -> None:
    """A login shell would source /etc/profile, which resets PATH: the image's python would vanish."""
    (tmp_path / "bin").mkdir()
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    child = pexpect.spawn(DEFAULT_SHELL[0], DEFAULT_SHELL[1:], env={"PATH": path, "HOME": str(tmp_path),
                                                                    "TERM": "dumb"},
                          cwd=str(tmp_path), timeout=20, encoding="utf-8")
    try:
        child.sendline('echo "P=[""$PATH""]"')
        child.expect(r"P=\[(/[^\]]*)\]")
        seen = child.match.group(1)
        child.sendline("exit 0")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert seen == path


def test_shell_without_a_terminal(client: DevServerClient, box: str, tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"echo plain $((2*21)); exit 7\n")
    os.close(write_fd)
    out_path = tmp_path / "out"
    with os.fdopen(read_fd, "rb") as stdin, open(out_path, "wb") as stdout:
        code = client.shell(box, command=["sh"], stdin=stdin, stdout=stdout)
    assert code == 7 and out_path.read_bytes() == b"plain 42\n"
