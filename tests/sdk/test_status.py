"""Status from what the pods do: realistic pod JSON (as kubelet and scheduler write it) in, phase and
conditions out, with lastTransitionTime kept while a condition's status holds."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devservers_sdk import crds
from devservers_sdk.lifecycle import DESIRED_STATE_ANNOTATION, Activity, Decision
from devservers_sdk.localcluster.apiserver import schema
from devservers_sdk.models import DevServer, DevServerStatus
from devservers_sdk.status import derive_status, latest_pod_start, pod_rank, pods_to_replace

NOW = datetime(2025, 1, 31, 12, 5, tzinfo=UTC)
EARLIER = datetime(2025, 1, 31, 11, 0, tzinfo=UTC)
REVISION = "mydev-6c9d8b7f5d"
OLD_REVISION = "mydev-5f7d9c8b4a"
IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
UNSCHEDULABLE = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
    "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
    "scheduling, 2 No preemption victims found for incoming pod."
)


# -- fixtures: pods as the StatefulSet controller, scheduler and kubelet leave them -------------------------


def _metadata(rank: int, revision: str) -> dict[str, Any]:
    return {
        "name": f"mydev-{rank}",
        "generateName": "mydev-",
        "namespace": "alice",
        "uid": f"0b5e3a52-1111-4c3e-9d7e-00000000000{rank}",
        "resourceVersion": str(4000 + rank),
        "creationTimestamp": "2025-01-31T12:00:01Z",
        "labels": {
            "app.kubernetes.io/name": "devserver",
            "app.kubernetes.io/instance": "mydev",
            "app.kubernetes.io/managed-by": "devservers-operator",
            "devservers.io/name": "mydev",
            "devservers.io/owner": "alice",
            "apps.kubernetes.io/pod-index": str(rank),
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": f"mydev-{rank}",
        },
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "mydev",
                "uid": "9a8b7c6d-2222-4e5f-8a9b-000000000000",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _spec(rank: int, *, node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "hostname": f"mydev-{rank}",
        "subdomain": "mydev",
        "containers": [{"name": "devserver", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
    }
    if node:
        spec["nodeName"] = node
    return spec


def _condition(kind: str, status: str, at: str = "2025-01-31T12:00:02Z", **extra: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": at, **extra}


def pending_unschedulable(rank: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(rank, REVISION),
        "spec": _spec(rank, node=None),
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [
                _condition("PodScheduled", "False", reason="Unschedulable", message=UNSCHEDULABLE)
            ],
        },
    }


def just_created(rank: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(rank, REVISION),
        "spec": _spec(rank, node=None),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def _scheduled_pod(
    rank: int, *, phase: str, ready: bool, container: dict[str, Any], revision: str = REVISION
) -> dict[str, Any]:
    unready = {"reason": "ContainersNotReady", "message": "containers with unready status: [devserver]"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(rank, revision),
        "spec": _spec(rank, node=f"ip-10-0-1-{17 + rank}.ec2.internal"),
        "status": {
            "phase": phase,
            "hostIP": f"10.0.1.{17 + rank}",
            "hostIPs": [{"ip": f"10.0.1.{17 + rank}"}],
            **(
                {"podIP": f"192.168.7.{40 + rank}", "podIPs": [{"ip": f"192.168.7.{40 + rank}"}]}
                if phase == "Running"
                else {}
            ),
            "startTime": "2025-01-31T12:00:02Z",
            "qosClass": "Burstable",
            "conditions": [
                _condition("PodReadyToStartContainers", "True" if phase == "Running" else "False"),
                _condition("Initialized", "True"),
                _condition("Ready", "True", "2025-01-31T12:00:09Z")
                if ready
                else _condition("Ready", "False", **unready),
                _condition("ContainersReady", "True", "2025-01-31T12:00:09Z")
                if ready
                else _condition("ContainersReady", "False", **unready),
                _condition("PodScheduled", "True", "2025-01-31T12:00:01Z"),
            ],
            "containerStatuses": [
                {
                    "name": "devserver",
                    "image": IMAGE,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": ready,
                    "lastState": {},
                    **container,
                }
            ],
        },
    }


def container_creating(rank: int = 0) -> dict[str, Any]:
    return _scheduled_pod(
        rank, phase="Pending", ready=False, container={"state": {"waiting": {"reason": "ContainerCreating"}}}
    )


def running_ready(rank: int = 0, *, revision: str = REVISION) -> dict[str, Any]:
    return _scheduled_pod(
        rank,
        phase="Running",
        ready=True,
        revision=revision,
        container={
            "state": {"running": {"startedAt": "2025-01-31T12:00:08Z"}},
            "containerID": f"containerd://4f1d2c{rank}e9b7",
            "imageID": f"docker.io/pytorch/pytorch@sha256:{'ab' * 32}",
        },
    )


def image_pull_backoff(rank: int = 0, *, revision: str = REVISION) -> dict[str, Any]:
    return _scheduled_pod(
        rank,
        phase="Pending",
        ready=False,
        revision=revision,
        container={
            "image": "registry.invalid/pytorch:nope",
            "state": {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "registry.invalid/pytorch:nope"',
                }
            },
        },
    )


def err_image_pull(rank: int = 0) -> dict[str, Any]:
    return _scheduled_pod(
        rank,
        phase="Pending",
        ready=False,
        container={
            "image": "pytorch/pytorch:nope",
            "state": {
                "waiting": {
                    "reason": "ErrImagePull",
                    "message": (
                        "rpc error: code = NotFound desc = failed to pull and unpack image "
                        '"docker.io/pytorch/pytorch:nope": failed to resolve reference '
                        '"docker.io/pytorch/pytorch:nope": docker.io/pytorch/pytorch:nope: not found'
                    ),
                }
            },
        },
    )


def crash_loop(rank: int = 0) -> dict[str, Any]:
    pod = _scheduled_pod(
        rank,
        phase="Running",
        ready=False,
        container={
            "restartCount": 4,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off 40s restarting failed container=devserver pod=mydev-{rank}_alice"
                        f"(0b5e3a52-1111-4c3e-9d7e-00000000000{rank})"
                    ),
                }
            },
            "lastState": {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": "2025-01-31T12:03:10Z",
                    "finishedAt": "2025-01-31T12:03:41Z",
                    "containerID": "containerd://77aa",
                }
            },
        },
    )
    return pod


def terminating(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"]["deletionTimestamp"] = "2025-01-31T12:04:30Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    return pod


def event(
    pod: str,
    reason: str,
    message: str,
    *,
    kind: str = "Warning",
    at: str = "2025-01-31T12:04:00Z",
    component: str = "kubelet",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod}.181f0a2b3c4d5e6f", "namespace": "alice", "creationTimestamp": at},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "alice"},
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 2,
        "firstTimestamp": "2025-01-31T12:00:03Z",
        "lastTimestamp": at,
        "source": {"component": component},
    }


def statefulset(
    replicas: int = 1,
    *,
    generation: int = 1,
    observed: int = 1,
    ready: int | None = None,
    revision: str = REVISION,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "mydev", "namespace": "alice", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready or 0,
            "currentRevision": revision,
            "updateRevision": revision,
        },
    }


def devserver(
    *,
    distributed: int | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
    generation: int = 3,
) -> DevServer:
    metadata: dict[str, Any] = {
        "name": "mydev",
        "namespace": "alice",
        "uid": "u-1",
        "generation": generation,
        "creationTimestamp": "2025-01-31T12:00:00Z",
        "annotations": annotations or {},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-31T12:04:59Z"
        metadata["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    spec: dict[str, Any] = {"owner": "alice", "flavor": "gpu-small"}
    if distributed:
        spec |= {"mode": "distributed", "distributed": {"worldSize": distributed}}
    return DevServer.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServer",
            "metadata": metadata,
            "spec": spec,
            "status": status or {},
        }
    )


def derive(
    server: DevServer | None = None,
    *,
    pods: list[dict[str, Any]],
    sts: dict[str, Any] | None = None,
    **kwargs: Any,
) -> DevServerStatus:
    server = server or devserver()
    if sts is None and "statefulset" not in kwargs:
        sts = statefulset(server.spec.distributed.world_size if server.spec.distributed else 1)
    kwargs.setdefault("statefulset", sts)
    kwargs.setdefault("expires_at", None)
    kwargs.setdefault("desired_stopped", False)
    return derive_status(server, pods=pods, now=kwargs.pop("now", NOW), **kwargs)


def condition(status: DevServerStatus, kind: str) -> tuple[str, str, str]:
    found = status.condition(kind)
    assert found is not None, f"no {kind} condition"
    return found.status, found.reason, found.message


# -- phases ----------------------------------------------------------------------------------------------


def test_an_unschedulable_pod_is_pending_with_the_schedulers_words() -> None:
    status = derive(
        pods=[pending_unschedulable()],
        events=[event("mydev-0", "FailedScheduling", UNSCHEDULABLE, component="default-scheduler")],
    )
    assert status.phase == "Pending"
    scheduled = condition(status, "Scheduled")
    assert scheduled[:2] == ("False", "Unschedulable")
    assert "pod mydev-0 is not scheduled: 0/3 nodes are available" in scheduled[2]
    assert "2 Insufficient nvidia.com/gpu" in scheduled[2]
    assert condition(status, "Ready")[:2] == ("False", "PodsPending")
    assert condition(status, "Degraded")[0] == "False"
    assert status.ready_replicas == 0 and status.replicas == 1


def test_pods_waiting_for_the_same_reason_share_one_sentence() -> None:
    status = derive(server=devserver(distributed=2), pods=[pending_unschedulable(0), pending_unschedulable(1)])
    message = condition(status, "Scheduled")[2]
    assert message.startswith("pods mydev-0, mydev-1 are not scheduled: 0/3 nodes are available")
    assert message.count("not scheduled") == 1, message


def test_a_pod_the_scheduler_has_not_seen_yet_is_pending() -> None:
    status = derive(pods=[just_created()])
    assert status.phase == "Pending"
    assert condition(status, "Scheduled")[:2] == ("Unknown", "Scheduling")  # not a failure yet
    assert "waiting for the scheduler" in condition(status, "Scheduled")[2]


def test_without_statefulset_or_pods_the_server_is_pending() -> None:
    assert derive(pods=[], statefulset=None).phase == "Pending"
    status = derive(pods=[])
    assert status.phase == "Pending" and "rank 0" in (status.message or "")
    assert condition(status, "Scheduled")[0] == "Unknown"


def test_a_scheduled_pod_creating_its_container_is_starting() -> None:
    multi_attach = (
        'Multi-Attach error for volume "pvc-3f2a" Volume is already exclusively attached to one node '
        "and can't be attached to another"
    )
    status = derive(
        pods=[container_creating()],
        events=[
            event(
                "mydev-0",
                "Scheduled",
                "Successfully assigned alice/mydev-0",
                kind="Normal",
                at="2025-01-31T12:00:01Z",
            ),
            event("mydev-0", "FailedAttachVolume", multi_attach),
        ],
    )
    assert status.phase == "Starting"
    assert "0/1 pods ready; mydev-0 is ContainerCreating (FailedAttachVolume: Multi-Attach error" in (
        status.message or ""
    )
    assert condition(status, "Scheduled")[:2] == ("True", "AllPodsScheduled")
    assert condition(status, "Ready")[:2] == ("False", "PodsStarting")


def test_all_ranks_ready_is_running_with_pods_in_rank_order() -> None:
    server = devserver(distributed=2)
    status = derive(server, pods=[running_ready(1), running_ready(0)])
    assert status.phase == "Running"
    assert condition(status, "Ready")[:2] == ("True", "PodsReady")
    assert condition(status, "Degraded")[:2] == ("False", "AsExpected")
    assert status.ready_replicas == 2 and status.replicas == 2
    assert status.pods == ["mydev-0", "mydev-1"]
    assert status.observed_generation == 3


def test_one_rank_not_ready_keeps_a_distributed_server_starting() -> None:
    status = derive(devserver(distributed=2), pods=[running_ready(0), container_creating(1)])
    assert status.phase == "Starting"
    assert status.ready_replicas == 1
    assert "1/2 pods ready; mydev-1 is ContainerCreating" in (status.message or "")


def test_ranks_sort_numerically_not_as_text() -> None:
    pods = [running_ready(rank) for rank in (10, 2, 0, 1)]
    status = derive(devserver(distributed=11), pods=pods)
    assert status.pods == ["mydev-0", "mydev-1", "mydev-2", "mydev-10"]
    assert pod_rank(pods[0]) == 10


@pytest.mark.parametrize(
    ("pod", "reason", "words"),
    [
        (image_pull_backoff(), "ImagePullBackOff", 'Back-off pulling image "registry.invalid/pytorch:nope"'),
        (err_image_pull(), "ErrImagePull", "docker.io/pytorch/pytorch:nope: not found"),
        (crash_loop(), "CrashLoopBackOff", "last exit: OOMKilled (exit code 137)"),
    ],
    ids=["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"],
)
def test_a_pod_that_cannot_run_fails_the_server_with_the_kubelets_reason(
    pod: dict[str, Any], reason: str, words: str
) -> None:
    status = derive(pods=[pod])
    assert status.phase == "Failed"
    degraded = condition(status, "Degraded")
    assert degraded[:2] == ("True", reason)
    assert words in degraded[2] and "pod mydev-0: container devserver" in degraded[2]
    assert condition(status, "Ready")[:2] == ("False", reason)
    assert status.message == degraded[2]


def test_a_failing_rank_fails_a_distributed_server_even_when_others_run() -> None:
    status = derive(devserver(distributed=2), pods=[running_ready(0), crash_loop(1)])
    assert status.phase == "Failed"
    assert "pod mydev-1" in condition(status, "Degraded")[2]


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        (
            {"flavor": "DevServerFlavor 'gpu-huge' not found; list flavors with: devctl flavors"},
            "FlavorNotFound",
        ),
        (
            {
                "sharedVolumeClaim": "PersistentVolumeClaim 'team-data' not found in namespace 'alice'; "
                "create it or remove sharedVolumeClaimName"
            },
            "SharedVolumeClaimNotFound",
        ),
    ],
)
def test_a_missing_dependency_fails_the_server_naming_it(missing: dict[str, str], reason: str) -> None:
    status = derive(pods=[], statefulset=None, missing=missing)
    assert status.phase == "Failed"
    assert condition(status, "Degraded") == ("True", reason, next(iter(missing.values())))
    assert condition(status, "Ready")[:2] == ("False", reason)
    assert condition(status, "Scheduled")[:2] == ("False", "NoPods")


def test_stopping_while_pods_terminate_then_stopped() -> None:
    server = devserver(annotations={DESIRED_STATE_ANNOTATION: "Stopped"})
    stopping = derive(server, pods=[terminating(running_ready())], desired_stopped=True)
    assert stopping.phase == "Stopping"
    assert stopping.replicas == 0 and stopping.pods == []
    assert stopping.stopped_reason == "Requested" and stopping.stopped_at == NOW
    assert condition(stopping, "Ready")[:2] == ("False", "Stopping")

    later = NOW + timedelta(seconds=40)
    server.status = stopping
    stopped = derive(server, pods=[], desired_stopped=True, now=later)
    assert stopped.phase == "Stopped"
    assert stopped.stopped_reason == "Requested" and stopped.stopped_at == NOW  # when, not when last looked
    assert "devctl start mydev" in (stopped.message or "")
    assert condition(stopped, "Scheduled")[:2] == ("False", "NoPods")


@pytest.mark.parametrize(
    ("claims", "home_size", "said"),
    [
        ([{"metadata": {"name": "home"}, "spec": {"resources": {"requests": {"storage": "10Gi"}}}}], "10Gi",
         "; its home volumes are kept. Start it with"),
        ([], "0", "; it has no persistent home (persistentHomeSize 0), so files in its home are lost. Start"),
    ],
)
def test_a_stopped_server_says_whether_its_home_is_kept(
    claims: list[dict[str, Any]], home_size: str, said: str
) -> None:
    """Issue 14: "its home volumes are kept" was said of servers that had none."""
    sts = statefulset(0)
    if claims:
        sts["spec"]["volumeClaimTemplates"] = claims
    server = devserver(annotations={DESIRED_STATE_ANNOTATION: "Stopped"})
    stopped = derive(server, pods=[], sts=sts, desired_stopped=True)
    assert stopped.home_size == home_size
    assert said in (stopped.message or "")
    server.status = stopped
    assert derive(server, pods=[], statefulset=None, desired_stopped=True).home_size == home_size  # remembered


def test_an_idle_stop_says_why_and_when() -> None:
    decision = Decision(
        action="stop_idle",
        reason="Idle",
        message="Stopping ...",
        requeue_after=None,
        expires_at=None,
        activity=Activity(EARLIER, "sdk"),
        idle=("True", "IdleTimeout", "idle for 1h5m (idle timeout 1h)"),
    )
    server = devserver(annotations={DESIRED_STATE_ANNOTATION: "Stopped"})
    status = derive(server, pods=[running_ready()], desired_stopped=True, lifecycle=decision)
    assert status.phase == "Stopping"
    assert status.stopped_reason == "Idle"
    assert condition(status, "Idle") == ("True", "IdleTimeout", "idle for 1h5m (idle timeout 1h)")
    assert status.last_activity_time == EARLIER and status.last_activity_source == "sdk"


def test_a_deleted_server_is_terminating() -> None:
    status = derive(devserver(deleting=True), pods=[terminating(running_ready())])
    assert status.phase == "Terminating"
    assert condition(status, "Ready")[:2] == ("False", "Terminating")


def test_terminating_pods_do_not_count_as_ready_and_a_replacement_is_starting() -> None:
    status = derive(pods=[terminating(running_ready(revision=OLD_REVISION))])
    assert status.phase == "Starting"
    assert status.ready_replicas == 0
    assert "replacing pod(s) mydev-0" in (status.message or "")


def test_an_unfinished_rollout_is_starting_not_running() -> None:
    # The operator just replaced the template: the StatefulSet controller has not caught up yet ...
    unseen = derive(pods=[running_ready()], sts=statefulset(generation=2, observed=1))
    assert unseen.phase == "Starting"
    # ... then it has, and the pod still runs the old template.
    old = derive(pods=[running_ready(revision=OLD_REVISION)], sts=statefulset(generation=2, observed=2))
    assert old.phase == "Starting"
    assert "still on the old one: mydev-0" in (old.message or "")
    assert derive(pods=[running_ready()], sts=statefulset(generation=2, observed=2)).phase == "Running"


def test_failing_pods_on_an_old_template_are_to_be_replaced() -> None:
    sts = statefulset()
    stuck = image_pull_backoff(0, revision=OLD_REVISION)
    assert pods_to_replace(sts, [stuck, running_ready(1, revision=OLD_REVISION), image_pull_backoff(2)]) == [
        "mydev-0"
    ]
    assert pods_to_replace(None, [stuck]) == []


def test_the_latest_pod_start_ignores_terminating_pods() -> None:
    later = running_ready(1)
    later["status"]["startTime"] = "2025-01-31T12:03:00Z"
    assert latest_pod_start([running_ready(0), later]) == datetime(2025, 1, 31, 12, 3, tzinfo=UTC)
    assert latest_pod_start([terminating(later)]) is None
    assert latest_pod_start([pending_unschedulable()]) is None


# -- conditions ------------------------------------------------------------------------------------------


def test_every_condition_is_reported_with_reason_and_message() -> None:
    status = derive(pods=[running_ready()])
    assert [c.type for c in status.conditions] == ["Ready", "Scheduled", "Idle", "ExpiringSoon", "Degraded"]
    for found in status.conditions:
        assert found.reason and found.message
        assert found.observed_generation == 3
        assert found.last_transition_time == NOW


def test_last_transition_time_is_kept_while_the_status_holds() -> None:
    first = derive(pods=[running_ready()], now=EARLIER)
    server = devserver(status=first.model_dump(mode="json", by_alias=True, exclude_none=True))
    # Same statuses, new message (rank count) and a later time: every transition time stays.
    again = derive(server, pods=[running_ready()], now=NOW)
    for found in again.conditions:
        assert found.last_transition_time == EARLIER, found.type
    # Ready flips: its time moves, the unchanged Scheduled keeps its own.
    server.status = again
    broken = derive(server, pods=[crash_loop()], now=NOW + timedelta(minutes=1))
    ready, scheduled, degraded = (broken.condition(t) for t in ("Ready", "Scheduled", "Degraded"))
    assert (
        ready is not None
        and ready.status == "False"
        and ready.last_transition_time == NOW + timedelta(minutes=1)
    )
    assert scheduled is not None and scheduled.last_transition_time == EARLIER
    assert degraded is not None and degraded.last_transition_time == NOW + timedelta(minutes=1)


def test_expiring_soon_turns_true_within_the_warning_lead() -> None:
    far = derive(pods=[running_ready()], expires_at=NOW + timedelta(hours=2))
    assert condition(far, "ExpiringSoon")[:2] == ("False", "NotExpiring")
    assert far.expires_at == NOW + timedelta(hours=2)
    soon = derive(pods=[running_ready()], expires_at=NOW + timedelta(minutes=10))
    status, reason, message = condition(soon, "ExpiringSoon")
    assert (status, reason) == ("True", "ExpiringSoon")
    assert "in 10 min" in message and "devctl extend mydev" in message
    assert condition(derive(pods=[running_ready()], expires_at=NOW), "ExpiringSoon")[:2] == (
        "True",
        "Expired",
    )
    assert condition(derive(pods=[running_ready()]), "ExpiringSoon")[:2] == ("False", "NoExpiry")


def test_idle_comes_from_the_lifecycle_decision_or_stays_as_it_was() -> None:
    decision = Decision(
        action="none",
        reason="Scheduled",
        message="",
        requeue_after=60.0,
        expires_at=None,
        activity=Activity(EARLIER, "gpu"),
        idle=("False", "Active", "last activity: GPU use"),
    )
    status = derive(pods=[running_ready()], lifecycle=decision)
    assert condition(status, "Idle") == ("False", "Active", "last activity: GPU use")
    assert (status.last_activity_time, status.last_activity_source) == (EARLIER, "gpu")
    assert condition(derive(pods=[running_ready()]), "Idle")[:2] == ("Unknown", "NotEvaluated")
    server = devserver(status=status.model_dump(mode="json", by_alias=True, exclude_none=True))
    kept = derive(server, pods=[running_ready()])
    assert condition(kept, "Idle") == ("False", "Active", "last activity: GPU use")
    assert kept.last_activity_time == EARLIER


@pytest.mark.parametrize(
    "pods",
    [
        [pending_unschedulable()],
        [container_creating()],
        [running_ready()],
        [image_pull_backoff()],
        [crash_loop()],
    ],
)
def test_the_status_is_valid_against_the_generated_crd_schema(pods: list[dict[str, Any]]) -> None:
    status = derive(pods=pods, expires_at=NOW + timedelta(hours=1))
    server = devserver()
    manifest = {
        **server.to_manifest(),
        "status": status.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    manifest["metadata"] |= {"uid": "u-1", "generation": 3, "creationTimestamp": "2025-01-31T12:00:00Z"}
    openapi_schema = crds.devserver_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pruned, removed = schema.prune(openapi_schema, copy.deepcopy(manifest))
    assert removed == []
    assert schema.validate(openapi_schema, pruned) == []


# -- the seed's example: a deadline before creation, fields without effect ---------------------------------


def test_seed_example_deadline_before_creation_is_phase_expired_with_the_reason_and_dates() -> None:
    from devservers_sdk.lifecycle import plan

    server = DevServer.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServer",
        "metadata": {"name": "mydev", "namespace": "alice", "uid": "u-1", "generation": 1,
                     "creationTimestamp": "2025-01-31T12:00:00Z"},
        "spec": {"owner": "user@company.com", "flavor": "gpu-small",
                 "lifecycle": {"expirationTime": "2024-01-15T18:00:00Z", "timeToLive": "4h"}},
    })
    decision = plan(server, now=NOW, flavor_spec=None)
    status = derive(server, pods=[], sts=None, statefulset=None, lifecycle=decision, expires_at=decision.expires_at)
    assert status.phase == "Expired"
    assert status.replicas == 0
    assert "2024-01-15T18:00:00Z" in (status.message or "")
    for kind in ("Ready", "ExpiringSoon"):
        assert condition(status, kind)[1] == "DeadlineBeforeCreation"
        assert "2024-01-15T18:00:00Z" in condition(status, kind)[2]


@pytest.mark.parametrize(("spec", "reason"), [
    ({"distributed": {"worldSize": 4}}, "DistributedNeedsDistributedMode"),
    ({"enableSSH": True}, "EnableSSHHasNoEffect"),
    ({"distributed": {"worldSize": 4}, "enableSSH": True}, "SeveralFieldsIgnored"),
])
def test_seed_example_fields_without_effect_get_the_fields_ignored_condition(spec: dict[str, Any],
                                                                               reason: str) -> None:
    server = DevServer.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServer",
        "metadata": {"name": "mydev", "namespace": "alice", "uid": "u-1", "generation": 1,
                     "creationTimestamp": "2025-01-31T12:00:00Z"},
        "spec": {"owner": "alice", "flavor": "gpu-small", "mode": "standalone", **spec},
    })
    status = derive(server, pods=[running_ready()])
    found = condition(status, "FieldsIgnored")
    assert found[:2] == ("True", reason)
    for field in spec:
        assert f"spec.{field} is ignored" in found[2]
    assert status.replicas == 1  # standalone: the distributed section sizes nothing
    assert derive(devserver(), pods=[running_ready()]).condition("FieldsIgnored") is None
