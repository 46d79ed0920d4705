"""``LiveDevServers``: the DevServers of a namespace, kept current by a watch in a background thread.

Front ends that stay on screen (the notebook widget, the dashboard) must show what the cluster holds now,
whoever changed it (a click, ``devctl stop`` in a terminal, the operator's idle stop), not what their last
call returned. This is the one place that knows how: ``DevServerClient.watch`` in a daemon thread, the
current set in a dict, and a callback per change. The front end only renders what it is handed.

The thread never dies of a failure: an error is reported (``on_error``), then the watch starts again after
a pause that doubles up to 30 s; the first event after it clears the error (``on_error(None)``). ``close()``
cancels the watch (its socket is shut down, see ``cancellation.py``), so the thread ends within moments.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .cancellation import Cancellation
from .errors import DevServerError, WaitCancelledError

if TYPE_CHECKING:
    from .client import DevServerClient
    from .models import DevServer

__all__ = ["LiveDevServers"]

log = logging.getLogger(__name__)

EventCallback = Callable[[str, "DevServer"], object]
ErrorCallback = Callable[[DevServerError | None], object]


class LiveDevServers:
    """The DevServers of the client's namespace (or one owner's of them), followed in a thread.

    Args:
        client: the ``DevServerClient`` to watch with (its namespace is followed).
        owner: only this owner's DevServers (``None``: everyone's in the namespace).
        on_event: called from the thread with ``(event, DevServer)`` for every change, after ``servers``
            has it (``ADDED``, ``MODIFIED`` or ``DELETED``).
        on_error: called from the thread with the error when following fails (it is retried), and with
            ``None`` once it works again.

    Example:
        >>> live = LiveDevServers(client, owner=client.owner,  # doctest: +SKIP
        ...                       on_event=lambda event, server: print(event, server.name))
        >>> live.start(); ...; live.close()  # doctest: +SKIP
    """

    RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

    def __init__(self, client: DevServerClient, *, owner: str | None = None,
                 on_event: EventCallback | None = None, on_error: ErrorCallback | None = None) -> None:
        self._client = client
        self._owner = owner
        self._on_event = on_event
        self._on_error = on_error
        self._servers: dict[str, DevServer] = {}
        self._lock = threading.Lock()
        self._cancel = Cancellation()
        self._thread: threading.Thread | None = None
        self.error: DevServerError | None = None
        """The failure that currently stops following, if any."""

    def __repr__(self) -> str:
        return f"LiveDevServers(namespace={self._client.namespace!r}, owner={self._owner!r}, {len(self)} servers)"

    def __len__(self) -> int:
        return len(self._servers)

    @property
    def servers(self) -> list[DevServer]:
        """The DevServers as last seen, sorted by name."""
        with self._lock:
            return [self._servers[name] for name in sorted(self._servers)]

    def get(self, name: str) -> DevServer | None:
        with self._lock:
            return self._servers.get(name)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveDevServers:
        """Start following (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="devservers-live", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop following; waits up to ``timeout`` seconds for the thread to end."""
        self._cancel.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> LiveDevServers:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _follow(self) -> None:
        failures = 0
        while not self._cancel.cancelled:
            try:
                for event, server in self._client.watch(owner=self._owner, cancel=self._cancel):
                    if failures or self.error is not None:
                        failures = 0
                        self._report(None)
                    self._apply(event, server)
                # an endless watch only ends by cancellation or an error
            except WaitCancelledError:
                return
            except DevServerError as exc:
                self._report(exc)
                pause = self.RETRY_PAUSES[min(failures, len(self.RETRY_PAUSES) - 1)]
                failures += 1
                if self._cancel.sleep(pause):
                    return
            except Exception:  # a bug must not end the thread silently: log it and keep following
                log.exception("following DevServers failed")
                if self._cancel.sleep(self.RETRY_PAUSES[-1]):
                    return

    def _apply(self, event: str, server: DevServer) -> None:
        with self._lock:
            if event == "DELETED":
                self._servers.pop(server.name, None)
            else:
                current = self._servers.get(server.name)
                if current is not None and _version(current) == _version(server) and event == "ADDED":
                    return  # the same object again (a relist after a new stream): nothing changed
                self._servers[server.name] = server
        if self._on_event is not None:
            try:
                self._on_event(event, server)
            except Exception:
                log.exception("the on_event callback of LiveDevServers failed")

    def _report(self, error: DevServerError | None) -> None:
        self.error = error
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("the on_error callback of LiveDevServers failed")


def _version(server: DevServer) -> str | None:
    return server.metadata.resource_version
