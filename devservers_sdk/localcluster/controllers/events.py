"""Core/v1 Events as client-go's event recorder writes them, for the built-in controllers and the kubelet.

A repeat of the same event (same object, reason, message, type and source) bumps ``count`` and
``lastTimestamp`` on the existing Event instead of creating another, as ``kubectl describe`` expects
("3x over 2m"). Recording is best effort: an event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from ..apiserver.api import now_rfc3339 as now
from ..apiserver.errors import StatusError

if TYPE_CHECKING:
    from ..apiserver.api import ClusterAPI

log = logging.getLogger(__name__)

# Settled events are looked up for aggregation; the cache is bounded like client-go's (4096 entries).
_EVENT_CACHE = 4096


class EventRecorder:
    """Writes core/v1 Events; repeats of the same event update ``count`` and ``lastTimestamp``."""

    def __init__(self, api: ClusterAPI, host: str) -> None:
        self.api = api
        self.host = host
        self._rt = api.registry.get("", "v1", "events")
        self._seen: collections.OrderedDict[tuple[Any, ...], tuple[str, str, int]] = collections.OrderedDict()

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
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        key = (namespace, meta.get("uid"), meta.get("name"), field_path, component, reason, message, type_)
        stamp = now()
        seen = self._seen.get(key)
        if seen is not None:
            name, ns, count = seen
            try:
                self.api.patch(self._rt, ns, name, "merge", {"count": count + 1, "lastTimestamp": stamp})
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
            "source": {"component": component, **({"host": self.host} if component == "kubelet" else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": self.host if component == "kubelet" else "",
        }
        try:
            self.api.create(self._rt, namespace, body)
        except StatusError as exc:
            log.debug("event %s/%s not recorded: %s", namespace, reason, exc.message)
            return
        self._seen[key] = (name, namespace, 1)
        while len(self._seen) > _EVENT_CACHE:
            self._seen.popitem(last=False)
