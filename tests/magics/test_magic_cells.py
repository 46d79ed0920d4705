"""``%%devserver run`` and ``shell`` on a DevServer the operator runs: streaming, errors, interrupt."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from IPython.core.error import UsageError

from tests.magics.conftest import RunningServer
from tests.magics.magic_support import CellRun, wait_until


def remote_alive(running: RunningServer, pid: int) -> bool:
    """Ask the DevServer itself, with a separate exec, whether a process is still there."""
    result = running.client.exec(running.name, f"kill -0 {pid} 2>/dev/null && echo alive || echo gone")
    return result.stdout.strip() == "alive"


def test_output_streams_as_it_is_printed(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(f"%%devserver run {running.name}\nimport time\nprint('a')\ntime.sleep(0.5)\nprint('b')\n")
    assert run.error is None, run.stderr.text
    assert run.stdout.text == "a\nb\n"
    # The first line arrived while the remote process was still sleeping, not with everything at the end.
    assert run.stdout.first("b") - run.stdout.first("a") >= 0.4


def test_stdout_and_stderr_go_to_their_streams_in_order(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(
        f"%%devserver run {running.name}\n"
        # Seconds apart: stdout and stderr are separate channels, so only well-separated writes have an order
        # that survives a loaded machine.
        "import sys, time\nprint('out 1')\ntime.sleep(1)\nprint('err 1', file=sys.stderr)\n"
        "time.sleep(1)\nprint('out 2')\n"
    )
    assert run.error is None
    assert (run.stdout.text, run.stderr.text) == ("out 1\nout 2\n", "err 1\n")
    assert run.stdout.first("out 1") < run.stderr.first("err 1") < run.stdout.first("out 2")


def test_the_cell_runs_on_the_devserver(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(
        f"%%devserver run {running.name}\nimport json, os, platform, socket\n"
        "print(json.dumps({'host': socket.gethostname(), 'python': platform.python_version()}))\n"
    )
    assert run.error is None, run.stderr.text
    assert f'"host": "{running.name}-0"' in run.stdout.text


def test_a_remote_exception_shows_its_traceback_and_raises_usage_error(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(
        f"%%devserver run {running.name}\nprint('partial output')\n"
        "def divide(a, b):\n    return a / b\ndivide(1, 0)\n"
    )
    assert type(run.error) is UsageError
    assert str(run.error) == f"remote code exited with status 1 on {running.name} (rank 0)"
    assert run.stdout.text == "partial output\n"
    traceback = run.stderr.text
    assert 'File "<cell>", line 4, in <module>' in traceback and "divide(1, 0)" in traceback
    assert 'File "<cell>", line 3, in divide' in traceback and "return a / b" in traceback
    assert "ZeroDivisionError: division by zero" in traceback
    # The traceback arrived (streamed) before the error was raised, and it is the remote one only.
    assert "devservers_magics" not in traceback and "runner" not in traceback


def test_a_remote_syntax_error(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(f"%%devserver run {running.name}\nfor x in range(3)\n    print(x)\n")
    assert type(run.error) is UsageError and "SyntaxError" in run.stderr.text
    assert 'File "<cell>", line 1' in run.stderr.text


def test_exit_status_is_reported(running: RunningServer, running_shell: Any) -> None:
    with pytest.raises(UsageError, match=rf"^remote code exited with status 3 on {running.name} \(rank 0\)$"):
        running_shell.run_cell_magic("devserver", f"run {running.name}", "import sys\nsys.exit(3)\n")
    assert (
        running_shell.run_cell_magic("devserver", f"run {running.name}", "import sys\nsys.exit(0)\n") is None
    )


def test_a_shell_cell(running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]) -> None:
    run = run_cell(
        f'%%devserver shell {running.name}\necho "host $(hostname)"\nfor i in 1 2; do echo $i; done\n'
    )
    assert run.error is None, run.stderr.text
    assert run.stdout.text == f"host {running.name}-0\n1\n2\n"
    failed = run_cell(f"%%devserver shell {running.name}\necho oops >&2\nexit 4\n")
    assert type(failed.error) is UsageError
    assert str(failed.error) == f"remote shell script exited with status 4 on {running.name} (rank 0)"
    assert failed.stderr.text.startswith("oops\n")  # then IPython's one-line UsageError


def test_a_large_cell_is_sent_whole(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    payload = "x" * 300_000  # far beyond what fits in a URL
    run = run_cell(f"%%devserver run {running.name}\ndata = '{payload}'\nprint(len(data))\n")
    assert run.error is None, run.stderr.text
    assert run.stdout.text == "300000\n"


def test_the_cell_cannot_read_stdin(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(f"%%devserver run {running.name}\nimport sys\nprint(repr(sys.stdin.read()))\n")
    assert run.error is None and run.stdout.text == "''\n"


def test_timeout_stops_the_remote_process(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    started = time.monotonic()
    run = run_cell(
        f"%%devserver run {running.name} --timeout 1\nimport os, time\n"
        "print(os.getpid(), flush=True)\ntime.sleep(600)\n"
    )
    assert type(run.error) is UsageError
    assert str(run.error).startswith(
        f"The cell did not finish within 1s on DevServer '{running.name}' (rank 0)"
    )
    # Stopped by the timeout, not by the end of its 600 s sleep; the bound leaves a loaded machine its time.
    assert time.monotonic() - started < 90
    pid = int(run.stdout.text.split()[0])
    wait_until(lambda: not remote_alive(running, pid), timeout=60, message="the timed-out process to end")


def test_interrupting_the_kernel_stops_the_remote_process(
    running: RunningServer, running_shell: Any, run_cell: Callable[[str], CellRun]
) -> None:
    """SIGINT, as Jupyter's interrupt sends it, while the cell waits on a silent remote process."""
    pid_file = f"/tmp/devserver-interrupt-{os.getpid()}"
    source = (
        f"%%devserver run {running.name}\nimport os, time\n"
        f"open({pid_file!r}, 'w').write(str(os.getpid()))\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    cell_done = threading.Event()

    def interrupt_once_started() -> None:
        # Only once the remote process has started (its pid file is written): an interrupt that came while the
        # cell was still setting up on a loaded machine would test something else.
        deadline = time.monotonic() + 60
        while not cell_done.is_set() and time.monotonic() < deadline:
            if running.client.exec(running.name, ["test", "-s", pid_file]).returncode == 0:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    interrupt = threading.Thread(target=interrupt_once_started, daemon=True)
    interrupt.start()
    started = time.monotonic()
    try:
        run = run_cell(source)
    finally:
        cell_done.set()
        interrupt.join()
    assert isinstance(run.error, KeyboardInterrupt), run.error
    # Stopped by the interrupt, not by the end of its 600 s sleep.
    assert time.monotonic() - started < 90
    assert run.stdout.text.startswith("started\n")  # then IPython's KeyboardInterrupt report
    assert (
        f"Interrupted: the cell's remote process on {running.name} (rank 0) was stopped." in run.stderr.text
    )
    pid = int(running.client.exec(running.name, ["cat", pid_file], check=True).stdout)
    wait_until(lambda: not remote_alive(running, pid), timeout=60, message="the interrupted process to end")


def test_an_exception_raised_into_the_cells_thread_stops_the_remote_process(
    running: RunningServer, running_shell: Any
) -> None:
    """The same through an asynchronous KeyboardInterrupt in a thread running the magic (a busy remote)."""
    magics = running_shell.magics_manager.registry["DevServerMagics"]
    outcome: dict[str, Any] = {}
    pids: list[int] = []

    class Lines:
        def write(self, text: str) -> int:
            pids.extend(int(word) for word in text.split() if word.isdigit())
            return len(text)

        def flush(self) -> None:
            pass

    def body() -> None:
        from devservers_magics.remote_cell import run_cell as run_remote

        try:
            run_remote(
                magics.client(),
                running.name,
                "import os, time\nprint(os.getpid(), flush=True)\n"
                "while True:\n    print('tick', flush=True)\n    time.sleep(0.1)\n",
                stdout=Lines(),
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    wait_until(lambda: pids, timeout=60, message="the remote pid")
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt)
    )
    thread.join(60)
    assert not thread.is_alive(), "the cell's thread still runs 60 s after its KeyboardInterrupt"
    assert isinstance(outcome.get("error"), KeyboardInterrupt)
    wait_until(
        lambda: not remote_alive(running, pids[0]), timeout=60, message="the interrupted process to end"
    )


def test_errors_before_the_cell_runs_are_usage_errors(running: RunningServer, running_shell: Any) -> None:
    with pytest.raises(UsageError) as missing:
        running_shell.run_cell_magic("devserver", "run ghost", "print(1)")
    assert type(missing.value) is UsageError and "DevServer 'ghost' not found" in str(missing.value)
    with pytest.raises(UsageError, match="has no running pod for rank 1"):
        running_shell.run_cell_magic("devserver", f"run {running.name} --rank 1", "print(1)")
    magics = running_shell.magics_manager.registry["DevServerMagics"]
    running_shell.run_line_magic("config", "DevServerMagics.python = 'python-that-does-not-exist'")
    try:
        with pytest.raises(UsageError, match="Could not start 'python-that-does-not-exist'"):
            running_shell.run_cell_magic("devserver", f"run {running.name}", "print(1)")
    finally:
        running_shell.run_line_magic("config", "DevServerMagics.python = 'python3'")
    assert magics.python == "python3"


def test_a_stopped_devserver_says_how_to_start_it(running_shell: Any, running: RunningServer) -> None:
    running.client.create("sleeper", flavor="cpu-small", wait=True, timeout=90)
    running.client.stop("sleeper", wait=True, timeout=90)
    with pytest.raises(UsageError, match="Start it with: %devserver start sleeper"):
        running_shell.run_cell_magic("devserver", "run sleeper", "print(1)")
