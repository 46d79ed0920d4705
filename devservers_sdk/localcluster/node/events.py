"""Core/v1 Events from the node, written over the API as client-go's recorder writes them.

``record`` never blocks and never fails the caller: events go to a queue that one task drains, in order.
A repeat of the same event (same object, reason, message, type) bumps ``count`` and ``lastTimestamp`` on
the existing Event instead of creating another, as ``kubectl describe`` expects ("3x over 2m").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

from ..apiserver.errors import StatusError
from ..event_records import SettledEvents, event_body, event_key
from .apiclient import ApiClient, object_path

log = logging.getLogger(__name__)

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
        self._seen = SettledEvents()

    def start(self) -> None:
        self._queue = asyncio.Queue(_QUEUE_LIMIT)
        self._task = asyncio.create_task(self._drain(), name="node events")

    async def stop(self) -> None:
        """Write what is queued (briefly), then stop."""
        if self._queue is not None and self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._queue.join()
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
        key = event_key(obj, type_, reason, message, component=component, field_path=field_path)
        stamp = now()
        seen = self._seen.get(key)
        if seen is not None:
            name, namespace, count = seen
            try:
                await self.client.merge_patch(
                    object_path("events", namespace, name), {"count": count + 1, "lastTimestamp": stamp}
                )
                self._seen.remember(key, name, namespace, count + 1)
                return
            except StatusError:
                self._seen.forget(key)
        body = event_body(obj, type_, reason, message, component=component, field_path=field_path,
                          host=self.host, stamp=stamp)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        try:
            await self.client.create(object_path("events", namespace), body)
        except StatusError as exc:
            log.debug("event %s/%s not recorded: %s", namespace, reason, exc.message)
            return
        self._seen.remember(key, name, namespace, 1)
