"""Core/v1 Events from the node, written over the API as client-go's recorder writes them.

``record`` never blocks and never fails the caller: events go to a queue that one task drains, in order.
A repeat of the same event (same object, reason, message, type) bumps ``count`` and ``lastTimestamp`` on
the existing Event instead of creating another, as ``kubectl describe`` expects ("3x over 2m").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import time
from typing import Any

from ..apiserver.errors import StatusError
from .apiclient import ApiClient, object_path

log = logging.getLogger(__name__)

# Settled events are looked up for aggregation; the cache is bounded like client-go's (4096 entries).
_EVENT_CACHE = 4096
_QUEUE_LIMIT = 10_000


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeEventRecorder:
    """Queues Events and writes them in the background, aggregating repeats."""

    def __init__(self, client: ApiClient, host: str) -> None:
        self.client = client
        self.host = host
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str, str | None, str]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: collections.OrderedDict[tuple[Any, ...], tuple[str, str, int]] = collections.OrderedDict()

    def start(self) -> None:
        self._queue = asyncio.Queue(_QUEUE_LIMIT)
        self._task = asyncio.create_task(self._drain(), name="node events")

    async def stop(self) -> None:
        """Write what is queued (briefly), then stop."""
        if self._queue is not None and self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def record(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        field_path: str | None = None,
        component: str = "kubelet",
    ) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((obj, type_, reason, message, field_path, component))
        except asyncio.QueueFull:
            log.warning("event dropped (queue full): %s %s", reason, message)

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except Exception:
                log.debug("event not recorded", exc_info=True)
            finally:
                self._queue.task_done()

    async def _write(
        self, obj: dict[str, Any], type_: str, reason: str, message: str, field_path: str | None, component: str
    ) -> None:
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        key = (namespace, meta.get("uid"), meta.get("name"), field_path, component, reason, message, type_)
        stamp = now()
        seen = self._seen.get(key)
        if seen is not None:
            name, ns, count = seen
            try:
                await self.client.merge_patch(
                    object_path("events", ns, name), {"count": count + 1, "lastTimestamp": stamp}
                )
                self._seen[key] = (name, ns, count + 1)
                self._seen.move_to_end(key)
                return
            except StatusError:
                self._seen.pop(key, None)
        involved = {
            "kind": obj.get("kind", "Pod"),
            "apiVersion": obj.get("apiVersion", "v1"),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
        }
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = meta["resourceVersion"]
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{meta.get('name', 'event')}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component, "host": self.host},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": self.host,
        }
        try:
            await self.client.create(object_path("events", namespace), body)
        except StatusError as exc:
            log.debug("event %s/%s not recorded: %s", namespace, reason, exc.message)
            return
        self._seen[key] = (name, namespace, 1)
        while len(self._seen) > _EVENT_CACHE:
            self._seen.popitem(last=False)
