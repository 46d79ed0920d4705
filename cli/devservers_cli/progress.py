"""Live progress while waiting for a DevServer: phase, ready ranks and what the operator last said.

It is the ``on_progress`` callback of ``DevServerClient.wait`` and writes to stderr, so that stdout stays
clean for ``-o name`` and scripts. On a terminal one status line is redrawn with a spinner and the time
spent (a small thread keeps the clock moving between changes), and a line is kept for every change of
phase, so the history stays on screen. Elsewhere (CI logs, pipes) each change is one plain line.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING

from .render import ready, status_message

if TYPE_CHECKING:
    from devservers_sdk.models import DevServer

_SPINNER = "|/-\\"
_TICK = 0.1
_CLEAR = "\r\x1b[K"


class WaitProgress:
    """Use as a context manager around the wait, and pass the instance as ``on_progress``."""

    def __init__(self, stream: IO[str], *, live: bool | None = None) -> None:
        self._stream = stream
        self._live = stream.isatty() if live is None else live
        self._start = time.monotonic()
        self._line = ""
        self._phase: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, server: DevServer) -> None:
        phase = server.status.phase or "Pending"
        message = status_message(server)
        line = f"{phase:<11} {ready(server)} ready" + (f"   {message}" if message else "")
        with self._lock:
            if line == self._line:
                return
            if self._live:
                if self._phase is not None and phase != self._phase:
                    self._stream.write(f"{_CLEAR}{self._stamp()} {self._line}\n")  # keep the finished phase
                self._line, self._phase = line, phase
                self._draw()
            else:
                self._line, self._phase = line, phase
                self._stream.write(f"{self._stamp()} {line}\n")
            self._stream.flush()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._start:6.1f}s]"

    def _draw(self) -> None:
        spin = _SPINNER[int((time.monotonic() - self._start) / _TICK) % len(_SPINNER)]
        self._stream.write(f"{_CLEAR}{spin} {self._stamp()} {self._line}")

    def _tick(self) -> None:
        while not self._done.wait(_TICK):
            with self._lock:
                if self._line:
                    self._draw()
                    self._stream.flush()

    def __enter__(self) -> WaitProgress:
        if self._live:
            self._ticker = threading.Thread(target=self._tick, name="devctl-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._live and self._line:
            with self._lock:
                self._stream.write(f"{_CLEAR}{self._stamp()} {self._line}\n")
                self._stream.flush()
