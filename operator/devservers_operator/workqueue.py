"""Per-DevServer work scheduling: debounced triggers, one deadline per object, one reconcile at a time.

Why not kopf's change handlers, timers or daemons:

* kopf's create/update/resume handlers write their own annotation (the last handled configuration) on
  every change, one extra PATCH per create and update, and a copy of the spec in every object.
* ``@kopf.timer`` and ``@kopf.daemon`` put a finalizer on every object (kopf needs it to stop them), so a
  dead operator blocks every ``devctl delete``, and each create and delete costs one more PATCH.

So kopf delivers watch events (``@kopf.on.event``) and keeps the caches (``@kopf.index``); this queue
decides *when* to reconcile, the way client-go's rate-limited workqueue does for controller-runtime:

* ``trigger(key)``: something changed; reconcile after ``debounce`` seconds. A burst of pod events for one
  DevServer (a rollout produces dozens) collapses into one reconcile.
* ``schedule(key, delay)``: the lifecycle's next deadline (expiry warning, expiry, idle deadline). One
  timer per object, and the earliest request wins: a trigger that comes first simply reconciles earlier,
  and that reconcile computes the next deadline again. Deadlines are in memory; after a restart every
  object is reconciled once from kopf's initial listing, which recomputes them.
* at most one reconcile per key at a time; a trigger during a run schedules one more run after it.
* at most ``concurrency`` reconciles at a time overall (never 1: the peer's ``worker_limit=1`` handled one
  DevServer every 5 s).
* a failed reconcile is retried with exponential backoff (1 s doubling to 5 min), reset by a success. A
  failure the cluster caused for now (``kube_core.transient``: unreachable, 429, 5xx, after the client's own
  retries ran out) or a 409 Conflict is logged as one WARNING line; anything else at ERROR with its traceback,
  as a bug.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from devservers_sdk.errors import ConflictError
from devservers_sdk.kube_core import transient

__all__ = ["MAX_BACKOFF", "WorkQueue"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

MAX_BACKOFF = 300.0
FIRST_BACKOFF = 1.0


class WorkQueue(Generic[K]):
    """Runs ``work(key)`` when keys are triggered or their deadline comes; see the module docstring.

    Args:
        work: the reconcile; returns seconds until it wants to run again for that key, or None.
        concurrency: reconciles running at once.
        debounce: seconds between a trigger and the reconcile it causes.
    """

    def __init__(
        self, work: Callable[[K], Awaitable[float | None]], *, concurrency: int = 100, debounce: float = 0.1
    ) -> None:
        self._work = work
        self._debounce = debounce
        self._semaphore = asyncio.Semaphore(concurrency)
        self._due: dict[K, float] = {}
        self._handles: dict[K, asyncio.TimerHandle] = {}
        self._running: set[K] = set()
        self._again: dict[K, float] = {}  # earliest time asked for while the key was running
        self._dropped: set[K] = set()
        self._failures: dict[K, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.runs = 0
        self.errors = 0

    # -- public --------------------------------------------------------------------------------------

    def trigger(self, key: K) -> None:
        """Reconcile ``key`` soon (after the debounce)."""
        self.schedule(key, self._debounce)

    def schedule(self, key: K, delay: float) -> bool:
        """Reconcile ``key`` in at most ``delay`` seconds (an earlier request stands).

        Returns False when an earlier request stood, so this one changed nothing.
        """
        if self._stopped:
            return False
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        self._dropped.discard(key)
        if key in self._running:
            again = self._again.get(key, math.inf)
            self._again[key] = min(again, when)
            return when < again
        due = self._due.get(key)
        if due is not None and due <= when:
            return False
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
        self._due[key] = when
        self._handles[key] = loop.call_at(when, self._fire, key)
        return True

    def forget(self, key: K) -> None:
        """Drop every timer of ``key`` (its object was deleted); a running reconcile finishes alone."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
        self._due.pop(key, None)
        self._again.pop(key, None)
        self._failures.pop(key, None)
        if key in self._running:
            self._dropped.add(key)

    def due_in(self, key: K) -> float | None:
        """Seconds until ``key`` runs next, or None when nothing is scheduled (for tests and logs)."""
        due = self._due.get(key)
        return None if due is None else max(0.0, due - asyncio.get_running_loop().time())

    @property
    def pending(self) -> int:
        return len(self._due) + len(self._running)

    async def stop(self) -> None:
        """Cancel every timer and running reconcile (operator shutdown)."""
        self._stopped = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._due.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------------

    def _fire(self, key: K) -> None:
        self._due.pop(key, None)
        self._handles.pop(key, None)
        self._running.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key), name=f"reconcile {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: K) -> None:
        next_delay: float | None = None
        try:
            async with self._semaphore:
                self.runs += 1
                try:
                    next_delay = await self._work(key)
                    self._failures.pop(key, None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.errors += 1
                    failures = self._failures.get(key, 0)
                    self._failures[key] = failures + 1
                    next_delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2**failures)
                    # A conflict (the object changed under a write) is a reason to read again, not a bug.
                    if transient(exc) or isinstance(exc, ConflictError):
                        log.warning(
                            "Reconciling %s failed (attempt %d): %s; retrying in %.0fs",
                            key,
                            failures + 1,
                            exc,
                            next_delay,
                        )
                    else:
                        log.exception(
                            "Reconciling %s failed (attempt %d); retrying in %.0fs", key, failures + 1, next_delay
                        )
        finally:
            self._running.discard(key)
            again = self._again.pop(key, None)
            dropped = key in self._dropped
            self._dropped.discard(key)
            if not self._stopped and not dropped:
                if next_delay is not None:
                    self.schedule(key, next_delay)
                if again is not None:
                    self.schedule(key, again - asyncio.get_running_loop().time())
