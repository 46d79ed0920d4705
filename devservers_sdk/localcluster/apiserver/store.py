"""Object storage with etcd's observable behaviour: one revision counter, a bounded event history, watches.

What clients depend on, and this store reproduces:

* ``resourceVersion`` is a single cluster-wide counter (etcd's revision), so a LIST's version can be used
  to start a WATCH of the same resource without missing or repeating an event;
* history is finite: a watch from a revision older than the retained window gets ``410 Gone`` and the
  client must relist (kopf, client-go reflectors and the Python ``Watch`` all implement this path);
* watch events are computed against the watcher's selectors, so an object that stops matching a label
  selector is seen as DELETED by that watcher (carrying the object as it last matched, at the new
  revision) and one that starts matching as ADDED.

Stored objects are treated as immutable: every write stores a new dict. That lets LIST and watch fan-out
hand out references without copying, which keeps LIST of thousands of objects cheap.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

GroupResource = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace or "", name)
Matcher = Callable[[dict[str, Any]], bool]

DEFAULT_HISTORY = 20_000
# A watcher that falls this far behind is disconnected, as the real server drops slow watchers; the
# client then re-watches from its last seen version (or relists after 410).
MAX_PENDING_EVENTS = 50_000


def copy_document(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists and scalars), several times faster than
    ``copy.deepcopy``, which the API server otherwise spends a large part of a write in. Anything else
    (never in a stored object) is shared, not copied."""
    if isinstance(value, dict):
        return {key: copy_document(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_document(item) for item in value]
    return value


@dataclass(frozen=True)
class StoredEvent:
    revision: int
    group_resource: GroupResource
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class Watcher:
    group_resource: GroupResource
    namespace: str | None
    matches: Matcher
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, event: StoredEvent) -> None:
        """Translate a stored event into what this watcher sees, given its namespace and selectors."""
        if self.closed:
            return
        if self.namespace is not None and event.obj.get("metadata", {}).get("namespace", "") != self.namespace:
            return
        now_matches = self.matches(event.obj)
        if event.type == "DELETED":
            if now_matches:
                self._put(("DELETED", event.obj))
            return
        was_matching = event.old is not None and self.matches(event.old)
        if now_matches and was_matching:
            self._put(("MODIFIED", event.obj))
        elif now_matches:
            self._put(("ADDED", event.obj))
        elif was_matching:
            # As the watch cache does: the object as this watcher last matched it, at the event's revision.
            assert event.old is not None
            meta = {**event.old["metadata"], "resourceVersion": event.obj["metadata"]["resourceVersion"]}
            self._put(("DELETED", {**event.old, "metadata": meta}))

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        if self.queue.qsize() >= MAX_PENDING_EVENTS:
            self.close()
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


class TooOldResourceVersion(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        self._objects: dict[GroupResource, dict[ObjectKey, dict[str, Any]]] = collections.defaultdict(dict)
        self._revision = 0
        self._history: collections.deque[StoredEvent] = collections.deque(maxlen=history)
        # Revision below which history has been compacted away (exclusive).
        self._compacted = 0
        self._watchers: dict[GroupResource, set[Watcher]] = collections.defaultdict(set)
        self._listeners: list[Callable[[StoredEvent], None]] = []

    # -- reads -------------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, gr: GroupResource, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[gr].get((namespace, name))

    def iter(self, gr: GroupResource, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Objects sorted by namespace then name, as etcd's key order gives them."""
        objects = self._objects[gr]
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        for key in keys:
            yield objects[key]

    def list_at(self, gr: GroupResource, namespace: str | None, revision: int) -> list[dict[str, Any]]:
        """The objects as they were at ``revision`` (etcd's MVCC read), sorted like ``iter``.

        Rebuilt by undoing the retained history newer than ``revision``; raises TooOldResourceVersion when
        that history has been compacted away.
        """
        if revision >= self._revision:
            return list(self.iter(gr, namespace))
        if revision < self._compacted:
            raise TooOldResourceVersion(revision, self._compacted)
        state = {k: v for k, v in self._objects[gr].items() if namespace is None or k[0] == namespace}
        for event in reversed(self._history):
            if event.revision <= revision:
                break
            meta = event.obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if event.group_resource != gr or (namespace is not None and key[0] != namespace):
                continue
            if event.type == "ADDED":
                state.pop(key, None)
            elif event.old is not None:
                state[key] = event.old
        return [state[key] for key in sorted(state)]

    def count(self, gr: GroupResource) -> int:
        return len(self._objects[gr])

    def group_resources(self) -> list[GroupResource]:
        return [gr for gr, objects in self._objects.items() if objects]

    # -- writes ------------------------------------------------------------------------------------

    def restore(self, gr: GroupResource, obj: dict[str, Any]) -> None:
        """Put back an object saved by an earlier run, at its own resourceVersion (no history, no event)."""
        meta = obj["metadata"]
        self._objects[gr][(meta.get("namespace", ""), meta["name"])] = obj
        self._revision = max(self._revision, int(meta.get("resourceVersion") or 0))
        self._compacted = self._revision

    def next_revision(self) -> int:
        self._revision += 1
        return self._revision

    def put(self, gr: GroupResource, obj: dict[str, Any], *, revision: int) -> None:
        """Store a created or updated object whose metadata.resourceVersion is already ``revision``."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        old = self._objects[gr].get(key)
        self._objects[gr][key] = obj
        self._record(StoredEvent(revision, gr, "MODIFIED" if old is not None else "ADDED", obj, old))

    def remove(self, gr: GroupResource, namespace: str, name: str, *, final: dict[str, Any]) -> None:
        """Delete an object; ``final`` is its last state, carrying the deletion's resourceVersion."""
        old = self._objects[gr].pop((namespace, name), None)
        if old is None:
            return
        self._record(StoredEvent(int(final["metadata"]["resourceVersion"]), gr, "DELETED", final, old))

    def drop_resource(self, gr: GroupResource) -> None:
        """Forget every object of a type (its CRD was deleted); watchers are closed as the server does."""
        self._objects.pop(gr, None)
        for watcher in list(self._watchers.pop(gr, ())):
            watcher.close()

    def _record(self, event: StoredEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].revision
        self._history.append(event)
        for watcher in list(self._watchers.get(event.group_resource, ())):
            watcher.offer(event)
        for listener in self._listeners:
            listener(event)

    def compact(self) -> None:
        """Drop all history, as an etcd compaction would; older watches now get 410 Gone."""
        if self._history:
            self._compacted = self._history[-1].revision
        self._history.clear()

    # -- watching ----------------------------------------------------------------------------------

    def on_event(self, listener: Callable[[StoredEvent], None]) -> None:
        """Call ``listener`` synchronously for every stored change (controllers use it to enqueue work)."""
        self._listeners.append(listener)

    def watch(self, gr: GroupResource, namespace: str | None, matches: Matcher, *, since: int | None) -> Watcher:
        """Start a watcher; with ``since`` replay retained history after that revision first.

        Raises TooOldResourceVersion when ``since`` precedes the retained history.
        """
        watcher = Watcher(gr, namespace, matches)
        if since is not None:
            if since < self._compacted:
                raise TooOldResourceVersion(since, self._compacted)
            for event in self._history:
                if event.revision > since and event.group_resource == gr:
                    watcher.offer(event)
        self._watchers[gr].add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.group_resource].discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def close_all_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()
