"""Every blocking wait of the SDK gives way to Ctrl-C (SIGINT): ``create(wait=True)`` on a DevServer that
never runs, ``logs(follow=True)`` on a silent container, ``exec`` of a command that sleeps, and ``watch()``;
and a ``Cancellation`` stops a wait in another thread (what the notebook widget's Cancel uses).

Each case runs in a child Python process, exactly as a user's script would, and the test sends SIGINT once
the child is blocked in a system call (read from ``/proc/PID/syscall``) inside the wait. The child must die of
``KeyboardInterrupt``; how long it took is printed (``-s`` shows it) and measured against the 1 s target by
``bench/interrupt.py``, not asserted here (timing asserts fail on a busy machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import wait_for

ROOT = Path(__file__).resolve().parents[2]
GENEROUS = 30.0
"""Seconds the child gets to die after SIGINT before the test fails (the target is 1 s; see bench/interrupt.py)."""

PRELUDE = """
import sys, time
from devservers_sdk import DevServerClient
client = DevServerClient(kubeconfig=sys.argv[1])
"""

BLOCKING_CALLS = {
    "create-wait": "client.create('never-runs', flavor='gpu-small', wait=True, timeout=600,"
                   " on_progress=lambda server: print('WAITING', flush=True))",
    "logs-follow": "lines = client.logs(sys.argv[2], follow=True)\n"
                   "print(next(lines), flush=True)\n"
                   "print('WAITING', flush=True)\n"
                   "for line in lines: print(line, flush=True)",
    "exec": "print('WAITING', flush=True)\nclient.exec(sys.argv[2], ['sleep', '3600'])",
    "watch": "events = client.watch()\nnext(events)\nprint('WAITING', flush=True)\nfor event in events: pass",
}


def blocked_in_syscall(pid: int) -> bool:
    """Whether the process's main thread sleeps in a system call (not running Python code)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        syscall = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return state == "S" and syscall not in ("running", "-1")


def blocked_in_syscall_thread(thread: threading.Thread) -> bool:
    """Whether ``thread`` of this process sleeps in a system call (its read of the watch)."""
    task = Path(f"/proc/self/task/{thread.native_id}")
    try:
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        syscall = (task / "syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return state == "S" and syscall not in ("running", "-1")


def interrupt_child(script: str, *args: str) -> float:
    """Run ``script``; once it printed WAITING and sleeps in a system call, SIGINT it.

    Returns:
        Seconds from SIGINT to the child's exit.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *(str(ROOT / part) for part in ("operator", "cli", "magics"))])}
    child = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "WAITING":
                break
        else:
            pytest.fail(f"the child never reached its wait: {child.wait(5)} {child.stderr.read()}")  # type: ignore[union-attr]
        # In the wait: blocked in a socket read (or poll), twice in a row so that it is not a passing moment.
        wait_for(lambda: blocked_in_syscall(child.pid) and blocked_in_syscall(child.pid), timeout=GENEROUS,
                 message="the child asleep in a system call")
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        try:
            _, stderr = child.communicate(timeout=GENEROUS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the child ignored SIGINT for {GENEROUS:g}s")
        latency = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "KeyboardInterrupt" in stderr.splitlines()[-1], stderr
    assert child.returncode != 0
    print(f"SIGINT to exit: {latency:.3f}s")
    return latency


def test_sigint_interrupts_create_waiting_for_a_server_that_cannot_run(
        client: DevServerClient, namespace_kubeconfig: str) -> None:
    # No operator runs in tests/sdk: the DevServer never gets a phase, so the wait would last its 600 s.
    interrupt_child(BLOCKING_CALLS["create-wait"], namespace_kubeconfig)
    assert client.get("never-runs").name == "never-runs"  # the interrupt stopped the wait, not the create


def test_sigint_interrupts_following_the_logs_of_a_silent_container(
        client: DevServerClient, running_devserver: Callable[..., str], namespace_kubeconfig: str) -> None:
    name = running_devserver("quiet", command=["sh", "-c", "echo started; exec sleep 3600"])
    wait_for(lambda: list(client.logs(name)) == ["started"], message="the first line logged")
    interrupt_child(BLOCKING_CALLS["logs-follow"], namespace_kubeconfig, name)


def test_sigint_interrupts_exec_and_watch(
        client: DevServerClient, running_devserver: Callable[..., str], namespace_kubeconfig: str) -> None:
    name = running_devserver("sleeper")
    interrupt_child(BLOCKING_CALLS["exec"], namespace_kubeconfig, name)
    interrupt_child(BLOCKING_CALLS["watch"], namespace_kubeconfig)


def test_a_cancellation_stops_a_wait_in_another_thread_and_leaves_the_devserver(client: DevServerClient) -> None:
    from devservers_sdk import Cancellation, WaitCancelledError

    cancel = Cancellation()
    outcome: list[BaseException | object] = []
    progress = threading.Event()

    def create() -> None:
        try:
            outcome.append(client.create("cancelled", flavor="gpu-small", wait=True, timeout=600, cancel=cancel,
                                         on_progress=lambda server: progress.set()))
        except BaseException as exc:  # the test looks at whatever ended the wait
            outcome.append(exc)

    waiter = threading.Thread(target=create, daemon=True)
    waiter.start()
    assert progress.wait(GENEROUS), "the create never started waiting"
    assert wait_for(lambda: blocked_in_syscall_thread(waiter), timeout=GENEROUS,
                    message="the waiting thread asleep in a system call")
    sent = time.monotonic()
    cancel.cancel()
    waiter.join(GENEROUS)
    assert not waiter.is_alive(), f"the wait went on {GENEROUS:g}s after cancel()"
    print(f"cancel() to the end of the wait: {time.monotonic() - sent:.3f}s")
    assert isinstance(outcome[0], WaitCancelledError), outcome
    assert str(outcome[0]) == ("Stopped waiting for DevServer 'cancelled' to reach phase Running; "
                               "it is left as it is.")
    assert client.get("cancelled").name == "cancelled"


def test_a_wait_cancelled_before_it_starts_ends_at_once(client: DevServerClient) -> None:
    from devservers_sdk import Cancellation, WaitCancelledError

    client.create("early", flavor="cpu-small")
    cancel = Cancellation()
    cancel.cancel()
    with pytest.raises(WaitCancelledError, match="Stopped waiting for DevServer 'early'"):
        client.wait("early", timeout=600, cancel=cancel)
