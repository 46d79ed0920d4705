"""The operator's watch of its pods, outside kopf: a cache the reconcile reads, and a wake-up only on news.

Why not a kopf index and event handler, as for the other kinds: kopf spends about a millisecond of CPU on
every watch event it hands over, and pods send half of a DevServer's events (created, bound, containers
being created, running, ready, terminating, their containers ended, gone). Most of those change nothing
the operator reads, or change it only on the way to a state that the next event reports anyway. Here an
event costs a JSON parse, a dict update and a comparison of the fields the operator reads (``_reads``);
only when those changed does it reach ``Reconciler.owned_changed``, as the kopf handler's events did.

It behaves as an informer (client-go's reflector): LIST (with the label selector, so no other pod reaches
the operator), then WATCH from the list's resourceVersion, resuming from the last version seen when the
server ends the stream or the connection breaks, and listing again when the version has expired (410
Gone). A relist compares with the cache and forwards what changed or went, so nothing is missed across it.

Startup is as safe as kopf's indices were: ``synced`` is set once every watched scope (each namespace, or
the cluster) has its first list in the cache, and the reconciler waits for it before its first reconcile,
so no decision (an orphaned pod, a status) is made on an empty cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from devservers_sdk.contract import MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from devservers_sdk.errors import WatchDropped, WatchExpired
from devservers_sdk.kube_async import AsyncKube
from devservers_sdk.kube_core import PODS, transient

from .metrics import COUNTERS

__all__ = ["PodWatch"]

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
WATCH_SECONDS = 300  # the server ends each stream after this; it is then resumed from the last version
MAX_RETRY_DELAY = 30.0

Key = tuple[str, str]
# What a forwarded event becomes: ``Reconciler.owned_changed(kind, event_type, body)`` → an outcome.
Forward = Callable[[str, str | None, Mapping[str, Any]], str]

_DISRUPTION = "DisruptionTarget"


def _reads(pod: Mapping[str, Any]) -> tuple[Any, ...]:
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
    identity = (
        meta.get("uid"),
        meta.get("name"),
        meta.get("labels"),
        meta.get("ownerReferences"),
        meta.get("deletionTimestamp"),
        spec.get("nodeName"),
    )
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


class _Pod:
    __slots__ = ("body", "owner", "reads")

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.reads = _reads(body)
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(NAME_LABEL)
        self.owner: Key | None = (str(meta.get("namespace")), str(name)) if name else None


class PodWatch:
    """The pods labelled ``managed-by=devservers-operator`` in ``namespaces`` (empty: the cluster).

    Args:
        kube: the API client.
        namespaces: the watched namespaces; empty for a cluster-wide watch.
    """

    def __init__(self, kube: AsyncKube, namespaces: Sequence[str]) -> None:
        self.kube = kube
        self.scopes: list[str | None] = list(namespaces) or [None]
        self.synced = asyncio.Event()
        self._listed: set[str | None] = set()
        self._pods: dict[Key, _Pod] = {}  # (namespace, pod name) → the pod
        self._by_owner: dict[Key, dict[str, dict[str, Any]]] = {}  # (namespace, DevServer) → pod name → body
        self._forward: Forward | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the cache -----------------------------------------------------------------------------------

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pods of DevServer ``namespace/name``, as last seen."""
        owned = self._by_owner.get((namespace, name))
        return list(owned.values()) if owned else []

    # -- lifetime ------------------------------------------------------------------------------------

    def start(self, forward: Forward) -> None:
        """Watch each scope in a task of its own; each event that changes what is read goes to ``forward``."""
        self._forward = forward
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(scope), name=f"pod watch {scope or 'cluster'}")
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
        where = f"namespace {namespace}" if namespace else "all namespaces"
        while True:
            try:
                if version is None:
                    version = await self._relist(namespace)
                async for event_type, body in self.kube.watch(
                    PODS,
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
                log.info("The pod watch in %s expired; listing again", where)
                version = None
            except Exception as exc:
                failures += 1
                delay = min(MAX_RETRY_DELAY, 0.5 * 2 ** min(failures, 8))
                if isinstance(exc, WatchDropped) or transient(exc):
                    log.warning("The pod watch in %s broke (%s); resuming in %.1fs", where, exc, delay)
                else:
                    # Not a blip (refused, a bug): start over from a list, as an informer does.
                    log.error("The pod watch in %s failed (%s); listing again in %.1fs", where, exc, delay)
                    version = None
                await asyncio.sleep(delay)

    async def _relist(self, namespace: str | None) -> str | None:
        listing = await self.kube.list(PODS, namespace=namespace, label_selector=MANAGED_SELECTOR)
        seen: set[Key] = set()
        for body in listing.get("items") or []:
            meta = body.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            seen.add(key)
            body.setdefault("kind", PODS.kind)
            body.setdefault("apiVersion", "v1")
            self._apply("ADDED" if key not in self._pods else "MODIFIED", body)
        gone = [key for key in self._pods if (namespace is None or key[0] == namespace) and key not in seen]
        for key in gone:
            self._apply("DELETED", self._pods[key].body)
        self._listed.add(namespace)
        if len(self._listed) == len(self.scopes):
            self.synced.set()
        return (listing.get("metadata") or {}).get("resourceVersion")

    def _apply(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        old = self._pods.get(key)
        if event_type == "DELETED":
            if old is None:
                COUNTERS.event("Pod", "unchanged")
                return
            del self._pods[key]
            self._unindex(key, old)
        else:
            new = _Pod(body)
            self._pods[key] = new
            if old is not None and old.owner != new.owner:
                self._unindex(key, old)
            if new.owner is not None:
                self._by_owner.setdefault(new.owner, {})[key[1]] = body
            if old is not None and old.reads == new.reads:
                COUNTERS.event("Pod", "unchanged")
                return
        outcome = "ignored"
        try:
            if self._forward is not None:
                outcome = self._forward("Pod", event_type, body)
        except Exception:  # one bad event must not end the watch of every pod
            log.exception("A pod event was not handled")
        COUNTERS.event("Pod", outcome)

    def _unindex(self, key: Key, pod: _Pod) -> None:
        if pod.owner is None:
            return
        owned = self._by_owner.get(pod.owner)
        if owned is not None:
            owned.pop(key[1], None)
            if not owned:
                del self._by_owner[pod.owner]
