"""Helpers shared by the magics tests (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

READY_TIMEOUT = 90.0
"""Seconds the operator gets to bring a DevServer to Running."""


def the_ipython_shell() -> Any:
    """The process's one IPython shell, with the extension loaded, whichever test asks first.

    IPython allows one shell per process, and ``start_ipython()`` returns it to its first caller only (None
    after that), so every suite that needs the shell takes it here, never from ``start_ipython`` itself.
    """
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing.globalipapp import start_ipython

    start_ipython()  # makes the shell the way IPython's own tests have it, the first time only
    shell = TerminalInteractiveShell.instance()
    shell.run_line_magic("load_ext", "devservers_magics")
    return shell


@contextlib.contextmanager
def shell_pointed_at(shell: Any, kubeconfig: str, namespace: str) -> Iterator[Any]:
    """``shell`` with the magics configured, through ``%config``, for one cluster and namespace, and reset
    afterwards: the shell is the process's one, shared by every test."""
    shell.run_line_magic("config", f"DevServerMagics.kubeconfig = {kubeconfig!r}")
    shell.run_line_magic("config", f"DevServerMagics.namespace = {namespace!r}")
    try:
        yield shell
    finally:
        shell.run_line_magic("config", "DevServerMagics.namespace = None")
        shell.run_line_magic("config", "DevServerMagics.kubeconfig = None")


class Recorder(io.TextIOBase):
    """A text stream that keeps every write with the time it arrived."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.writes)

    def first(self, needle: str) -> float:
        """When the output first contained ``needle``."""
        seen = ""
        for moment, text in self.writes:
            seen += text
            if needle in seen:
                return moment
        raise AssertionError(f"{needle!r} never written; got {seen!r}")


@dataclass
class CellRun:
    result: Any
    stdout: Recorder
    stderr: Recorder

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.1, message: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message or predicate!r} (last value: {last!r})")
