"""Conformance through the official client: watch semantics (resume, bookmarks, timeouts, 410, selectors)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conformance_support import Clients, assert_status, clients_for, published_root_ca, raises_status
from kubernetes import watch

from devservers_sdk.localcluster.apiserver import server
from devservers_sdk.localcluster.pytest_plugin import ClusterHandle


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": dict(data)}


def collect(stream: Any, count: int, *, skip_bookmarks: bool = True) -> list[tuple[str, str, dict[str, Any]]]:
    """Take ``count`` events from a kubernetes.watch stream as (type, name, raw object)."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    for event in stream:
        if skip_bookmarks and event["type"] == "BOOKMARK":
            continue
        events.append((event["type"], event["raw_object"]["metadata"]["name"], event["raw_object"]))
        if len(events) == count:
            break
    return events


def test_watch_from_list_resource_version_sees_exactly_later_events(k8s: Clients, namespace: str) -> None:
    for name in ("a", "b"):
        k8s.core.create_namespaced_config_map(namespace, cm(name))
    listed = k8s.core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    k8s.core.create_namespaced_config_map(namespace, cm("c"))
    k8s.core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    k8s.core.delete_namespaced_config_map("b", namespace)
    w = watch.Watch()
    stream = w.stream(k8s.core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=10)
    first = collect(stream, 3)
    assert [(t, n) for t, n, _ in first] == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert first[1][2]["data"] == {"v": "2"}
    versions = [int(o["metadata"]["resourceVersion"]) for _, _, o in first]
    assert versions == sorted(versions) and versions[0] > int(rv)
    # Nothing was repeated or is pending: the next event is the next write.
    k8s.core.create_namespaced_config_map(namespace, cm("d"))
    assert [(t, n) for t, n, _ in collect(stream, 1)] == [("ADDED", "d")]
    w.stop()
    # Without a resourceVersion the watch starts with the current state as ADDED events.
    initial = []
    for event in watch.Watch().stream(k8s.core.list_namespaced_config_map, namespace, timeout_seconds=5):
        name = event["raw_object"]["metadata"]["name"]
        if name != "kube-root-ca.crt":  # published into every namespace by real clusters
            initial.append((event["type"], name))
        if len(initial) == 3:
            break
    assert sorted(initial) == [("ADDED", "a"), ("ADDED", "c"), ("ADDED", "d")]


def test_watch_single_object_and_field_selector(k8s: Clients, namespace: str) -> None:
    rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version
    for name in ("x", "y"):
        k8s.core.create_namespaced_config_map(namespace, cm(name))
    k8s.core.patch_namespaced_config_map("x", namespace, {"data": {"n": "1"}})
    k8s.core.patch_namespaced_config_map("y", namespace, {"data": {"n": "1"}})
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        field_selector="metadata.name=y",
        timeout_seconds=10,
    )
    assert [(t, n) for t, n, _ in collect(stream, 2)] == [("ADDED", "y"), ("MODIFIED", "y")]
    events = list(
        k8s.raw.watch_lines(
            f"/api/v1/watch/namespaces/{namespace}/configmaps/x?resourceVersion={rv}&timeoutSeconds=1"
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "x"),
        ("MODIFIED", "x"),
    ]


def test_label_selector_transitions_are_added_and_deleted(k8s: Clients, namespace: str) -> None:
    rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version
    k8s.core.create_namespaced_config_map(namespace, cm("obj"))
    k8s.core.patch_namespaced_config_map("obj", namespace, {"metadata": {"labels": {"app": "w"}}})
    k8s.core.patch_namespaced_config_map("obj", namespace, {"data": {"while": "matching"}})
    unlabelled = k8s.core.patch_namespaced_config_map(
        "obj", namespace, {"metadata": {"labels": {"app": "other"}}}
    )
    k8s.core.patch_namespaced_config_map("obj", namespace, {"data": {"while": "not matching"}})
    k8s.core.delete_namespaced_config_map("obj", namespace)
    k8s.core.create_namespaced_config_map(namespace, cm("sentinel", {"app": "w"}))
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        label_selector="app=w",
        timeout_seconds=10,
    )
    events = collect(stream, 4)
    assert [(t, n) for t, n, _ in events] == [
        ("ADDED", "obj"),
        ("MODIFIED", "obj"),
        ("DELETED", "obj"),
        ("ADDED", "sentinel"),
    ]
    # The DELETED event carries the object as the watcher last saw it match (the watch cache's previous
    # object), at the resourceVersion of the write that made it stop matching.
    gone_event = events[2][2]
    assert gone_event["metadata"]["labels"] == {"app": "w"} and gone_event["data"] == {"while": "matching"}
    assert gone_event["metadata"]["resourceVersion"] == unlabelled.metadata.resource_version
    # Set-based selectors work on watches too.
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        label_selector="app notin (w),app",
        timeout_seconds=10,
    )
    events = collect(stream, 3)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "obj"), ("MODIFIED", "obj"), ("DELETED", "obj")]
    assert events[0][2]["metadata"]["labels"] == {"app": "other"}


def test_watch_timeout_seconds_ends_the_stream(k8s: Clients, namespace: str) -> None:
    published_root_ca(k8s, namespace)  # so that nothing happens in the namespace while the watch is open
    started = time.monotonic()
    events = list(
        k8s.raw.watch_lines(
            f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1"
            f"&resourceVersion={k8s.core.list_namespaced_config_map(namespace).metadata.resource_version}"
        )
    )
    elapsed = time.monotonic() - started
    assert events == []
    assert 0.9 <= elapsed < 5, elapsed
    started = time.monotonic()
    list(watch.Watch().stream(k8s.core.list_namespaced_config_map, namespace, timeout_seconds=1))
    assert time.monotonic() - started < 5


@pytest.mark.emulator_only
def test_bookmarks(k8s: Clients, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "BOOKMARK_INTERVAL", 0.2)
    rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version
    k8s.core.create_namespaced_config_map(namespace, cm("before-bookmark"))
    raw_events = []
    for event in k8s.raw.watch_lines(
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={rv}"
        "&allowWatchBookmarks=true&timeoutSeconds=3"
    ):
        raw_events.append(event)
        if event["type"] == "BOOKMARK":
            break
    assert [e["type"] for e in raw_events] == ["ADDED", "BOOKMARK"]
    bookmark = raw_events[1]["object"]
    assert bookmark["kind"] == "ConfigMap" and bookmark["apiVersion"] == "v1"
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(
        raw_events[0]["object"]["metadata"]["resourceVersion"]
    )
    # The Python client passes bookmarks on and remembers their resourceVersion to resume from.
    w = watch.Watch()
    for event in w.stream(
        k8s.core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    ):
        if event["type"] == "BOOKMARK":
            break
    assert int(w.resource_version) >= int(bookmark["metadata"]["resourceVersion"])
    # Without allowWatchBookmarks there are none.
    plain = list(
        k8s.raw.watch_lines(
            f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        )
    )
    assert [e["type"] for e in plain] == ["ADDED"]


def test_watch_sees_concurrent_writes_in_order(k8s: Clients, namespace: str) -> None:
    published_root_ca(k8s, namespace)  # a real cluster's kube-root-ca.crt lands before the watch's version
    rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version

    def writer() -> None:
        with clients_for(k8s.kubeconfig) as other:
            for i in range(10):
                other.core.create_namespaced_config_map(namespace, cm(f"w{i}"))

    thread = threading.Thread(target=writer)
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=10
    )
    thread.start()
    events = collect(stream, 10)
    thread.join()
    assert [(t, n) for t, n, _ in events] == [("ADDED", f"w{i}") for i in range(10)]


@pytest.mark.emulator_only
def test_gone_after_compaction_then_relist(cluster: ClusterHandle, k8s: Clients, namespace: str) -> None:
    emulator = cluster.require_emulator()
    assert emulator.runtime is not None
    old_rv = k8s.core.list_namespaced_config_map(namespace).metadata.resource_version
    k8s.core.create_namespaced_config_map(namespace, cm("new"))
    emulator.call(emulator.runtime.api.store.compact)
    with raises_status(410, "Expired"):
        list(
            watch.Watch().stream(
                k8s.core.list_namespaced_config_map, namespace, resource_version=old_rv, timeout_seconds=2
            )
        )
    events = list(
        k8s.raw.watch_lines(
            f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={old_rv}&timeoutSeconds=2"
        )
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert_status(events[0]["object"], 410, "Expired")
    # The relist-and-rewatch recovery every client implements works from the fresh resourceVersion.
    fresh = k8s.core.list_namespaced_config_map(namespace)
    assert "new" in [i.metadata.name for i in fresh.items]
    k8s.core.create_namespaced_config_map(namespace, cm("newer"))
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_config_map,
        namespace,
        resource_version=fresh.metadata.resource_version,
        timeout_seconds=5,
    )
    assert [(t, n) for t, n, _ in collect(stream, 1)] == [("ADDED", "newer")]
