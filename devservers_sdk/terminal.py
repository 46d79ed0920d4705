"""The local terminal during ``shell``: raw mode and window-size tracking, undone on exit whatever happens.

Nothing here knows about Kubernetes or DevServers; ``exec.attach`` relays an exec session through it.
Kept apart from ``exec`` because it is the one part that touches the user's own terminal (termios, SIGWINCH).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from types import TracebackType
from typing import Any

__all__ = ["Terminal", "write_all"]


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class Terminal:
    """Raw mode and window-size tracking for ``shell``, undone on exit whatever happens."""

    def __init__(self, in_fd: int, out_fd: int, *, enabled: bool) -> None:
        self.in_fd, self.out_fd, self.enabled = in_fd, out_fd, enabled
        self.wakeup_fd: int | None = None
        self._wakeup_write: int | None = None
        self._saved: Any = None
        self._old_handler: Any = None
        self._handler_installed = False

    @property
    def size(self) -> tuple[int, int] | None:
        if not self.enabled:
            return None
        for fd in (self.out_fd, self.in_fd):
            with contextlib.suppress(OSError):
                columns, lines = os.get_terminal_size(fd)
                return columns, lines
        return None

    def drain_resize(self) -> tuple[int, int] | None:
        if self.wakeup_fd is not None:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wakeup_fd, 4096)
        return self.size

    def __enter__(self) -> Terminal:
        if not self.enabled:
            return self
        import termios
        import tty

        self._saved = termios.tcgetattr(self.in_fd)
        tty.setraw(self.in_fd, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed ahead
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGWINCH"):
            self.wakeup_fd, self._wakeup_write = os.pipe()
            os.set_blocking(self.wakeup_fd, False)
            os.set_blocking(self._wakeup_write, False)
            write_fd = self._wakeup_write

            def on_resize(signum: int, frame: Any) -> None:
                with contextlib.suppress(OSError):
                    os.write(write_fd, b"w")

            self._old_handler = signal.signal(signal.SIGWINCH, on_resize)
            self._handler_installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.enabled:
            return
        import termios

        if self._handler_installed:
            signal.signal(signal.SIGWINCH, self._old_handler if self._old_handler is not None else signal.SIG_DFL)
        for fd in (self.wakeup_fd, self._wakeup_write):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)

