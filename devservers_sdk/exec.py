"""Running commands in a DevServer's pods over ``pods/exec``: collected (``run``), streamed (``stream``), or
attached to this terminal (``attach``).

``DevServerClient.exec``, ``exec_stream`` and ``shell`` find the pod and record activity; everything about
the session itself (feeding stdin as the socket drains, decoding, deadlines, telling a command that could
not start from one that failed) lives here. Nothing here knows how the pod was found: a caller passes
``open_session`` (the kube layer's ``exec`` bound to a namespace) and ``find_pod``, called once the command
is known to be well formed.
"""

from __future__ import annotations

import codecs
import io
import os
import shlex
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Protocol

from .activity import ActivityHeartbeat
from .errors import ExecError, InvalidSpecError
from .kube import STDERR, STDIN, STDOUT, ExecSession, Message
from .terminal import Terminal, write_all

__all__ = [
    "DEFAULT_SHELL",
    "ExecResult",
    "ExecStream",
    "OpenSession",
    "StdinSource",
    "attach",
    "command_argv",
    "run",
    "stream",
]

# Interactive, not a login shell: a login shell sources /etc/profile, which resets PATH to the distribution's
# default, so `python` from the image's PATH (conda, a venv) was "command not found" in `devctl shell NAME`
# while `devctl shell NAME -- python` found it. An interactive shell inherits the container's environment.
DEFAULT_SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi"]

_STDIN_CHUNK = 256 * 1024  # one WebSocket frame each
_STDIN_BACKLOG = 2 * 1024 * 1024
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

StdinSource = bytes | bytearray | memoryview | str | IO[bytes] | IO[str] | Iterable[bytes]


class OpenSession(Protocol):
    """The kube layer's ``exec``, already bound to a namespace."""

    def __call__(self, pod: str, argv: Sequence[str], /, *, container: str | None = None, stdin: bool = False,
                 tty: bool = False) -> ExecSession: ...


@dataclass
class ExecResult:
    """What a command run with ``exec`` did, shaped like ``subprocess.CompletedProcess``.

    Attributes:
        args: the command as given.
        returncode: its exit status (0 is success).
        stdout: its standard output; ``str`` (UTF-8, undecodable bytes replaced) when ``text=True``, the
            default, else ``bytes``.
        stderr: its standard error, likewise.
        devserver: the DevServer it ran in.
        pod: the pod it ran in.
    """

    args: str | list[str]
    returncode: int
    stdout: str | bytes
    stderr: str | bytes
    devserver: str = ""
    pod: str = ""

    def check_returncode(self) -> None:
        """Raise ``ExecError`` if the command exited non-zero (as ``CompletedProcess.check_returncode``)."""
        if self.returncode != 0:
            raise ExecError(_exit_message(self), result=self, kind="DevServer", name=self.devserver)



def _exit_message(result: ExecResult) -> str:
    command = result.args if isinstance(result.args, str) else shlex.join(result.args)
    where = f" in DevServer '{result.devserver}'" if result.devserver else ""
    message = f"Command `{command}` exited with code {result.returncode}{where}"
    stderr = result.stderr.decode("utf-8", "replace") if isinstance(result.stderr, bytes) else result.stderr
    tail = stderr.strip().splitlines()[-3:]
    return message + (": " + " / ".join(tail) if tail else ".")


def _stdin_chunks(stdin: Any) -> Iterator[bytes]:
    """Chunks of bytes from a file (read lazily) or an iterable (``bytes`` and ``str`` go to ``send_all``)."""
    read = getattr(stdin, "read", None)
    if read is not None:
        while True:
            chunk = read(_STDIN_CHUNK)
            if not chunk:
                return
            yield chunk.encode() if isinstance(chunk, str) else chunk
    for chunk in stdin:
        yield chunk.encode() if isinstance(chunk, str) else chunk


def _drive(session: ExecSession, stdin: StdinSource | None, deadline: float | None) -> Iterator[Message]:
    """Drive a session to its end: feed stdin as the socket drains, yield ``(channel, data)`` as it arrives.

    Raises:
        TimeoutError: the deadline passed (the session is closed, which kills the command).
    """
    fd = _pipe_fd(stdin)
    chunks = _stdin_chunks(stdin) if stdin is not None and fd is None else None
    stdin_open = stdin is not None
    if isinstance(stdin, bytes | bytearray | memoryview | str):
        session.send_all(STDIN, stdin.encode() if isinstance(stdin, str) else bytes(stdin), then_close=True)
        chunks, stdin_open = None, False
    try:
        while not session.closed:
            if stdin_open and chunks is not None:
                while session.backlog < _STDIN_BACKLOG:
                    chunk = next(chunks, None)
                    if chunk is None:
                        session.close_stdin()
                        stdin_open = False
                        break
                    if chunk:
                        session.send(STDIN, chunk)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if deadline is not None and wait == 0.0:
                raise TimeoutError
            read_fds = [fd] if fd is not None and stdin_open and session.backlog < _STDIN_BACKLOG else []
            messages, ready = session.pump(wait, read_fds=read_fds, hungry=stdin_open and chunks is not None)
            if ready and fd is not None:
                data = os.read(fd, _STDIN_CHUNK)
                if data:
                    session.send(STDIN, data)
                else:
                    session.close_stdin()
                    stdin_open = False
            yield from messages
    finally:
        session.close()


def _pipe_fd(stdin: Any) -> int | None:
    """The descriptor of a stdin that is a pipe, socket or terminal (read as data arrives, not in blocks)."""
    fileno = getattr(stdin, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = int(fileno())
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) else None


class ExecStream:
    """Output of ``exec_stream`` as it arrives: iterate for ``(stream, chunk)``, then read ``returncode``.

    ``stream`` is ``"stdout"`` or ``"stderr"``; ``chunk`` is ``str`` (``text=True``) or ``bytes``. Use it as
    a context manager (or call ``close``) to hang up early, which stops the command.

    Attributes:
        args: the command as given.
        returncode: the exit status once the iteration is over, else ``None``.
        pod: the pod it runs in.
    """

    def __init__(self, messages: Iterator[Message], *, args: str | list[str], text: bool, check: bool,
                 devserver: str, pod: str, session: ExecSession, heartbeat: ActivityHeartbeat,
                 command_failed: Callable[[ExecSession], ExecError | None]) -> None:
        self.args = args
        self.pod = pod
        self.devserver = devserver
        self.returncode: int | None = None
        self._messages = messages
        self._text = text
        self._check = check
        self._session = session
        self._heartbeat = heartbeat
        self._command_failed = command_failed
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        self._stderr_tail = b""
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, str | bytes]]:
        try:
            for channel, data in self._messages:
                stream = _STREAM_NAMES.get(channel)
                if stream is None or not data:
                    continue
                if stream == "stderr":
                    self._stderr_tail = bytes(self._stderr_tail + data)[-4096:]
                yield (stream, self._decoders[stream].decode(data) if self._text else bytes(data))
            self._finish()
        finally:
            self.close()

    def _finish(self) -> None:
        failure = self._command_failed(self._session)
        if failure is not None:
            raise failure
        self.returncode = self._session.exit_code
        if self._check and self.returncode:
            result = ExecResult(self.args, self.returncode, "", self._stderr_tail.decode("utf-8", "replace"),
                                devserver=self.devserver, pod=self.pod)
            result.check_returncode()

    def close(self) -> None:
        """Hang up: the command is killed if it is still running."""
        if self._closed:
            return
        self._closed = True
        self._session.close()
        self._heartbeat.__exit__(None, None, None)

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

def command_argv(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    argv = [str(part) for part in command]
    if not argv:
        raise InvalidSpecError("The command is empty: pass a list such as ['python', 'train.py'] or a string.")
    return argv


def command_failed(session: ExecSession, argv: list[str], name: str, pod: str) -> ExecError | None:
    failure = session.failure
    if failure is None:
        if session.status is None and session.exit_code is None:
            result = ExecResult(argv, -1, "", "", devserver=name, pod=pod)
            return ExecError(f"The connection to pod {pod} of DevServer '{name}' ended before `{shlex.join(argv)}` "
                             f"reported an exit status. Retry; if it persists, check the cluster.",
                             result=result, kind="DevServer", name=name)
        return None
    code = 127 if "not found" in failure else 126
    result = ExecResult(argv, code, "", failure, devserver=name, pod=pod)
    return ExecError(f"Could not run `{shlex.join(argv)}` in DevServer '{name}' (pod {pod}): {failure}. "
                     f"Check that the command exists in the image.", result=result, kind="DevServer", name=name)

def _decode(stdout: io.BytesIO, stderr: io.BytesIO, text: bool) -> tuple[str | bytes, str | bytes]:
    out, err = stdout.getvalue(), stderr.getvalue()
    if text:
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return out, err

def _default_shell() -> list[str]:
    term = os.environ.get("TERM")
    return ["env", f"TERM={term}", *DEFAULT_SHELL] if term else list(DEFAULT_SHELL)


def _relay(session: ExecSession, terminal: Terminal, in_fd: int, out_fd: int) -> None:
    reading = True
    try:
        while not session.closed:
            fds = [terminal.wakeup_fd] if terminal.wakeup_fd is not None else []
            if reading and session.backlog < _STDIN_BACKLOG:
                fds.append(in_fd)
            messages, ready = session.pump(None, read_fds=fds)
            if terminal.wakeup_fd is not None and terminal.wakeup_fd in ready:
                size = terminal.drain_resize()
                if size:
                    session.resize(*size)
            if in_fd in ready:
                data = os.read(in_fd, 65536)
                if data:
                    session.send(STDIN, data)
                else:
                    session.close_stdin()
                    reading = False
            for channel, output in messages:
                if channel in (STDOUT, STDERR) and output:
                    write_all(out_fd if channel == STDOUT or terminal.enabled else 2, output)
    finally:
        session.close()




def run(open_session: OpenSession, command: str | Sequence[str], *, devserver: str, find_pod: Callable[[], str],
        record_activity: Callable[[], object], stdin: StdinSource | None = None, timeout: float | None = None,
        check: bool = False, text: bool = True, container: str | None = None) -> ExecResult:
    """Run a command to its end and collect its output (``DevServerClient.exec`` documents the arguments)."""
    argv = command_argv(command)
    pod = find_pod()
    stdout, stderr = io.BytesIO(), io.BytesIO()
    deadline = None if timeout is None else time.monotonic() + timeout
    with ActivityHeartbeat(record_activity):
        session = open_session(pod, argv, container=container, stdin=stdin is not None)
        session.sinks.update({STDOUT: stdout, STDERR: stderr})
        try:
            for _ in _drive(session, stdin, deadline):
                pass  # all output goes to the sinks
        except TimeoutError:
            partial = ExecResult(command if isinstance(command, str) else argv, -9,
                                 *_decode(stdout, stderr, text), devserver=devserver, pod=pod)
            raise ExecError(f"Command `{shlex.join(argv)}` in DevServer '{devserver}' did not finish within "
                            f"{timeout:g}s and was stopped.", result=partial, kind="DevServer",
                            name=devserver) from None
    failure = command_failed(session, argv, devserver, pod)
    if failure is not None:
        raise failure
    returncode = session.exit_code
    result = ExecResult(command if isinstance(command, str) else argv,
                        returncode if returncode is not None else -1,
                        *_decode(stdout, stderr, text), devserver=devserver, pod=pod)
    if check:
        result.check_returncode()
    return result


def stream(open_session: OpenSession, command: str | Sequence[str], *, devserver: str, find_pod: Callable[[], str],
           record_activity: Callable[[], object], stdin: StdinSource | None = None, timeout: float | None = None,
           check: bool = False, text: bool = True, container: str | None = None) -> ExecStream:
    """Start a command and hand back its output as it arrives (``DevServerClient.exec_stream`` documents it)."""
    argv = command_argv(command)
    pod = find_pod()
    heartbeat = ActivityHeartbeat(record_activity).__enter__()
    try:
        session = open_session(pod, argv, container=container, stdin=stdin is not None)
    except BaseException:
        heartbeat.__exit__(None, None, None)
        raise
    deadline = None if timeout is None else time.monotonic() + timeout

    def messages() -> Iterator[Message]:
        try:
            yield from _drive(session, stdin, deadline)
        except TimeoutError:
            raise ExecError(f"Command `{shlex.join(argv)}` in DevServer '{devserver}' did not finish within "
                            f"{timeout:g}s and was stopped.", kind="DevServer", name=devserver) from None

    return ExecStream(messages(), args=command if isinstance(command, str) else argv, text=text,
                      check=check, devserver=devserver, pod=pod, session=session, heartbeat=heartbeat,
                      command_failed=lambda s: command_failed(s, argv, devserver, pod))


def attach(open_session: OpenSession, command: str | Sequence[str] | None, *, devserver: str, find_pod: Callable[[], str],
           record_activity: Callable[[], object], container: str | None = None, stdin: IO[Any] | None = None,
           stdout: IO[Any] | None = None) -> int:
    """Relay this terminal to a command until it exits; its exit status (``DevServerClient.shell`` documents it)."""
    in_stream, out_stream = stdin or sys.stdin, stdout or sys.stdout
    in_fd, out_fd = in_stream.fileno(), out_stream.fileno()
    tty = os.isatty(in_fd)
    argv = command_argv(command) if command is not None else _default_shell()
    pod = find_pod()
    with ActivityHeartbeat(record_activity):
        session = open_session(pod, argv, container=container, stdin=True, tty=tty)
        with Terminal(in_fd, out_fd, enabled=tty) as terminal:
            if terminal.size:
                session.resize(*terminal.size)
            _relay(session, terminal, in_fd, out_fd)
    failure = command_failed(session, argv, devserver, pod)
    if failure is not None:
        raise failure
    code = session.exit_code
    return code if code is not None else 1
