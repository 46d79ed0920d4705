"""Interruptions in the status: a pod the system took away (eviction, taint, preemption) makes the server
Interrupted with reason and time, counted once per episode, until every rank is Ready again."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from devservers_sdk import crds
from devservers_sdk.localcluster.apiserver import schema
from devservers_sdk.models import DevServerStatus
from devservers_sdk.status import Disruption, pod_disruption
from tests.sdk.test_status import NOW, container_creating, derive, devserver, just_created, running_ready


def evicted(rank: int, *, reason: str = "EvictionByEvictionAPI", message: str = "Eviction API: evicting"
            ) -> dict[str, Any]:
    """A running pod as the eviction API leaves it: DisruptionTarget True, then a deletionTimestamp."""
    pod = running_ready(rank)
    pod["metadata"]["deletionTimestamp"] = "2025-01-31T12:04:30Z"
    pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": reason,
                                        "message": message, "lastTransitionTime": "2025-01-31T12:04:30Z"})
    return pod


def again(previous: DevServerStatus) -> dict[str, Any]:
    return previous.model_dump(mode="json", by_alias=True, exclude_none=True)


def test_a_pod_without_disruption_target_is_no_interruption() -> None:
    deleted = running_ready(1)
    deleted["metadata"]["deletionTimestamp"] = "2025-01-31T12:04:30Z"  # the operator or a user deleted it
    assert pod_disruption(deleted) is None
    status = derive(devserver(distributed=2), pods=[running_ready(0), deleted])
    assert status.phase != "Interrupted" and status.interruptions is None and status.condition("Interrupted") is None


def test_a_drained_rank_interrupts_then_running_again_recovers() -> None:
    server = devserver(distributed=2)
    first = derive(server, pods=[running_ready(0), evicted(1)])
    assert first.phase == "Interrupted"
    assert first.interruptions == 1
    last = first.last_interruption
    assert last is not None and (last.reason, last.time, last.pods, last.nodes) == (
        "Evicted", NOW, ["mydev-1"], ["ip-10-0-1-18.ec2.internal"])
    assert "pod mydev-1 on node ip-10-0-1-18.ec2.internal evicted (Eviction API: evicting)" in first.message
    interrupted = first.condition("Interrupted")
    assert interrupted is not None and (interrupted.status, interrupted.reason) == ("True", "Evicted")

    # The old pod is gone, its replacement is starting elsewhere: still the same interruption, counted once.
    later = NOW + timedelta(seconds=20)
    second = derive(devserver(distributed=2, status=again(first)), pods=[running_ready(0), container_creating(1)],
                    now=later)
    assert (second.phase, second.interruptions) == ("Interrupted", 1)
    assert second.last_interruption == last
    # The evidence seen in a watch event again (the operator's memory) is not counted twice either.
    seen = pod_disruption(evicted(1))
    assert seen is not None
    third = derive(devserver(distributed=2, status=again(second)), pods=[running_ready(0), just_created(1)],
                   disruptions=[seen], now=later)
    assert (third.phase, third.interruptions) == ("Interrupted", 1)

    back = derive(devserver(distributed=2, status=again(third)), pods=[running_ready(0), running_ready(1)],
                  now=later + timedelta(seconds=5))
    assert (back.phase, back.interruptions) == ("Running", 1)
    recovered = back.condition("Interrupted")
    assert recovered is not None and (recovered.status, recovered.reason) == ("False", "Recovered")
    assert recovered.last_transition_time == later + timedelta(seconds=5)
    assert back.last_interruption == last


def test_a_second_interruption_counts_again() -> None:
    server = devserver(distributed=2)
    first = derive(server, pods=[running_ready(0), evicted(1)])
    back = derive(devserver(distributed=2, status=again(first)), pods=[running_ready(0), running_ready(1)])
    new_pod = evicted(0, reason="DeletionByTaintManager", message="Taint manager: deleting due to NoExecute taint")
    new_pod["metadata"]["uid"] = "another-uid"
    second = derive(devserver(distributed=2, status=again(back)), pods=[new_pod, running_ready(1)],
                    now=NOW + timedelta(minutes=5))
    assert (second.phase, second.interruptions) == ("Interrupted", 2)
    assert second.last_interruption is not None
    assert (second.last_interruption.reason, second.last_interruption.pods) == ("NodeTainted", ["mydev-0"])


def test_a_pod_gone_before_the_reconcile_is_known_from_the_watch_event() -> None:
    gone = Disruption(pod="mydev-1", uid="u-gone", node="n2", reason="Evicted", message="Eviction API: evicting")
    status = derive(devserver(distributed=2), pods=[running_ready(0), just_created(1)], disruptions=[gone])
    assert (status.phase, status.interruptions) == ("Interrupted", 1)


def test_stop_and_delete_take_precedence_over_interrupted() -> None:
    stopping = derive(devserver(distributed=2), pods=[running_ready(0), evicted(1)], desired_stopped=True)
    assert stopping.phase == "Stopping"
    deleting = derive(devserver(distributed=2, deleting=True), pods=[running_ready(0), evicted(1)])
    assert deleting.phase == "Terminating"


def test_the_crd_keeps_and_accepts_the_interrupted_status() -> None:
    status = derive(devserver(distributed=2), pods=[running_ready(0), evicted(1)])
    server = devserver(distributed=2)
    manifest = {**server.to_manifest(), "status": again(status)}
    manifest["metadata"] |= {"uid": "u-1", "generation": 3, "creationTimestamp": "2025-01-31T12:00:00Z"}
    assert manifest["status"]["phase"] == "Interrupted" and manifest["status"]["lastInterruption"]["podUids"]
    openapi_schema = crds.devserver_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pruned, removed = schema.prune(openapi_schema, copy.deepcopy(manifest))
    assert removed == []
    assert schema.validate(openapi_schema, pruned) == []
