"""The operator's own watches of pods, StatefulSets and Services (``ownedwatch.py``) against a scripted API:
the cache each keeps, which events wake the reconcile, how they resume and relist, and the reconciler waiting
for every first listing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from devservers_operator.metrics import COUNTERS
from devservers_operator.ownedwatch import (
    MANAGED_SELECTOR,
    OwnedWatch,
    OwnedWatches,
    pod_reads,
    service_reads,
    statefulset_reads,
)
from devservers_operator.reconcile import Reconciler
from devservers_operator.settings import OperatorSettings

from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.errors import WatchExpired
from devservers_sdk.kube_core import PODS, SERVICES, STATEFULSETS

_END = object()


def _pod(name: str, version: str, *, server: str = "web", ready: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "labels": {NAME_LABEL: server},
            "ownerReferences": [{"kind": "StatefulSet", "name": server, "controller": True}],
        },
        "spec": {"nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


class ScriptedKube:
    """``list`` answers the next listing; each ``watch`` stream plays what the test puts on ``events``."""

    def __init__(self, listings: list[dict[str, Any]]) -> None:
        self.listings = listings
        self.lists: list[tuple[str | None, str | None]] = []
        self.watches: list[str | None] = []
        self.events: asyncio.Queue[Any] = asyncio.Queue()

    async def list(self, resource: Any, *, namespace: str | None = None, label_selector: str | None = None,
                   **_: Any) -> dict[str, Any]:
        self.lists.append((namespace, label_selector))
        return copy.deepcopy(self.listings.pop(0))

    async def watch(self, resource: Any, *, resource_version: str | None = None,
                    label_selector: str | None = None, **_: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        assert label_selector == MANAGED_SELECTOR
        self.watches.append(resource_version)
        while True:
            item = await self.events.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


async def _until(condition: Any, what: str) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def _events(of: str = "Pod") -> dict[str, int]:
    return {outcome: n for (kind, outcome), n in COUNTERS.watch_events.items() if kind == of}


def test_the_pod_watch_caches_every_event_and_wakes_only_on_what_is_read() -> None:
    async def main() -> None:
        before = _events()
        first = {"metadata": {"resourceVersion": "10"}, "items": [_pod("web-0", "9")]}
        # After the 410: web-0 became ready while nobody watched, web-1 went.
        second = {"metadata": {"resourceVersion": "30"}, "items": [_pod("web-0", "25", ready=True)]}
        kube = ScriptedKube([first, second])
        forwarded: list[tuple[str | None, str, str]] = []

        def forward(kind: str, event_type: str | None, body: Any) -> str:
            forwarded.append((event_type, body["metadata"]["name"], body["metadata"]["resourceVersion"]))
            return "reconcile"

        watch = OwnedWatch(kube, PODS, [], pod_reads)  # type: ignore[arg-type]
        assert watch.scopes == [None] and not watch.synced.is_set()
        watch.start(forward)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            assert kube.lists == [(None, MANAGED_SELECTOR)]
            assert [p["metadata"]["name"] for p in watch.owned("team", "web")] == ["web-0"]
            assert forwarded == [("ADDED", "web-0", "9")]

            # Only the pod's IP and version moved: cached, not forwarded.
            await kube.events.put(("MODIFIED", _pod("web-0", "11", podIP="10.0.0.7")))
            await kube.events.put(("ADDED", _pod("web-1", "12")))
            await _until(lambda: len(forwarded) == 2, "web-1's ADDED was forwarded")
            assert watch.owned("team", "web")[0]["status"]["podIP"] == "10.0.0.7"
            assert forwarded[1] == ("ADDED", "web-1", "12")

            # A waiting reason is read (image pulls, crash loops): forwarded.
            waiting = [{"name": "main", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]
            await kube.events.put(("MODIFIED", _pod("web-1", "13", containerStatuses=waiting)))
            await _until(lambda: len(forwarded) == 3, "the waiting reason was forwarded")

            # A pod being deleted: the deletion is news, its containers stopping are not.
            deleting = _pod("web-1", "14", containerStatuses=waiting)
            deleting["metadata"]["deletionTimestamp"] = "2025-01-31T12:00:00Z"
            await kube.events.put(("MODIFIED", deleting))
            stopped = copy.deepcopy(deleting)
            stopped["metadata"]["resourceVersion"] = "15"
            stopped["status"]["containerStatuses"] = [{"name": "main", "state": {"terminated": {"exitCode": 0}}}]
            await kube.events.put(("MODIFIED", stopped))
            # The server ends the stream: the watch resumes from the last version it saw.
            await kube.events.put(("BOOKMARK", {"metadata": {"resourceVersion": "16"}}))
            await kube.events.put(_END)
            await _until(lambda: len(kube.watches) == 2, "the watch was resumed")
            assert kube.watches == ["10", "16"]
            assert [f[2] for f in forwarded] == ["9", "12", "13", "14"]
            assert watch.owned("team", "web")[1]["metadata"]["resourceVersion"] == "15"

            # 410 Gone: list again, and hand on what changed meanwhile, and what went.
            await kube.events.put(WatchExpired("expired", status=410))
            await _until(lambda: len(kube.watches) == 3, "the watch listed again and resumed")
            assert kube.watches[2] == "30" and len(kube.lists) == 2
            assert forwarded[4:] == [("MODIFIED", "web-0", "25"), ("DELETED", "web-1", "15")]
            assert [p["metadata"]["name"] for p in watch.owned("team", "web")] == ["web-0"]
        finally:
            await watch.stop()
        after = _events()
        counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert counts == {"reconcile": 6, "unchanged": 2}, counts

    asyncio.run(main())


def test_each_watched_namespace_is_listed_before_the_cache_counts_as_filled() -> None:
    async def main() -> None:
        empty = {"metadata": {"resourceVersion": "1"}, "items": []}
        kube = ScriptedKube([empty])
        watch = OwnedWatch(kube, PODS, ["a", "b"], pod_reads)  # type: ignore[arg-type]
        kube.listings.append(empty)
        started = asyncio.Event()
        original = kube.list

        async def slow_list(resource: Any, **kwargs: Any) -> dict[str, Any]:
            if kwargs.get("namespace") == "b":
                await started.wait()
            return await original(resource, **kwargs)

        kube.list = slow_list  # type: ignore[method-assign]
        watch.start(lambda *_: "reconcile")
        try:
            await _until(lambda: len(kube.lists) == 1, "namespace a was listed")
            assert not watch.synced.is_set()
            started.set()
            await asyncio.wait_for(watch.synced.wait(), 10)
            assert sorted(str(ns) for ns, _ in kube.lists) == ["a", "b"]
        finally:
            await watch.stop()

    asyncio.run(main())


class _NoCache:
    def __init__(self) -> None:
        self.read: list[tuple[str, str]] = []

    def devserver(self, namespace: str, name: str) -> None:
        self.read.append((namespace, name))


def test_no_reconcile_runs_before_the_pod_cache_has_its_first_listing() -> None:
    async def main() -> None:
        ready = asyncio.Event()
        cache = _NoCache()
        reconciler = Reconciler(None, cache, OperatorSettings(), ready=ready)  # type: ignore[arg-type]
        reconciler.queue.trigger(("team", "web"))
        try:
            await _until(lambda: reconciler.queue.runs == 1, "the reconcile started")
            for _ in range(20):  # it waits on the event, so nothing moves however long the loop turns
                await asyncio.sleep(0)
            assert cache.read == []
            ready.set()
            await _until(lambda: cache.read == [("team", "web")], "the reconcile read the cache once ready")
        finally:
            await reconciler.stop()

    asyncio.run(main())


def test_a_pod_marked_for_disruption_waits_for_its_deletion_to_reconcile() -> None:
    """Eviction, taint and preemption mark the pod (DisruptionTarget) and then delete it: a reconcile between
    the two saw the pod still Running and closed the interruption before it began."""

    async def main() -> None:
        reconciler = Reconciler(None, _NoCache(), OperatorSettings(debounce=0.1))  # type: ignore[arg-type]
        try:
            marked = _pod("web-0", "5", ready=True)
            marked["status"]["conditions"].append(
                {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}
            )
            assert reconciler.owned_changed("Pod", "MODIFIED", marked) == "progress"
            due = reconciler.queue.due_in(("team", "web"))
            assert due is not None and due > 1.0, due
            marked["metadata"]["deletionTimestamp"] = "2025-01-31T12:00:00Z"
            assert reconciler.owned_changed("Pod", "MODIFIED", marked) == "reconcile"
            due = reconciler.queue.due_in(("team", "web"))
            assert due is not None and due <= 0.1, due
        finally:
            await reconciler.stop()

    asyncio.run(main())


def _statefulset(version: str, *, generation: int = 1, observed: int | None = 1, revision: str = "web-abc",
                 annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "web",
            "namespace": "team",
            "uid": "uid-sts",
            "resourceVersion": version,
            "generation": generation,
            "labels": {NAME_LABEL: "web"},
            "annotations": annotations or {"devservers.io/applied-hash": "h1"},
        },
        "spec": {"replicas": 1, "serviceName": "web"},
        "status": {"observedGeneration": observed, "updateRevision": revision, "currentRevision": revision,
                   **status},
    }


def _service(version: str, *, annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "team",
            "uid": "uid-svc",
            "resourceVersion": version,
            "labels": {NAME_LABEL: "web"},
            "annotations": annotations or {"devservers.io/applied-hash": "s1"},
        },
        "spec": {"clusterIP": "None"},
        "status": status,
    }


def test_a_statefulset_event_wakes_the_reconcile_only_when_what_is_read_changed() -> None:
    """The controller's replica counts follow the pods, whose own events are read: not news. Its first
    status (observedGeneration, updateRevision), a spec change and a new applied hash are."""

    async def main() -> None:
        before = _events("StatefulSet")
        kube = ScriptedKube([{"metadata": {"resourceVersion": "10"}, "items": []}])
        forwarded: list[tuple[str | None, str]] = []

        def forward(kind: str, event_type: str | None, body: Any) -> str:
            assert kind == "StatefulSet"
            forwarded.append((event_type, body["metadata"]["resourceVersion"]))
            return "reconcile"

        watch = OwnedWatch(kube, STATEFULSETS, [], statefulset_reads)  # type: ignore[arg-type]
        watch.start(forward)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            assert watch.one("team", "web") is None
            await kube.events.put(("ADDED", _statefulset("11", observed=None, revision="")))
            await kube.events.put(("MODIFIED", _statefulset("12")))  # the controller's first status
            await kube.events.put(("MODIFIED", _statefulset("13", replicas=1, currentReplicas=1)))
            await kube.events.put(("MODIFIED", _statefulset("14", replicas=1, readyReplicas=1)))
            await _until(lambda: (watch.one("team", "web") or {}).get("metadata", {}).get("resourceVersion") == "14",
                         "the cache holds the last StatefulSet")
            assert forwarded == [("ADDED", "11"), ("MODIFIED", "12")]
            assert (watch.one("team", "web") or {})["status"]["readyReplicas"] == 1

            # Someone edits the spec (a new generation), the controller sees it, rolls to a new revision.
            edited = _statefulset("15", generation=2, readyReplicas=1)
            edited["spec"]["replicas"] = 2
            await kube.events.put(("MODIFIED", edited))
            rolled = copy.deepcopy(edited)
            rolled["metadata"]["resourceVersion"] = "16"
            rolled["status"] |= {"observedGeneration": 2, "updateRevision": "web-def"}
            await kube.events.put(("MODIFIED", rolled))
            # The operator's replace: a new applied hash.
            await kube.events.put(("MODIFIED", _statefulset("17", generation=3, observed=2, revision="web-def",
                                                            annotations={"devservers.io/applied-hash": "h2"})))
            await kube.events.put(("DELETED", _statefulset("18", generation=3, observed=2, revision="web-def")))
            await _until(lambda: len(forwarded) == 6, "the edit, rollout, replace and deletion were forwarded")
            assert [f[1] for f in forwarded[2:]] == ["15", "16", "17", "18"]
            assert watch.one("team", "web") is None
        finally:
            await watch.stop()
        after = _events("StatefulSet")
        counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert counts == {"reconcile": 6, "unchanged": 2}, counts

    asyncio.run(main())


def test_a_service_event_wakes_the_reconcile_only_when_what_is_read_changed() -> None:
    async def main() -> None:
        before = _events("Service")
        listing = {"metadata": {"resourceVersion": "10"}, "items": [_service("9")]}
        kube = ScriptedKube([listing])
        forwarded: list[tuple[str | None, str]] = []

        def forward(kind: str, event_type: str | None, body: Any) -> str:
            assert kind == "Service"
            forwarded.append((event_type, body["metadata"]["resourceVersion"]))
            return "reconcile"

        watch = OwnedWatch(kube, SERVICES, ["team"], service_reads)  # type: ignore[arg-type]
        watch.start(forward)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            assert kube.lists == [("team", MANAGED_SELECTOR)]
            # A load balancer's address is not read; a finalizer is (kept on a replace), so is the hash.
            await kube.events.put(("MODIFIED", _service("11", loadBalancer={"ingress": [{"ip": "10.0.0.9"}]})))
            with_finalizer = _service("12")
            with_finalizer["metadata"]["finalizers"] = ["example.com/keep"]
            await kube.events.put(("MODIFIED", with_finalizer))
            await kube.events.put(("MODIFIED", _service("13", annotations={"devservers.io/applied-hash": "s2"})))
            await _until(lambda: len(forwarded) == 3, "the finalizer and the new hash were forwarded")
            assert forwarded == [("ADDED", "9"), ("MODIFIED", "12"), ("MODIFIED", "13")]
            assert (watch.one("team", "web") or {})["metadata"]["resourceVersion"] == "13"
        finally:
            await watch.stop()
        after = _events("Service")
        counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert counts == {"reconcile": 3, "unchanged": 1}, counts

    asyncio.run(main())


def test_the_owned_watches_are_ready_only_when_every_kind_has_its_first_listing() -> None:
    async def main() -> None:
        release = {kind: asyncio.Event() for kind in ("Pod", "StatefulSet", "Service")}
        listed: list[str] = []

        class Kube(ScriptedKube):
            async def list(self, resource: Any, **_: Any) -> dict[str, Any]:
                await release[resource.kind].wait()
                listed.append(resource.kind)
                return {"metadata": {"resourceVersion": "1"}, "items": []}

        owned = OwnedWatches(Kube([]), [])  # type: ignore[arg-type]
        owned.start(lambda *_: "reconcile")
        try:
            for kind in ("Service", "Pod"):
                release[kind].set()
                await _until(lambda kind=kind: kind in listed, f"the {kind}s were listed")
                assert not owned.synced.is_set(), f"ready after {listed} only"
            release["StatefulSet"].set()
            await asyncio.wait_for(owned.synced.wait(), 10)
            assert sorted(listed) == ["Pod", "Service", "StatefulSet"]
        finally:
            await owned.stop()

    asyncio.run(main())
