"""The operator's watches of what it owns (pods, StatefulSets, Services), outside kopf: caches the reconcile
reads, and a wake-up only on news.

Why not kopf indices and event handlers, as for DevServers, flavors and the defaults ConfigMaps: kopf spends
about a millisecond of CPU on every watch event it hands over (two under a profiler: indexing, causes,
filters), and the owned kinds send most of a DevServer's events: its pods eight or so (created, bound,
containers being created, running, ready, terminating, their containers ended, gone), its StatefulSet three
(created, which is the echo of the operator's own write, then the controller's status twice), its Service
one (the echo). Most of those change nothing the operator reads, or change it only on the way to a state
the next event reports anyway. Here an event costs a JSON parse, a dict update and a comparison of the
fields the operator reads of that kind (``pod_reads``, ``statefulset_reads``, ``service_reads``); only
when those changed does it reach ``Reconciler.owned_changed``, as the kopf handlers' events did.

Each ``OwnedWatch`` behaves as an informer (client-go's reflector): LIST (with the managed-by label
selector, so nothing the operator did not make reaches it), then WATCH from the list's resourceVersion,
resuming from the last version seen when the server ends the stream or the connection breaks, and listing
again when the version has expired (410 Gone). A relist compares with the cache and forwards what changed
or went, so nothing is missed across it. There is one task per kind and watched scope (each namespace, or
the cluster).

Startup is as safe as kopf's indices were: ``OwnedWatches.synced`` is set once every kind has every scope's
first list in the cache, and the reconciler waits for it before its first reconcile, so no decision (a
StatefulSet created again, an orphaned pod, a status) is made on an empty cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from devservers_sdk.contract import MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from devservers_sdk.errors import WatchDropped, WatchExpired
from devservers_sdk.kube_async import AsyncKube
from devservers_sdk.kube_core import PODS, SERVICES, STATEFULSETS, Resource, transient

from .metrics import COUNTERS

__all__ = ["OwnedWatch", "OwnedWatches", "pod_reads", "service_reads", "statefulset_reads"]

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
WATCH_SECONDS = 300  # the server ends each stream after this; it is then resumed from the last version
MAX_RETRY_DELAY = 30.0

Key = tuple[str, str]
# What a forwarded event becomes: ``Reconciler.owned_changed(kind, event_type, body)`` → an outcome.
Forward = Callable[[str, str | None, Mapping[str, Any]], str]
Reads = Callable[[Mapping[str, Any]], tuple[Any, ...]]

_DISRUPTION = "DisruptionTarget"


def _identity(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return (
        meta.get("uid"),
        meta.get("name"),
        meta.get("labels"),
        meta.get("ownerReferences"),
        meta.get("deletionTimestamp"),
    )


def pod_reads(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """The part of a pod the operator reads: an event that leaves it equal wakes nothing.

    A live pod: its identity, labels (the DevServer, the rank, the template revision), owners (orphans),
    node, phase and its reason and message, start time (the idle clock), each condition's type, status,
    reason and message (scheduling, readiness, disruption), and each container's readiness, restart count
    and states (waiting reasons and messages, exits). Left out is what no reader looks at and changes on
    its own: ``resourceVersion``, ``managedFields``, annotations, finalizers, the pod's and host's IPs,
    condition timestamps, container and image IDs.

    A pod being deleted is read only for being there (it holds its rank until it is gone), for what took
    it away (its DisruptionTarget condition) and its node: every reader skips terminating pods otherwise,
    so its containers stopping one by one are not news.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    identity = (*_identity(pod), spec.get("nodeName"))
    if meta.get("deletionTimestamp"):
        disruption = next((c for c in conditions if c.get("type") == _DISRUPTION), None)
        return (*identity, disruption)
    return (
        *identity,
        status.get("phase"),
        status.get("reason"),
        status.get("message"),
        status.get("startTime"),
        tuple((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conditions),
        *(
            tuple(
                (c.get("name"), c.get("ready"), c.get("restartCount"), c.get("state"), c.get("lastState"))
                for c in status.get(group) or []
            )
            for group in ("initContainerStatuses", "containerStatuses")
        ),
    )


def statefulset_reads(statefulset: Mapping[str, Any]) -> tuple[Any, ...]:
    """The part of a StatefulSet the operator reads.

    Its identity, annotations (the applied and template hashes), finalizers (kept on a replace), spec and
    generation (immutable fields, claim templates and the home size, whether someone changed the spec since
    the operator's write), and of the status only ``observedGeneration`` and ``updateRevision`` (whether a
    rollout is pending, which pods are on an older template). Left out: the replica counts, which follow
    the pods (whose own events are read), ``currentRevision``, conditions, ``resourceVersion`` and
    ``managedFields``. So of the three events of a create (the echo of the operator's write, the
    controller's first status, its ready count) the third changes nothing read.
    """
    meta = statefulset.get("metadata") or {}
    status = statefulset.get("status") or {}
    return (
        *_identity(statefulset),
        meta.get("annotations"),
        meta.get("finalizers"),
        meta.get("generation"),
        statefulset.get("spec"),
        status.get("observedGeneration"),
        status.get("updateRevision"),
    )


def service_reads(service: Mapping[str, Any]) -> tuple[Any, ...]:
    """The part of a Service the operator reads: its identity, annotations (the applied hash) and finalizers
    (kept on a replace). Its spec and status are not read: it is replaced whole when the applied hash
    differs from the desired one, whatever its spec says."""
    meta = service.get("metadata") or {}
    return (*_identity(service), meta.get("annotations"), meta.get("finalizers"))


class _Entry:
    __slots__ = ("body", "owner", "reads")

    def __init__(self, body: dict[str, Any], reads: Reads) -> None:
        self.body = body
        self.reads = reads(body)
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(NAME_LABEL)
        self.owner: Key | None = (str(meta.get("namespace")), str(name)) if name else None


class OwnedWatch:
    """The objects of one kind labelled ``managed-by=devservers-operator`` in ``namespaces`` (empty: the cluster).

    Args:
        kube: the API client.
        resource: the kind watched.
        namespaces: the watched namespaces; empty for a cluster-wide watch.
        reads: what the operator reads of an object of this kind; an event that leaves it equal is cached
            and counted (``unchanged``), and handed to nothing.
        on_synced: called once every scope has its first listing.
    """

    def __init__(
        self,
        kube: AsyncKube,
        resource: Resource,
        namespaces: Sequence[str],
        reads: Reads,
        on_synced: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.kind = resource.kind
        self.reads = reads
        self.scopes: list[str | None] = list(namespaces) or [None]
        self.synced = asyncio.Event()
        self._on_synced = on_synced
        self._listed: set[str | None] = set()
        self._objects: dict[Key, _Entry] = {}  # (namespace, object name) → the object
        self._by_owner: dict[Key, dict[str, dict[str, Any]]] = {}  # (namespace, DevServer) → name → body
        self._forward: Forward | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the cache -----------------------------------------------------------------------------------

    def owned(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The objects of DevServer ``namespace/name`` (by its name label), as last seen."""
        owned = self._by_owner.get((namespace, name))
        return list(owned.values()) if owned else []

    def one(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object of DevServer ``namespace/name`` (a StatefulSet, a Service: one each), or None."""
        owned = self._by_owner.get((namespace, name))
        return next(iter(owned.values()), None) if owned else None

    # -- lifetime ------------------------------------------------------------------------------------

    def start(self, forward: Forward) -> None:
        """Watch each scope in a task of its own; each event that changes what is read goes to ``forward``."""
        self._forward = forward
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(scope), name=f"{self.kind} watch {scope or 'cluster'}")
            for scope in self.scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- the informer --------------------------------------------------------------------------------

    async def _run(self, namespace: str | None) -> None:
        version: str | None = None
        failures = 0
        where = f"{self.kind} watch in " + (f"namespace {namespace}" if namespace else "all namespaces")
        while True:
            try:
                if version is None:
                    version = await self._relist(namespace)
                async for event_type, body in self.kube.watch(
                    self.resource,
                    namespace=namespace,
                    label_selector=MANAGED_SELECTOR,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    failures = 0
                    version = (body.get("metadata") or {}).get("resourceVersion") or version
                    if event_type != "BOOKMARK":
                        self._apply(event_type, body)
                # The server ended the stream (its timeout): resume from the last version seen.
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info("The %s expired; listing again", where)
                version = None
            except Exception as exc:
                failures += 1
                delay = min(MAX_RETRY_DELAY, 0.5 * 2 ** min(failures, 8))
                if isinstance(exc, WatchDropped) or transient(exc):
                    log.warning("The %s broke (%s); resuming in %.1fs", where, exc, delay)
                else:
                    # Not a blip (refused, a bug): start over from a list, as an informer does.
                    log.error("The %s failed (%s); listing again in %.1fs", where, exc, delay)
                    version = None
                await asyncio.sleep(delay)

    async def _relist(self, namespace: str | None) -> str | None:
        listing = await self.kube.list(self.resource, namespace=namespace, label_selector=MANAGED_SELECTOR)
        seen: set[Key] = set()
        for body in listing.get("items") or []:
            meta = body.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            seen.add(key)
            body.setdefault("kind", self.kind)
            body.setdefault("apiVersion", self.resource.api_version)
            self._apply("ADDED" if key not in self._objects else "MODIFIED", body)
        gone = [key for key in self._objects if (namespace is None or key[0] == namespace) and key not in seen]
        for key in gone:
            self._apply("DELETED", self._objects[key].body)
        self._listed.add(namespace)
        if len(self._listed) == len(self.scopes) and not self.synced.is_set():
            self.synced.set()
            if self._on_synced is not None:
                self._on_synced()
        return (listing.get("metadata") or {}).get("resourceVersion")

    def _apply(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        old = self._objects.get(key)
        if event_type == "DELETED":
            if old is None:
                COUNTERS.event(self.kind, "unchanged")
                return
            del self._objects[key]
            self._unindex(key, old)
        else:
            new = _Entry(body, self.reads)
            self._objects[key] = new
            if old is not None and old.owner != new.owner:
                self._unindex(key, old)
            if new.owner is not None:
                self._by_owner.setdefault(new.owner, {})[key[1]] = body
            if old is not None and old.reads == new.reads:
                COUNTERS.event(self.kind, "unchanged")
                return
        outcome = "ignored"
        try:
            if self._forward is not None:
                outcome = self._forward(self.kind, event_type, body)
        except Exception:  # one bad event must not end the watch of every object of the kind
            log.exception("A %s event was not handled", self.kind)
        COUNTERS.event(self.kind, outcome)

    def _unindex(self, key: Key, entry: _Entry) -> None:
        if entry.owner is None:
            return
        owned = self._by_owner.get(entry.owner)
        if owned is not None:
            owned.pop(key[1], None)
            if not owned:
                del self._by_owner[entry.owner]


class OwnedWatches:
    """The watches of every kind the operator makes: pods, StatefulSets and Services.

    ``synced`` is set once each of them has its first listing of every scope: the reconciler's ``ready``.
    """

    def __init__(self, kube: AsyncKube, namespaces: Sequence[str]) -> None:
        self.synced = asyncio.Event()
        self.pods = OwnedWatch(kube, PODS, namespaces, pod_reads, self._one_synced)
        self.statefulsets = OwnedWatch(kube, STATEFULSETS, namespaces, statefulset_reads, self._one_synced)
        self.services = OwnedWatch(kube, SERVICES, namespaces, service_reads, self._one_synced)
        self.watches = (self.pods, self.statefulsets, self.services)

    def _one_synced(self) -> None:
        if all(watch.synced.is_set() for watch in self.watches):
            self.synced.set()

    def start(self, forward: Forward) -> None:
        for watch in self.watches:
            watch.start(forward)

    async def stop(self) -> None:
        await asyncio.gather(*(watch.stop() for watch in self.watches))
