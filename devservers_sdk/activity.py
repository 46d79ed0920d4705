"""Telling the operator a DevServer is in use, so its idle policy does not stop it under someone's feet.

The contract with the operator: the annotation ``devservers.io/last-activity`` on the DevServer holds the
RFC 3339 time (UTC, ``Z``) of the latest use through the SDK (``exec``, ``exec_stream``, ``shell``). The
operator reads it, with other signals, into ``status.lastActivityTime``.

An annotation and a JSON merge patch, because the user may not be allowed to write ``status`` (a
subresource the operator owns) and a merge patch of one key never conflicts with the operator's writes.

Recording is best effort: a failure to record must never fail the user's command. A session records when
it starts, every ``interval`` while it lasts (a shell open all afternoon is not idle), and when it ends.
The first record runs in a thread alongside the command, so it adds no round trip to ``exec``'s latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from .contract import ACTIVITY_ANNOTATION, ACTIVITY_SOURCE_ANNOTATION
from .errors import DevServerError

ACTIVITY_SOURCES = ("exec", "shell", "ssh", "port-forward")
HEARTBEAT_INTERVAL = 60.0


def rfc3339(moment: datetime) -> str:
    """``2025-01-31T12:00:00Z``: UTC, whole seconds, as Kubernetes writes times."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def activity_patch(moment: datetime | None = None, source: str | None = None) -> dict[str, object]:
    """The merge patch that records activity at ``moment`` (default: now), by ``source`` when given (one of
    ``ACTIVITY_SOURCES``; ``None`` removes an older one, which would otherwise be misattributed)."""
    return {"metadata": {"annotations": {ACTIVITY_ANNOTATION: rfc3339(moment or datetime.now(UTC)),
                                         ACTIVITY_SOURCE_ANNOTATION: source}}}


class ActivityHeartbeat:
    """Records activity at the start, periodically, and at the end of a ``with`` block.

    Args:
        record: sends one record (a merge patch of the DevServer); its ``DevServerError`` is swallowed.
        interval: seconds between records while the block runs.

    Example::

        with ActivityHeartbeat(lambda: kube.patch(DEVSERVERS, name, activity_patch(), namespace=ns)):
            run_the_command()
    """

    def __init__(self, record: Callable[[], object], *, interval: float = HEARTBEAT_INTERVAL) -> None:
        self._record = record
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.records = 0

    def _safe_record(self) -> None:
        try:
            self._record()
            self.records += 1
        except DevServerError:
            pass  # best effort: the DevServer may be gone, or the user may not be allowed to patch it

    def _run(self) -> None:
        self._safe_record()
        while not self._stop.wait(self._interval):
            self._safe_record()

    def __enter__(self) -> ActivityHeartbeat:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="devservers-activity", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if time.monotonic() - self._started >= min(self._interval, 5.0):
            self._safe_record()
