"""The operator's own pod watch (``podwatch.py``) against a scripted API: the cache it keeps, which events
wake the reconcile, how it resumes and relists, and the reconciler waiting for its first listing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from devservers_operator.metrics import COUNTERS
from devservers_operator.podwatch import MANAGED_SELECTOR, PodWatch
from devservers_operator.reconcile import Reconciler
from devservers_operator.settings import OperatorSettings

from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.errors import WatchExpired

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


def _pod_events() -> dict[str, int]:
    return {outcome: n for (kind, outcome), n in COUNTERS.watch_events.items() if kind == "Pod"}


def test_the_pod_watch_caches_every_event_and_wakes_only_on_what_is_read() -> None:
    async def main() -> None:
        before = _pod_events()
        first = {"metadata": {"resourceVersion": "10"}, "items": [_pod("web-0", "9")]}
        # After the 410: web-0 became ready while nobody watched, web-1 went.
        second = {"metadata": {"resourceVersion": "30"}, "items": [_pod("web-0", "25", ready=True)]}
        kube = ScriptedKube([first, second])
        forwarded: list[tuple[str | None, str, str]] = []

        def forward(kind: str, event_type: str | None, body: Any) -> str:
            forwarded.append((event_type, body["metadata"]["name"], body["metadata"]["resourceVersion"]))
            return "reconcile"

        watch = PodWatch(kube, [])  # type: ignore[arg-type]
        assert watch.scopes == [None] and not watch.synced.is_set()
        watch.start(forward)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            assert kube.lists == [(None, MANAGED_SELECTOR)]
            assert [p["metadata"]["name"] for p in watch.pods("team", "web")] == ["web-0"]
            assert forwarded == [("ADDED", "web-0", "9")]

            # Only the pod's IP and version moved: cached, not forwarded.
            await kube.events.put(("MODIFIED", _pod("web-0", "11", podIP="10.0.0.7")))
            await kube.events.put(("ADDED", _pod("web-1", "12")))
            await _until(lambda: len(forwarded) == 2, "web-1's ADDED was forwarded")
            assert watch.pods("team", "web")[0]["status"]["podIP"] == "10.0.0.7"
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
            assert watch.pods("team", "web")[1]["metadata"]["resourceVersion"] == "15"

            # 410 Gone: list again, and hand on what changed meanwhile, and what went.
            await kube.events.put(WatchExpired("expired", status=410))
            await _until(lambda: len(kube.watches) == 3, "the watch listed again and resumed")
            assert kube.watches[2] == "30" and len(kube.lists) == 2
            assert forwarded[4:] == [("MODIFIED", "web-0", "25"), ("DELETED", "web-1", "15")]
            assert [p["metadata"]["name"] for p in watch.pods("team", "web")] == ["web-0"]
        finally:
            await watch.stop()
        after = _pod_events()
        counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert counts == {"reconcile": 6, "unchanged": 2}, counts

    asyncio.run(main())


def test_each_watched_namespace_is_listed_before_the_cache_counts_as_filled() -> None:
    async def main() -> None:
        empty = {"metadata": {"resourceVersion": "1"}, "items": []}
        kube = ScriptedKube([empty])
        watch = PodWatch(kube, ["a", "b"])  # type: ignore[arg-type]
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
