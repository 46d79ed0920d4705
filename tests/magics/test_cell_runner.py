"""The runner that executes a cell on the DevServer, run here as a local process exactly as exec starts it.

This is the part a real kubelet relies on: it does not kill an exec's processes when the client leaves, it
only closes their stdin. So the runner must stop the cell itself when its stdin (the lifeline) ends. The
local cluster kills the process group anyway, which the end-to-end interrupt test covers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Literal

import pytest
from devservers_magics.remote_cell import BOOT, GRACE, command, payload

Kind = Literal["python", "shell"]


def start(source: str, kind: Kind = "python") -> subprocess.Popen[bytes]:
    """Start the bootstrap as the DevServer would, and send it the runner and the cell; stdin stays open."""
    cell = source.encode()
    argv = command(kind, cell, python=sys.executable)
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(payload(cell))
    process.stdin.flush()
    return process


def finish(process: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for the end *with stdin still open* (closing it is hanging up), then collect the output."""
    process.wait(timeout)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    if process.stdin is not None and not process.stdin.closed:
        process.stdin.close()
    return process.returncode, out.decode(), err.decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of the runner's group nobody reaped yet counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"process {pid} still running {timeout}s after the client hung up")
        time.sleep(0.05)


def test_the_cell_is_not_on_the_command_line() -> None:
    argv = command("python", b"print('secret-token-42')")
    assert not any("secret-token-42" in part for part in argv)
    assert argv[:4] == ["python3", "-u", "-c", BOOT]


def test_a_cell_runs_and_exits_zero_while_stdin_is_still_open() -> None:
    process = start("import sys\nprint('hello', sys.argv)\nprint('to stderr', file=sys.stderr)\n")
    code, out, err = finish(process)
    assert (code, out, err) == (0, "hello ['']\n", "to stderr\n")


def test_the_cell_runs_in_a_fresh_main_module_without_stdin() -> None:
    source = (
        "import sys\nprint(__name__, sorted(k for k in globals() if not k.startswith('__')))\n"
        "print(repr(sys.stdin.read()))\ndef f(): pass\nimport pickle\nprint(len(pickle.dumps(f)) > 0)\n"
    )
    code, out, _ = finish(start(source))
    assert (code, out) == (0, "__main__ ['sys']\n''\nTrue\n")


def test_a_failure_shows_the_cells_traceback_and_exits_1() -> None:
    code, out, err = finish(start("print('before')\ndef f():\n    return 1 / 0\nf()\n"))
    assert (code, out) == (1, "before\n")
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'File "<cell>", line 4, in <module>' in err and "    f()" in err
    assert 'File "<cell>", line 3, in f' in err and "return 1 / 0" in err
    assert err.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "runner" not in err


def test_a_syntax_error_points_at_the_cell() -> None:
    code, _, err = finish(start("x = 1\ny = (\n"))
    assert code == 1 and 'File "<cell>", line 2' in err and "SyntaxError" in err


def test_sys_exit_keeps_its_status() -> None:
    assert finish(start("import sys\nsys.exit(7)\n"))[0] == 7


def test_unicode_crosses_intact() -> None:
    assert finish(start("print('héllo → 世界')\n"))[1] == "héllo → 世界\n"


def test_hanging_up_interrupts_the_cell_like_ctrl_c() -> None:
    process = start(
        "import os, time\ntry:\n    print(os.getpid(), flush=True)\n    time.sleep(60)\n"
        "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n    raise\n"
    )
    assert process.stdout is not None and process.stdin is not None
    pid = int(process.stdout.readline())
    process.stdin.close()  # what the kubelet does when the notebook hangs up
    code, out, err = finish(process, timeout=GRACE + 10)
    assert code in (130, -signal.SIGKILL) and out == "interrupted\n" and "KeyboardInterrupt" in err
    wait_gone(pid, 1)


def test_a_cell_that_ignores_ctrl_c_is_killed_after_the_grace_period() -> None:
    process = start(
        "import signal, subprocess, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '60'])\nprint(child.pid, flush=True)\ntime.sleep(60)\n"
    )
    assert process.stdout is not None and process.stdin is not None
    child = int(process.stdout.readline())
    hung_up = time.monotonic()
    process.stdin.close()
    code, _, _ = finish(process, timeout=GRACE + 10)
    assert code == -signal.SIGKILL
    assert GRACE - 0.5 < time.monotonic() - hung_up < GRACE + 5
    wait_gone(child, 2)  # what the cell started goes too: same process group


def test_a_shell_cell_runs_and_keeps_its_exit_status() -> None:
    code, out, err = finish(start("echo one\necho two >&2\nexit 3\n", "shell"))
    assert (code, out, err) == (3, "one\n", "two\n")


def test_hanging_up_stops_a_shell_script_and_what_it_started() -> None:
    process = start("sleep 60 &\necho $!\nwait\n", "shell")
    assert process.stdout is not None and process.stdin is not None
    child = int(process.stdout.readline())
    process.stdin.close()
    code, _, _ = finish(process, timeout=GRACE + 10)
    assert code in (130, -signal.SIGKILL)
    wait_gone(child, 2)


def test_a_client_that_leaves_before_sending_the_cell_ends_the_runner() -> None:
    argv = command("python", b"print(1)" * 10, python=sys.executable)
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(payload(b"print(1)" * 10)[:-5])
    process.stdin.close()
    assert finish(process)[0] == 130
