"""What a core/v1 Event looks like when a Kubernetes component records one, for both of our recorders.

The controllers' recorder (in process, on the emulator) and the node's (over HTTPS, on any API server) write
the same Events, aggregated the same way as client-go's recorder does: a repeat of the same event (object,
field, component, reason, message, type) bumps ``count`` and ``lastTimestamp`` instead of making another.
This module holds that shape, and the bounded memory of settled events, and nothing that talks to an API.
"""

from __future__ import annotations

import collections
import time
from typing import Any

# Settled events are looked up for aggregation; the memory is bounded like client-go's (4096 entries).
EVENT_CACHE = 4096

EventKey = tuple[Any, ...]


def event_key(obj: dict[str, Any], type_: str, reason: str, message: str, *, component: str,
              field_path: str | None) -> EventKey:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    return (namespace, meta.get("uid"), meta.get("name"), field_path, component, reason, message, type_)


def event_body(obj: dict[str, Any], type_: str, reason: str, message: str, *, component: str,
               field_path: str | None, host: str, stamp: str) -> dict[str, Any]:
    """A new Event about ``obj`` (``metadata.name`` unique, ``metadata.namespace`` the object's or default)."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
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
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'event')}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host,
    }


class SettledEvents:
    """The events already written, by key: (name, namespace, count), oldest forgotten first."""

    def __init__(self) -> None:
        self._seen: collections.OrderedDict[EventKey, tuple[str, str, int]] = collections.OrderedDict()

    def get(self, key: EventKey) -> tuple[str, str, int] | None:
        return self._seen.get(key)

    def remember(self, key: EventKey, name: str, namespace: str, count: int) -> None:
        self._seen[key] = (name, namespace, count)
        self._seen.move_to_end(key)
        while len(self._seen) > EVENT_CACHE:
            self._seen.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        self._seen.pop(key, None)
