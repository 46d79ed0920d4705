"""Run a notebook cell on a DevServer: output streams back as it is written, ^C stops the remote side.

How a cell travels. The command line is a short bootstrap (``python3 -u -c BOOT ...``) that reads the
*runner* below and then the cell from stdin, by byte count. Nothing of the cell goes into the command
line: exec arguments travel in the URL, and proxies, the API server and the local cluster limit its
length (aiohttp: 8 KiB), while cells have no such limit.

Why stdin stays open. Once the cell is read, stdin becomes a *lifeline*: the runner moves it to another
descriptor (the cell sees ``/dev/null``) and a thread waits for its end of file, which comes only when
the client hangs up: the kernel was interrupted, the ``--timeout`` passed, or the notebook went away.
The runner then does what ^C in a terminal does (SIGINT to its process group, so the cell gets a
``KeyboardInterrupt``) and, if that is not enough after ``GRACE`` seconds, SIGKILL. The local cluster kills
an exec's process group when its client leaves; a real kubelet does not, it only closes stdin, so this
is what makes "interrupt stops the remote process" true on EKS too.

The cell runs in a fresh ``__main__`` module with its source registered in ``linecache``, so a remote
traceback names ``<cell>`` with the offending line, without the runner's own frames. A shell cell is
written to a temporary file and run by ``bash`` (``sh`` if there is no bash) in the same process group.

The runner is Python 3.6-compatible: it runs in the DevServer's image, whatever its Python is.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.errors import ExecError

__all__ = [
    "BOOT",
    "CELL_FILENAME",
    "GRACE",
    "RUNNER",
    "CellResult",
    "command",
    "exec_failure_message",
    "payload",
    "run_cell",
]

CellKind = Literal["python", "shell"]


class TextSink(Protocol):
    """Where output goes: ``sys.stdout``, a kernel's stream, anything with ``write`` and ``flush``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


CELL_FILENAME = "<cell>"
GRACE = 3.0
"""Seconds between the SIGINT and the SIGKILL the runner sends its process group when the client leaves."""

BOOT = (
    "import os,sys\n"
    "n=int(sys.argv[1]);b=b''\n"
    "while len(b)<n:\n"
    " c=os.read(0,n-len(b))\n"
    " if not c:os._exit(130)\n"
    " b+=c\n"
    "exec(compile(b,'<devservers-runner>','exec'))\n"
)

RUNNER = r"""
import atexit, os, signal, sys, threading, time

GRACE = __GRACE__
CELL_FILENAME = __CELL_FILENAME__


def _read_exactly(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            os._exit(130)  # the client left before the whole cell arrived
        data += chunk
    return data


def _signal_group(signum):
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signum)
        else:
            os.kill(os.getpid(), signum)
    except OSError:
        pass


_hung_up = []


def _watch(lifeline):
    try:
        while os.read(lifeline, 65536):
            pass
    except OSError:
        pass
    # End of file: the notebook hung up (interrupt, timeout, kernel gone). Do what ^C does, then insist.
    _hung_up.append(True)
    _signal_group(signal.SIGINT)
    time.sleep(GRACE)
    _signal_group(signal.SIGKILL)


def _at_exit():
    # Nobody is listening any more: what survived ^C (background jobs ignore it) goes with the runner.
    if _hung_up:
        _signal_group(signal.SIGKILL)


def _run_python(source):
    import linecache, traceback, types
    linecache.cache[CELL_FILENAME] = (len(source), None, source.splitlines(True), CELL_FILENAME)
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    sys.argv = [""]
    try:
        exec(compile(source, CELL_FILENAME, "exec"), module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != CELL_FILENAME:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 1)


def _run_shell(source):
    import shutil, subprocess, tempfile
    fd, path = tempfile.mkstemp(prefix="devserver-cell-", suffix=".sh")
    try:
        with os.fdopen(fd, "wb") as script:
            script.write(source.encode("utf-8"))
        # ^C is for the script (the handler is reset in the child); the runner only reports how it ended.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        code = subprocess.call([shutil.which("bash") or "/bin/sh", path], stdin=subprocess.DEVNULL)
    finally:
        os.unlink(path)
    return code if code >= 0 else 128 - code


def _main():
    kind, size = sys.argv[2], int(sys.argv[3])
    source = _read_exactly(size).decode("utf-8")
    lifeline = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        os.setpgid(0, 0)  # lead a process group, so ^C and the kill reach what the cell starts
    except OSError:
        pass  # already a session leader, hence a group leader
    atexit.register(_at_exit)
    watcher = threading.Thread(target=_watch, args=(lifeline,))
    watcher.daemon = True
    watcher.start()
    if kind == "shell":
        sys.exit(_run_shell(source))
    _run_python(source)


_main()
""".replace("__GRACE__", repr(GRACE)).replace("__CELL_FILENAME__", repr(CELL_FILENAME))


def command(kind: CellKind, cell: bytes, *, python: str = "python3") -> list[str]:
    """The argv that runs the bootstrap; ``payload`` is what must then be written to its stdin."""
    return [python, "-u", "-c", BOOT, str(len(RUNNER.encode())), kind, str(len(cell))]


def payload(cell: bytes) -> bytes:
    return RUNNER.encode() + cell


@dataclass(frozen=True)
class CellResult:
    """How a remote cell ended: its exit status and the end of its standard error."""

    returncode: int
    stderr_tail: str = ""

    def interpreter_missing(self, python: str) -> bool:
        """The interpreter itself could not be run (exit 126/127 with the runtime's "not found" message)."""
        tail = self.stderr_tail.lower()
        return self.returncode in (126, 127) and python.lower() in tail and "not found" in tail


def run_cell(
    client: DevServerClient,
    name: str,
    source: str,
    *,
    kind: CellKind = "python",
    rank: int = 0,
    timeout: float | None = None,
    python: str = "python3",
    stdout: TextSink | None = None,
    stderr: TextSink | None = None,
) -> CellResult:
    """Run ``source`` on rank ``rank`` of DevServer ``name``, writing its output as it arrives.

    Each chunk is written to ``stdout``/``stderr`` (default: ``sys.stdout``/``sys.stderr`` at call time,
    which in a kernel are the cell's output) and flushed at once.

    Returns:
        The remote exit status (0 is success) and the last 2 KiB of standard error.

    Raises:
        KeyboardInterrupt: after hanging up, which stops the remote process.
        DevServerError: from the SDK (see ``exec_failure_message`` for ``ExecError``).
    """
    out, err = stdout or sys.stdout, stderr or sys.stderr
    cell = source.encode("utf-8")
    read_fd, write_fd = os.pipe()
    stdin = os.fdopen(read_fd, "rb", buffering=0)
    feeder = threading.Thread(
        target=_feed, args=(write_fd, payload(cell)), name="devserver-cell-feed", daemon=True
    )
    tail = ""
    try:
        stream = client.exec_stream(
            name, command(kind, cell, python=python), rank=rank, stdin=stdin, timeout=timeout
        )
        feeder.start()
        with stream:
            for channel, chunk in stream:
                text = str(chunk)  # text=True: chunks are str
                if channel == "stdout":
                    out.write(text)
                    out.flush()
                else:
                    err.write(text)
                    err.flush()
                    tail = (tail + text)[-2048:]
        return CellResult(stream.returncode if stream.returncode is not None else -1, tail)
    finally:
        stdin.close()  # a feeder still writing gets EPIPE and ends
        if feeder.is_alive():
            feeder.join(5.0)
        os.close(write_fd)  # only now: its end of file would tell the runner to stop


def _feed(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass


def exec_failure_message(exc: ExecError, *, name: str, rank: int, timeout: float | None, python: str) -> str:
    """One sentence for an ``ExecError`` of ``run_cell`` (the SDK's would quote the whole bootstrap)."""
    where = f"DevServer '{name}' (rank {rank})"
    result = exc.result
    if result is None:
        return (
            f"The cell did not finish within {timeout:g}s on {where}; the remote process was stopped. "
            f"Raise --timeout, or leave it out for no limit."
        )
    stderr = result.stderr.decode("utf-8", "replace") if isinstance(result.stderr, bytes) else result.stderr
    if result.returncode in (126, 127):
        return (
            f"Could not start {python!r} on {where}: {stderr.strip() or 'not found'}. Choose the remote "
            f"interpreter with: %config DevServerMagics.python = 'python3'"
        )
    return (
        f"The connection to {where} ended before the cell reported an exit status; the cell may still "
        f"be running there. Retry; if it persists, check the DevServer with: %devserver describe {name}"
    )
