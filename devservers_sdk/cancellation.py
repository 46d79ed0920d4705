"""Stopping a wait from another thread: ``Cancellation``.

Ctrl-C reaches a wait in the main thread as ``KeyboardInterrupt`` (every blocking read of the SDK is a
system call Python interrupts to run the signal handler; ``tests/sdk/test_interrupt.py`` holds it to that).
A wait in a background thread, a notebook widget's create or a dashboard's follow of a namespace, gets no
signal: whoever started it holds a ``Cancellation`` instead and calls ``cancel()``.

Cancelling does not poll. While a watch stream is open, the stream registers a hook that shuts its socket
down (``on_cancel``); ``cancel()`` runs it, the blocked read returns at once, and the waiting call raises
``WaitCancelledError``. Between streams (a retry pause) the wait sleeps on the same event, so it wakes too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

__all__ = ["Cancellation"]

log = logging.getLogger(__name__)


class Cancellation:
    """A one-way switch shared by a waiting call and whoever may stop it.

    Example:
        >>> cancel = Cancellation()  # doctest: +SKIP
        >>> threading.Thread(target=client.wait, args=("mydev",), kwargs={"cancel": cancel}).start()  # doctest: +SKIP
        >>> cancel.cancel()  # the wait raises WaitCancelledError at once  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        return f"Cancellation(cancelled={self.cancelled})"

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Stop the waits that hold this (their blocked reads end now); later waits stop at their start."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # a stream that ended meanwhile: nothing left to interrupt
                log.debug("cancel hook %r failed", hook, exc_info=True)

    def sleep(self, seconds: float) -> bool:
        """Pause up to ``seconds``; returns early, ``True``, when cancelled."""
        return self._event.wait(max(0.0, seconds))

    @contextlib.contextmanager
    def on_cancel(self, hook: Callable[[], object]) -> Iterator[None]:
        """Run ``hook`` if ``cancel()`` is called while the block runs (at once if it already was)."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._hooks.append(hook)
        if already:
            with contextlib.suppress(Exception):
                hook()
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._hooks.remove(hook)
