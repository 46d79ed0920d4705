"""The order of a transition's Event and the status write that makes it, with the reconciler's two
collaborators (the watch caches and the API client) replaced by recorders: which request comes first is
not something a test against a cluster can see, only a reader who loses the race.

A DevServer whose flavor does not exist is Degraded (FlavorNotFound) on its first reconcile, a transition
with a Warning Event, and needs no other request than the flavor's GET.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from devservers_operator.reconcile import Reconciler
from devservers_operator.settings import OperatorSettings

from devservers_sdk.errors import ClusterUnreachableError, ConflictError, NotFoundError, ServerError
from devservers_sdk.kube_async import DEVSERVERS, EVENTS, Resource

NAMESPACE, NAME = "team", "dev"


def _body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "devservers.io/v1",
        "kind": "DevServer",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "u-1", "generation": 1,
                     "resourceVersion": "10", "creationTimestamp": "2025-01-31T11:00:00Z"},
        "spec": {"owner": "alice@example.com", "flavor": "no-such-flavor", "image": "python:3.12"},
    }
    if status is not None:
        body["status"] = status
    return body


class Cache:
    """The watch caches, holding one DevServer and nothing else."""

    def __init__(self) -> None:
        self.body = _body()

    def devserver(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body if (namespace, name) == (NAMESPACE, NAME) else None

    def flavor(self, name: str) -> dict[str, Any] | None:
        return None

    def flavor_names(self) -> list[str]:
        return ["small"]

    def statefulset(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []

    def claims(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []

    def flavor_users(self, flavor: str) -> list[tuple[str, str]]:
        return []

    def namespace_defaults(self, namespace: str) -> dict[str, Any] | None:
        return None

    def devservers_in(self, namespace: str) -> list[tuple[str, str]]:
        return []


class Kube:
    """The API client: records each request in order; a status write fails while ``failures`` lasts."""

    def __init__(self, cache: Cache, failures: list[Exception]) -> None:
        self.cache = cache
        self.failures = failures
        self.requests: list[tuple[str, str]] = []

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        self.requests.append((f"get {resource.plural}", name))
        raise NotFoundError(f"{resource.kind} '{name}' not found")

    async def create(self, resource: Resource, manifest: dict[str, Any], *,
                     namespace: str | None = None) -> dict[str, Any]:
        assert resource is EVENTS, f"only Events are created here, not {resource.kind}"
        self.requests.append(("event", manifest["reason"]))
        return manifest

    async def patch(self, resource: Resource, name: str, patch: dict[str, Any], *, namespace: str | None = None,
                    subresource: str | None = None, content_type: str = "") -> dict[str, Any]:
        assert (resource, subresource) == (DEVSERVERS, "status"), f"only the status is written here: {resource}"
        status = patch["status"]
        self.requests.append(("status", str(status.get("phase"))))
        if self.failures:
            raise self.failures.pop(0)
        written = {**self.cache.body, "status": {**(self.cache.body.get("status") or {}), **status}}
        written["metadata"] = {**written["metadata"],
                               "resourceVersion": str(int(written["metadata"]["resourceVersion"]) + 1)}
        self.cache.body = written  # the watch event of this write, delivered at once
        return written


def _reconcile_until_written(failures: list[Exception]) -> list[tuple[str, str]]:
    """Reconcile once per failing status write, once more (the write lands), and once after that."""
    cache = Cache()
    kube = Kube(cache, list(failures))

    async def run() -> None:
        reconciler = Reconciler(kube, cache, OperatorSettings())  # type: ignore[arg-type]
        for failure in failures:
            with pytest.raises(type(failure)):
                await reconciler.reconcile((NAMESPACE, NAME))
        await reconciler.reconcile((NAMESPACE, NAME))
        await reconciler.reconcile((NAMESPACE, NAME))  # written now: no transition, nothing to say
        await reconciler.stop()

    asyncio.run(run())
    return [request for request in kube.requests if not request[0].startswith("get ")]


def test_the_event_of_a_transition_is_posted_before_the_status_that_makes_it() -> None:
    """A reader who sees phase and Degraded reason finds the Event too (it used to follow the write, and an
    image-pull test that listed Events right after seeing Failed found none)."""
    requests = _reconcile_until_written([])
    events = [i for i, (kind, _) in enumerate(requests) if kind == "event"]
    writes = [i for i, (kind, _) in enumerate(requests) if kind == "status"]
    assert [requests[i][1] for i in events] == ["FlavorNotFound"], requests
    assert len(writes) == 1 and events[0] < writes[0], requests


@pytest.mark.parametrize(
    "failures",
    [
        [ServerError("503 from the API server")],
        [ClusterUnreachableError("connection reset"), ConflictError("changed meanwhile")],
    ],
    ids=["one-5xx", "reset-then-conflict"],
)
def test_a_status_write_that_fails_and_is_retried_does_not_announce_its_transition_twice(
    failures: list[Exception],
) -> None:
    requests = _reconcile_until_written(failures)
    assert [kind for kind, _ in requests] == ["event"] + ["status"] * (len(failures) + 1), requests
