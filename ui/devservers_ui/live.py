"""One watch for every open page: the SDK's ``watch()`` in a thread, its rows fanned out to browsers.

A page that opened the list 200 times must not open 200 watches on the API server; and the first paint
of the list must not wait for a LIST. So one thread follows ``DevServerClient.watch()`` for the whole
dashboard (every namespace with ``-A``, which is why this is not the SDK's one-namespace
``LiveDevServers``), keeps the current rows, and hands every change to the event loop, where each
subscriber (one ``/events`` stream per browser tab) has its own queue. A subscriber that stops reading is
dropped rather than allowed to hold memory.

The first picture is complete when the watch has shown every DevServer a plain LIST found just before it
started; the list page waits for that (briefly), so its first paint is the whole list, not a part.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devservers_sdk import views

if TYPE_CHECKING:
    from devservers_sdk import DevServer, DevServerClient

__all__ = ["LiveList", "Subscriber", "row"]

_QUEUE_LIMIT = 10_000
_RETRY_PAUSE = 1.0


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")


def row(server: DevServer) -> dict[str, Any]:
    """What the list shows of one DevServer (and what a server page needs to update itself live)."""
    status, spec = server.status, server.spec
    return {
        "namespace": server.namespace or "",
        "name": server.name,
        "owner": spec.owner,
        "flavor": spec.flavor,
        "mode": spec.mode,
        "phase": status.phase or "Pending",
        "ready": views.ready_text(server),
        "expiresAt": _iso(views.expires_at(server)),
        "lastActivity": _iso(status.last_activity_time),
        "message": status.message or "",
        "resourceVersion": server.metadata.resource_version or "",
        "deleting": server.metadata.deletion_timestamp is not None,
    }


@dataclass(eq=False)  # compared by identity: each browser tab is its own
class Subscriber:
    """One browser's stream: the changes it has not been sent yet."""

    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(_QUEUE_LIMIT))
    dropped: bool = False


class LiveList:
    """The DevServers the dashboard shows, kept current by one SDK watch.

    Args:
        client: the client whose namespace is watched.
        all_namespaces: watch every namespace instead.
    """

    def __init__(self, client: DevServerClient, *, all_namespaces: bool) -> None:
        from devservers_sdk import Cancellation

        self._client = client
        self._all_namespaces = all_namespaces
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.error: str | None = None
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listed: asyncio.Event | None = None
        self._answered: asyncio.Event | None = None
        self._expected: set[tuple[str, str]] | None = None
        self._confirmed: set[tuple[str, str]] = set()
        self._cancel = Cancellation()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (from the event loop that will serve the pages)."""
        self._loop = asyncio.get_running_loop()
        self._listed = asyncio.Event()
        self._answered = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="devservers-ui-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching: the SDK shuts the watch's socket down, so the thread ends at once."""
        self._cancel.cancel()

    async def listed(self, timeout: float) -> bool:
        """Wait until the first picture is complete, or the watch failed (``error`` says why), or ``timeout``;
        whether the picture is complete."""
        assert self._answered is not None and self._listed is not None, "start() first"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._answered.wait()
        return self._listed.is_set()

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def sorted_rows(self) -> list[dict[str, Any]]:
        return [self.rows[key] for key in sorted(self.rows)]

    # -- the watch thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        from devservers_sdk import DevServerError, WaitCancelledError

        failures = 0
        while not self._cancel.cancelled:
            try:
                present = self._client.list(all_namespaces=self._all_namespaces)
                self._hand_over(self._expect, {(server.namespace or "", server.name) for server in present})
                for event, server in self._client.watch(all_namespaces=self._all_namespaces, cancel=self._cancel):
                    failures = 0
                    self._hand_over(self._apply, event, row(server))
            except WaitCancelledError:
                return
            except DevServerError as exc:
                self._hand_over(self._failed, str(exc))
                failures += 1
            if self._cancel.sleep(min(_RETRY_PAUSE * 2 ** failures, 30.0)):
                return

    def _hand_over(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed while this thread was reading
            self._loop.call_soon_threadsafe(callback, *args)

    # -- on the event loop ---------------------------------------------------------------------------

    def _expect(self, keys: set[tuple[str, str]]) -> None:
        """A (re)start of the watch: these exist; rows the watch does not confirm are dropped once it has."""
        self._expected = set(keys)
        self._confirmed = set()
        self._check_listed()

    def _check_listed(self) -> None:
        if self._expected is None or not self._expected <= self._confirmed:
            return
        # After a failed watch the list starts again: what it no longer has was deleted meanwhile.
        for key in [key for key in self.rows if key not in self._confirmed]:
            del self.rows[key]
        self._expected = None
        self.error = None
        assert self._listed is not None and self._answered is not None
        self._listed.set()
        self._answered.set()
        self._publish({"type": "SYNCED", "rows": self.sorted_rows()})

    def _failed(self, message: str) -> None:
        self.error = message
        assert self._answered is not None
        self._answered.set()
        self._publish({"type": "ERROR", "message": message})

    def _apply(self, event: str, item: dict[str, Any]) -> None:
        key = (item["namespace"], item["name"])
        if event == "DELETED":
            self.rows.pop(key, None)
        else:
            self.rows[key] = item
        self._publish({"type": event, "row": item})
        if self._expected is not None:
            self._confirmed.add(key)
            if event == "DELETED":
                self._expected.discard(key)
            self._check_listed()

    def _publish(self, message: dict[str, Any]) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self._subscribers.discard(subscriber)
