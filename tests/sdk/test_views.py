"""The one answer to each question every part asks of a DevServer and its pods (``devservers_sdk.views``).

Expiry, ready ranks, a pod's rank and readiness, on a model and on its manifest alike; and the places that
used to answer them on their own (the lifecycle rules, the status, launch, the client's describe) giving the
same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devservers_sdk import lifecycle, views
from devservers_sdk.client import _pod_summary
from devservers_sdk.launch import ranks_not_ready
from devservers_sdk.models import DevServer, DevServerFlavorSpec

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=1)


def manifest(*, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
             generation: int | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "mydev", "namespace": "alice", "creationTimestamp": CREATED.isoformat()}
    if generation is not None:
        metadata["generation"] = generation
    return {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": metadata,
            "spec": {"owner": "alice", "flavor": "cpu-small", **(spec or {})}, "status": status or {}}


def both(**kwargs: Any) -> tuple[dict[str, Any], DevServer]:
    document = manifest(**kwargs)
    return document, DevServer.from_manifest(document)


# -- expiry -------------------------------------------------------------------------------------------------

def test_the_operators_deadline_is_shown_while_it_is_current() -> None:
    for server in both(spec={"lifecycle": {"timeToLive": "4h"}},
                       status={"expiresAt": "2026-05-01T13:00:00Z", "observedGeneration": 2}, generation=2):
        assert views.expires_at(server) == datetime(2026, 5, 1, 13, 0, tzinfo=UTC)


def test_after_an_extend_the_spec_decides_until_the_operator_has_seen_it() -> None:
    # devctl's renderer showed the stale status.expiresAt here; the magics the new deadline.
    extended = (NOW + timedelta(hours=5)).isoformat()
    for server in both(spec={"lifecycle": {"expirationTime": extended}},
                       status={"expiresAt": "2026-05-01T13:00:00Z", "observedGeneration": 1}, generation=2):
        assert views.expires_at(server) == NOW + timedelta(hours=5)


def test_the_spec_deadline_is_the_lifecycle_rule_capped_by_the_flavor() -> None:
    flavor = DevServerFlavorSpec(max_time_to_live="2h")
    cases = [{"timeToLive": "4h"}, {"timeToLive": "30m"}, {},
             {"expirationTime": (NOW + timedelta(minutes=10)).isoformat(), "timeToLive": "4h"}]
    for lifecycle_spec in cases:
        document, model = both(spec={"lifecycle": lifecycle_spec})
        rule = lifecycle.expires_at(model.spec, created_at=CREATED, flavor_spec=flavor)
        assert views.expires_at(document, max_time_to_live="2h") == rule == views.expires_at(model, max_time_to_live="2h")
        uncapped = lifecycle.expires_at(model.spec, created_at=CREATED, flavor_spec=None)
        assert views.expires_at(document) == uncapped, lifecycle_spec
    assert views.expires_at(manifest(spec={"lifecycle": {"timeToLive": "4h"}}), max_time_to_live="2h") == \
        CREATED + timedelta(hours=2)
    assert views.expires_at(manifest()) is None


# -- stop and start -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "state"), [
    ("Stopped", "Stopped"), (" stopped ", "Stopped"), ("Running", "Running"), ("RUNNING", "Running"),
    ("", None), ("paused", None), (None, None),
])
def test_the_desired_state_is_read_as_the_operator_reads_it(value: str | None, state: str | None) -> None:
    annotations = {} if value is None else {"devservers.io/desired-state": value}
    assert views.desired_state(annotations) == state
    model = DevServer.from_manifest({**manifest(), "metadata": {**manifest()["metadata"], "annotations": annotations}})
    assert lifecycle.desired_stopped(model) is (state == "Stopped")


# -- ranks --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "status", "text"), [
    ({}, {}, "0/1"),
    ({"mode": "distributed"}, {}, "0/2"),
    ({"mode": "distributed", "distributed": {"worldSize": 3}}, {"readyReplicas": 1}, "1/3"),
    # distributed beside mode standalone is ignored: the dashboard counted its world size (0/4)
    ({"mode": "standalone", "distributed": {"worldSize": 4}}, {}, "0/1"),
    ({"mode": "distributed"}, {"readyReplicas": 0, "replicas": 0}, "0/0"),  # stopped
])
def test_ready_counts_the_world_size_until_the_operator_says(spec: dict[str, Any], status: dict[str, Any],
                                                             text: str) -> None:
    for server in both(spec=spec, status=status):
        assert views.ready_text(server) == text


# -- pods ---------------------------------------------------------------------------------------------------

def pod(name: str, *, rank: str | None = None, phase: str = "Running", ready: str | None = "True",
        deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {} if rank is None else {"apps.kubernetes.io/pod-index": rank}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": metadata, "status": {"phase": phase, "conditions": conditions}}


def test_a_pods_rank_is_its_index_label_else_its_ordinal() -> None:
    assert views.pod_rank(pod("mydev-1", rank="1")) == 1
    assert views.pod_rank(pod("mydev-1")) == 1  # before Kubernetes 1.28 there is no label
    assert views.pod_rank(pod("mydev-1", rank="x")) == 1
    assert views.pod_rank(pod("mydev", rank="²")) is None
    assert views.pod_rank(pod("stray")) is None


@pytest.mark.parametrize(("case", "running"), [
    (pod("x-0"), True),
    (pod("x-0", ready="False"), True),  # a failing probe: still exec-able, still paid for
    (pod("x-0", deleting=True), False),
    (pod("x-0", phase="Pending", ready="True"), False),
    (pod("x-0", phase="Succeeded", ready="False"), False),
    ({"metadata": {"name": "x-0"}}, False),  # no status yet
])
def test_a_pod_is_running_when_its_phase_says_so_and_it_is_not_being_deleted(case: dict[str, Any],
                                                                             running: bool) -> None:
    assert views.pod_running(case) is running


@pytest.mark.parametrize(("case", "ready"), [
    (pod("x-0"), True),
    (pod("x-0", ready="False"), False),
    (pod("x-0", ready=None), False),
    (pod("x-0", deleting=True), False),  # describe called this one ready
    (pod("x-0", phase="Succeeded", ready="False"), False),
    (pod("x-0", phase="Pending", ready="True"), True),  # launch refused it: the condition decides
])
def test_a_pod_is_ready_when_its_ready_condition_is_true_and_it_is_not_being_deleted(case: dict[str, Any],
                                                                                   ready: bool) -> None:
    assert views.pod_ready(case) is ready
    assert _pod_summary(case).ready is ready
    assert (0 in ranks_not_ready([{**case, "metadata": {**case["metadata"], "labels": {
        "apps.kubernetes.io/pod-index": "0"}}}], 1)[0]) is ready
