"""Core/v1 Events as client-go's event recorder writes them, for the built-in controllers and the kubelet.

A repeat of the same event (same object, reason, message, type and source) bumps ``count`` and
``lastTimestamp`` on the existing Event instead of creating another, as ``kubectl describe`` expects
("3x over 2m"). Recording is best effort: an event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..apiserver.api import now_rfc3339 as now
from ..apiserver.errors import StatusError
from ..event_records import SettledEvents, event_body, event_key

if TYPE_CHECKING:
    from ..apiserver.api import ClusterAPI

log = logging.getLogger(__name__)


class EventRecorder:
    """Writes core/v1 Events; repeats of the same event update ``count`` and ``lastTimestamp``."""

    def __init__(self, api: ClusterAPI, host: str) -> None:
        self.api = api
        self.host = host
        self._rt = api.registry.get("", "v1", "events")
        self._seen = SettledEvents()

    def record(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> None:
        if self._rt is None:
            return
        key = event_key(obj, type_, reason, message, component=component, field_path=field_path)
        stamp = now()
        seen = self._seen.get(key)
        if seen is not None:
            name, namespace, count = seen
            try:
                self.api.patch(self._rt, namespace, name, "merge", {"count": count + 1, "lastTimestamp": stamp})
                self._seen.remember(key, name, namespace, count + 1)
                return
            except StatusError:
                self._seen.forget(key)
        body = event_body(obj, type_, reason, message, component=component, field_path=field_path,
                          host=self.host if component == "kubelet" else "", stamp=stamp)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        try:
            self.api.create(self._rt, namespace, body)
        except StatusError as exc:
            log.debug("event %s/%s not recorded: %s", namespace, reason, exc.message)
            return
        self._seen.remember(key, name, namespace, 1)
