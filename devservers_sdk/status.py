"""A DevServer's status derived from what its pods actually do, not from "the objects were created".

Why: the peer project set ``Running`` as soon as it created a Deployment, so an image that could not be
pulled still read Running. Here ``derive_status`` is a pure function of the observed objects (the
StatefulSet, the pods, their Events), the lifecycle ``Decision`` and the previous status, so the
operator writes the truth after every reconcile and every rule is unit-tested on realistic pod JSON.

Phase, first match wins:

* ``Terminating``: the DevServer has a deletionTimestamp.
* ``Expired``: its ``expirationTime`` had passed before it was created (the lifecycle's ``hold``): nothing
  runs and nothing is deleted; reason ``DeadlineBeforeCreation``, and the message gives both dates.
* ``Stopping``/``Stopped``: the desired state is Stopped; Stopping while pods remain.
* ``Failed``: a dependency is missing (``missing``: the flavor, the shared claim) or a pod cannot run
  (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, a bad image name or container config, a failed pod).
  ``Degraded`` carries the reason and the kubelet's message. The operator keeps reconciling: fixing the
  cause brings the server back, nothing here is final.
* ``Interrupted``: the system took pods away (``pod_disruption``: the pod's ``DisruptionTarget`` condition,
  which the eviction API, the taint manager, the scheduler's preemption and the kubelet set) and not every
  rank is Ready again. The episode is counted once in ``interruptions``, described in ``lastInterruption``
  and the ``Interrupted`` condition, and ends when every rank is Ready (the condition turns False with
  reason ``Recovered``). A stop, a failure or a deletion take precedence.
* ``Pending``: a pod is not scheduled (``Scheduled`` False with the scheduler's message), or pods do not
  exist yet.
* ``Starting``: every pod is scheduled but not all ranks are Ready, or a rollout is in progress (pods of
  an older template), so ``wait`` after ``update`` does not return while the old pods still answer.
* ``Running``: every rank is Ready on the current template.

Conditions ``Ready``, ``Scheduled``, ``Idle``, ``ExpiringSoon``, ``Degraded`` always appear (``Interrupted``
once there has been an interruption), each with a
reason and a message; ``lastTransitionTime`` only moves when the condition's status changes.
``FieldsIgnored`` appears while the spec sets fields that have no effect (``distributed`` beside ``mode:
standalone``, ``enableSSH``), with the sentence the API server's warning says.

``pods_to_replace`` names the failing pods of an older template that the operator must delete itself:
the StatefulSet controller will not replace a pod that never became Ready, even when the new template
fixes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .activity import rfc3339
from .contract import LOCAL_CLUSTER_LABEL, NAME_LABEL
from .lifecycle import (
    DEADLINE_BEFORE_CREATION,
    DEFAULT_WARNING_LEAD,
    STOPPED_REASON_IDLE,
    STOPPED_REASON_LOW_GPU,
    STOPPED_REASON_REQUESTED,
    Decision,
    home_note,
)
from .manifests import HOME_VOLUME, rank_count
from .models import GPU_RESOURCE, IGNORED_FIELDS, Condition, DevServer, DevServerStatus, Interruption
from .next_steps import NextStep
from .quantities import parse_quantity
from .views import pod_rank, pod_ready

__all__ = [
    "CONDITION_TYPES",
    "DISRUPTION_REASONS",
    "FAILING_WAITING_REASONS",
    "FIELDS_IGNORED",
    "Disruption",
    "derive_status",
    "explain_unschedulable",
    "home_size_of",
    "latest_pod_start",
    "pod_disruption",
    "pod_rank",
    "pods_to_replace",
]

CONDITION_TYPES = ("Ready", "Scheduled", "Idle", "ExpiringSoon", "Degraded")
FIELDS_IGNORED = "FieldsIgnored"
"""A condition present only while the spec sets fields without effect (``DevServerSpec.ignored_fields``)."""

FAILING_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Container waiting reasons that will not fix themselves: the server is Failed until the spec changes."""


_MISSING_REASONS = {
    "flavor": "FlavorNotFound",
    "namespaceDefaults": "InvalidNamespaceDefaults",
    "sharedVolumeClaim": "SharedVolumeClaimNotFound",
    "trackingSecret": "TrackingSecretNotFound",
}

Phase = Literal["Pending", "Starting", "Running", "Interrupted", "Stopping", "Stopped", "Failed", "Expired",
               "Terminating"]

DISRUPTION_REASONS = {
    "EvictionByEvictionAPI": "Evicted",
    "DeletionByTaintManager": "NodeTainted",
    "PreemptionByScheduler": "Preempted",
    "TerminationByKubelet": "TerminatedByNode",
    "DeletionByPodGC": "NodeLost",
}
"""The reasons Kubernetes gives a pod's ``DisruptionTarget`` condition, and the interruption reason each
becomes. ``kubectl drain``, the AWS Node Termination Handler and Karpenter all evict through the eviction API
(after tainting or cordoning the node); a NoExecute taint without a toleration makes the taint manager
delete the pod."""


@dataclass(frozen=True)
class Disruption:
    """One pod the system took away, as seen on the pod itself while it terminated."""

    pod: str
    uid: str
    node: str
    reason: str
    message: str


def pod_disruption(pod: Mapping[str, Any]) -> Disruption | None:
    """What took this pod away, if the system did (its ``DisruptionTarget`` condition), else None.

    A pod the operator or a user deleted, or a StatefulSet scaled down for a stop, has no such condition.
    """
    condition = _pod_condition(pod, "DisruptionTarget")
    if condition is None or condition.get("status") != "True":
        return None
    metadata = pod.get("metadata") or {}
    why = str(condition.get("reason") or "")
    return Disruption(pod=str(metadata.get("name", "?")), uid=str(metadata.get("uid", "")),
                      node=str((pod.get("spec") or {}).get("nodeName") or ""),
                      reason=DISRUPTION_REASONS.get(why, why or "Disrupted"),
                      message=str(condition.get("message") or why))
ConditionStatus = Literal["True", "False", "Unknown"]


# -- reading pods ----------------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _pod_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    """Whether the scheduler looked at the pod and found no node for it (PodScheduled False, Unschedulable)."""
    condition = _pod_condition(pod, "PodScheduled")
    return condition is not None and condition.get("status") == "False" and condition.get("reason") == "Unschedulable"


def latest_pod_start(pods: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The latest ``status.startTime`` of the live pods: when the server last (re)started, for idle timing."""
    starts = [
        start
        for pod in pods
        if not _terminating(pod)
        if (start := _parse_time((pod.get("status") or {}).get("startTime"))) is not None
    ]
    return max(starts) if starts else None


def _previous_logs_step(pod: Mapping[str, Any]) -> NextStep:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    rank = pod_rank(pod)
    server = labels.get(NAME_LABEL) or _name(pod).rpartition("-")[0] or _name(pod)
    return NextStep("logs", server, {**({"rank": str(rank)} if rank else {}), "previous": True})


def _container_failure(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(reason, message)`` of the first container that cannot run, or of a failed pod."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason not in FAILING_WAITING_REASONS:
                continue
            message = f"pod {_name(pod)}: container {container.get('name', '?')}: {reason}"
            if waiting.get("message"):
                message += f": {waiting['message']}"
            last = (container.get("lastState") or {}).get("terminated")
            if reason == "CrashLoopBackOff" and last:
                message += (
                    f"; last exit: {last.get('reason') or 'Error'} (exit code {last.get('exitCode')}). "
                    f"See its output with: {_previous_logs_step(pod).devctl()}"
                )
            return str(reason), message
    if status.get("phase") == "Failed":
        reason = status.get("reason") or "PodFailed"
        return str(reason), f"pod {_name(pod)} failed: {status.get('message') or reason}"
    return None


def pods_to_replace(statefulset: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Failing pods left on an older template: delete them so the StatefulSet recreates them.

    The StatefulSet controller waits for every pod to be Ready before it replaces the next one, so a pod
    stuck in ImagePullBackOff on the old template blocks the very update that fixes it (Kubernetes'
    "forced rollback" caveat). Deleting such a pod loses nothing: its container never ran, or keeps dying.
    """
    revision = _expected_revision(statefulset)
    if not revision:
        return []
    return sorted(
        _name(pod)
        for pod in pods
        if not _terminating(pod)
        and (pod.get("metadata") or {}).get("labels", {}).get("controller-revision-hash")
        not in (None, revision)
        and _container_failure(pod) is not None
    )


def _event_time(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _latest_event(events: Sequence[Mapping[str, Any]], pod: str) -> Mapping[str, Any] | None:
    """The newest Warning (or autoscaler) Event about a pod: why it is stuck, in the cluster's words."""
    relevant = [
        event
        for event in events
        if (event.get("involvedObject") or {}).get("name") == pod
        and (
            event.get("type") == "Warning" or event.get("reason") in ("TriggeredScaleUp", "NotTriggerScaleUp")
        )
    ]
    return max(relevant, key=_event_time) if relevant else None


def _waiting_reason(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason"):
                return str(waiting["reason"])
    if any((c.get("state") or {}).get("running") for c in status.get("containerStatuses") or []):
        return "not ready"
    return str(status.get("phase") or "starting")


# -- conditions ------------------------------------------------------------------------------------------


def _condition(
    previous: DevServerStatus,
    kind: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> Condition:
    # metav1.Condition: lastTransitionTime is when *status* changed; reason/message updates keep it.
    before = previous.condition(kind)
    changed = before is None or before.status != status or before.last_transition_time is None
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed else before.last_transition_time if before else now,
        observed_generation=generation,
    )


# -- the status ------------------------------------------------------------------------------------------


def _expected_revision(statefulset: Mapping[str, Any] | None) -> str | None:
    if not statefulset:
        return None
    return (statefulset.get("status") or {}).get("updateRevision")


def _rollout_pending(statefulset: Mapping[str, Any] | None, live: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the pods are not yet on the StatefulSet's current template, or None."""
    if not statefulset:
        return None
    generation = (statefulset.get("metadata") or {}).get("generation")
    observed = (statefulset.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return "the StatefulSet controller has not seen the new template yet"
    revision = _expected_revision(statefulset)
    if revision:
        stale = [
            _name(p)
            for p in live
            if (p.get("metadata") or {}).get("labels", {}).get("controller-revision-hash")
            not in (None, revision)
        ]
        if stale:
            return f"rolling out the new template; still on the old one: {', '.join(stale)}"
    return None


def home_size_of(statefulset: Mapping[str, Any] | None) -> str | None:
    """The home claim size of a StatefulSet's template; ``"0"`` when it has none; None without one."""
    if not statefulset:
        return None
    for claim in (statefulset.get("spec") or {}).get("volumeClaimTemplates") or []:
        if (claim.get("metadata") or {}).get("name") == HOME_VOLUME:
            size = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            return str(size) if size is not None else None
    return "0"


def derive_status(
    devserver: DevServer,
    *,
    statefulset: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    now: datetime,
    expires_at: datetime | None,
    desired_stopped: bool,
    missing: Mapping[str, str] | None = None,
    lifecycle: Decision | None = None,
    warning_lead: timedelta = DEFAULT_WARNING_LEAD,
    disruptions: Sequence[Disruption] = (),
    nodes: Sequence[Mapping[str, Any]] | None = None,
) -> DevServerStatus:
    """The status to write for ``devserver`` (whose current ``status`` is the previous one).

    Args:
        devserver: as read from the server; its status is compared to keep ``lastTransitionTime``.
        statefulset: the live StatefulSet (with status), or None if absent.
        pods: the DevServer's pods (label ``devservers.io/name``), terminating ones included.
        events: recent Events about those pods (FailedScheduling, FailedMount, ...), for messages.
        now: the current time.
        expires_at: the deadline (``lifecycle.expires_at``), for ``expiresAt`` and ``ExpiringSoon``.
        desired_stopped: whether the server should be stopped (``lifecycle.desired_stopped``).
        missing: what the server needs but does not exist, by kind (``flavor``, ``sharedVolumeClaim``,
            ``trackingSecret``, ``namespaceDefaults``),
            with the message to show, e.g. ``{"flavor": "DevServerFlavor 'x' not found; ..."}``.
        lifecycle: this reconcile's ``lifecycle.plan``: gives Idle and the last activity.
        warning_lead: how long before ``expires_at`` ``ExpiringSoon`` turns True.
        disruptions: pods the system took away that the caller saw go (watch events), beside those still
            terminating in ``pods``: a pod may be gone before the status is derived.
        nodes: the cluster's Nodes, read when a pod is unschedulable: a pod that no node can ever take
            (``explain_unschedulable``) keeps the server Pending with Degraded True and the reason in words.
    """
    previous = devserver.status
    generation = devserver.metadata.generation
    held = lifecycle is not None and lifecycle.action == "hold"
    seen = _observe(pods, statefulset, events, nodes,
                    replicas=0 if desired_stopped or held else rank_count(devserver))
    home_size = home_size_of(statefulset) or previous.home_size
    state = _state(devserver, seen, degraded=_degraded(dict(missing or {}), seen.failures), now=now,
                   desired_stopped=desired_stopped, lifecycle=lifecycle, held=held,
                   kept=home_note(devserver.spec, home_size))
    episode = _episode(previous, pods, disruptions, now, state.phase, state.message)
    conditions = _conditions(
        devserver,
        phase=episode.phase,
        message=episode.message,
        degraded=state.degraded,
        unscheduled=seen.unscheduled,
        live=seen.live,
        events=events,
        now=now,
        expires_at=expires_at,
        lifecycle=lifecycle,
        warning_lead=warning_lead,
        generation=generation,
    )
    if episode.condition is not None:
        conditions.append(_condition(previous, "Interrupted", *episode.condition, now=now, generation=generation))

    activity_time, activity_source = previous.last_activity_time, previous.last_activity_source
    if lifecycle is not None:
        activity_time, activity_source = lifecycle.activity.at, lifecycle.activity.source

    return DevServerStatus(
        phase=episode.phase,
        conditions=conditions,
        observed_generation=generation,
        ready_replicas=seen.ready,
        replicas=seen.replicas,
        pods=[_name(pod) for pod in seen.live],
        expires_at=expires_at,
        last_activity_time=activity_time,
        last_activity_source=activity_source,
        stopped_reason=state.stopped_reason,
        stopped_at=state.stopped_at,
        home_size=home_size,
        message=episode.message,
        interruptions=episode.counted,
        last_interruption=episode.last,
    )


@dataclass(frozen=True)
class _Observed:
    """The pods as they stand: the live ones, the one per wanted rank, how many are ready, what fails."""

    pods: Sequence[Mapping[str, Any]]
    statefulset: Mapping[str, Any] | None
    events: Sequence[Mapping[str, Any]]
    nodes: Sequence[Mapping[str, Any]] | None
    replicas: int
    live: list[Mapping[str, Any]]
    ranks: dict[int, Mapping[str, Any]]
    ready: int
    unscheduled: list[Mapping[str, Any]]
    failures: list[tuple[str, str]]


def _observe(pods: Sequence[Mapping[str, Any]], statefulset: Mapping[str, Any] | None,
             events: Sequence[Mapping[str, Any]], nodes: Sequence[Mapping[str, Any]] | None, *,
             replicas: int) -> _Observed:
    live = sorted((p for p in pods if not _terminating(p)), key=lambda p: (pod_rank(p) or 0, _name(p)))
    ranks = {rank: pod for pod in live if (rank := pod_rank(pod)) is not None and rank < replicas}
    return _Observed(
        pods=pods, statefulset=statefulset, events=events, nodes=nodes, replicas=replicas, live=live, ranks=ranks,
        ready=sum(1 for pod in ranks.values() if pod_ready(pod)),
        # Scheduling, from every live pod.
        unscheduled=[pod for pod in live
                     if (c := _pod_condition(pod, "PodScheduled")) is None or c.get("status") != "True"],
        failures=[failure for pod in live if (failure := _container_failure(pod)) is not None],
    )


def _degraded(missing: Mapping[str, str], failures: Sequence[tuple[str, str]]) -> tuple[ConditionStatus, str, str]:
    """The Degraded condition: a missing dependency first, else the pods' failures."""
    if missing:
        first = sorted(missing)[0]
        return ("True", _MISSING_REASONS.get(first, "DependencyNotFound"),
                "; ".join(missing[kind] for kind in sorted(missing)))
    if failures:
        return ("True", failures[0][0], "; ".join(message for _, message in failures))
    return ("False", "AsExpected", "no problem found")


@dataclass(frozen=True)
class _State:
    """The phase and its sentence, the Degraded condition (an unschedulable pod may add to it), and the stop."""

    phase: Phase
    message: str
    degraded: tuple[ConditionStatus, str, str]
    stopped_reason: str | None = None
    stopped_at: datetime | None = None


def _state(devserver: DevServer, seen: _Observed, *, degraded: tuple[ConditionStatus, str, str], now: datetime,
           desired_stopped: bool, lifecycle: Decision | None, held: bool, kept: str) -> _State:
    """The phase, first match wins (see the module docstring)."""
    if devserver.metadata.deletion_timestamp is not None:
        return _State("Terminating", "being deleted with its pods and home volumes", degraded)
    if held:
        assert lifecycle is not None
        return _State("Expired", lifecycle.message, degraded)
    if desired_stopped:
        return _stopped(devserver, seen.pods, degraded=degraded, now=now, lifecycle=lifecycle, kept=kept)
    if degraded[0] == "True":
        return _State("Failed", degraded[2], degraded)
    if seen.statefulset is None:
        return _State("Pending", "the StatefulSet does not exist yet", degraded)
    if seen.unscheduled:
        return _unscheduled(devserver, seen, degraded)
    if len(seen.ranks) < seen.replicas:
        absent = [rank for rank in range(seen.replicas) if rank not in seen.ranks]
        leaving = sorted(_name(p) for p in seen.pods if _terminating(p) and pod_rank(p) in absent)
        if leaving:  # a rollout replaces pods one by one: the old pod must go before the new one exists
            return _State("Starting", f"replacing pod(s) {', '.join(leaving)} with the new template", degraded)
        ranks_text = ", ".join(map(str, absent))
        return _State("Pending", f"waiting for the pods of rank {ranks_text} to be created", degraded)
    if seen.ready < seen.replicas:
        details = []
        for pod in (pod for pod in seen.ranks.values() if not pod_ready(pod)):
            detail = f"{_name(pod)} is {_waiting_reason(pod)}"
            event = _latest_event(seen.events, _name(pod))
            if event is not None:
                detail += f" ({event.get('reason')}: {str(event.get('message') or '').strip()})"
            details.append(detail)
        return _State("Starting", f"{seen.ready}/{seen.replicas} pods ready; " + "; ".join(details), degraded)
    if (rollout := _rollout_pending(seen.statefulset, seen.live)) is not None:
        return _State("Starting", rollout, degraded)
    return _State("Running", f"{seen.ready}/{seen.replicas} pods ready", degraded)


def _stopped(devserver: DevServer, pods: Sequence[Mapping[str, Any]], *, degraded: tuple[ConditionStatus, str, str],
             now: datetime, lifecycle: Decision | None, kept: str) -> _State:
    """Stopping while pods remain, then Stopped, with why: kept from the stop that began it, else this one's."""
    previous = devserver.status
    if previous.stopped_reason is not None and previous.phase in ("Stopping", "Stopped"):
        reason, at = previous.stopped_reason, previous.stopped_at or now
    elif lifecycle is not None and lifecycle.action == "stop_idle":
        reason, at = STOPPED_REASON_IDLE, now
    elif lifecycle is not None and lifecycle.action == "stop_low_gpu":
        reason, at = STOPPED_REASON_LOW_GPU, now
    else:
        reason, at = STOPPED_REASON_REQUESTED, now
    why = {
        STOPPED_REASON_IDLE: "after being idle",
        STOPPED_REASON_LOW_GPU: "because its GPUs stayed below lifecycle.minGpuUtilization",
    }.get(reason, "on request")
    if pods:
        return _State("Stopping", f"stopping {why}: {len(pods)} pod(s) still shutting down", degraded, reason, at)
    return _State("Stopped", f"stopped {why} at {rfc3339(at)}; {kept}. Start it with: "
                  f"{NextStep('start', devserver.name).devctl()}", degraded, reason, at)


def _unscheduled(devserver: DevServer, seen: _Observed, degraded: tuple[ConditionStatus, str, str]) -> _State:
    """Pending on the scheduler; a pod no node can ever take is said in words and makes the server Degraded."""
    message = _unscheduled_message(seen.unscheduled, seen.events)
    explained = [
        (pod, found)
        for pod in seen.unscheduled
        if _unschedulable(pod) and seen.nodes is not None and (found := explain_unschedulable(pod, seen.nodes))
    ]
    if not explained:
        return _State("Pending", message, degraded)
    pod, (reason, why) = explained[0]
    said = str((_pod_condition(pod, "PodScheduled") or {}).get("message") or "").strip()
    message = (
        f"pod {_name(pod)} cannot be scheduled: {why}{f' (the scheduler: {said})' if said else ''}. "
        "The server stays Pending until that changes; "
        f"pick another flavor with: {NextStep('update', devserver.name, {'flavor': '...'}).devctl()}, or "
        f"delete it with: {NextStep('delete', devserver.name).devctl()}"
    )
    return _State("Pending", message, ("True", reason, message))


@dataclass(frozen=True)
class _Episode:
    """The phase and message once interruptions are counted, and the Interrupted condition (None: never one)."""

    phase: Phase
    message: str
    counted: int | None
    last: Interruption | None
    condition: tuple[ConditionStatus, str, str] | None


def _episode(previous: DevServerStatus, pods: Sequence[Mapping[str, Any]], disruptions: Sequence[Disruption],
             now: datetime, phase: Phase, message: str) -> _Episode:
    """An interruption is counted once, and the server is Interrupted while it is Pending or Starting again."""
    interruption = _interruption(previous, pods, disruptions, now)
    interrupted = previous.condition("Interrupted")
    ongoing = interrupted is not None and interrupted.status == "True"
    counted = previous.interruptions
    if interruption is not None and not ongoing:
        counted = (counted or 0) + 1
        ongoing = True
    last = interruption or previous.last_interruption
    condition: tuple[ConditionStatus, str, str] | None = None
    if last is not None:
        if phase in ("Pending", "Starting") and ongoing:
            phase = "Interrupted"
            message = f"interrupted: {last.message}; coming back with its home volumes: {message}"
            condition = ("True", last.reason, last.message)
        elif ongoing and phase == "Failed":
            condition = ("True", last.reason, last.message)
        else:
            condition = ("False", "Recovered" if phase == "Running" else phase,
                         f"last interrupted at {rfc3339(last.time)}: {last.message}")
    return _Episode(phase, message, counted, last, condition)


def _interruption(previous: DevServerStatus, pods: Sequence[Mapping[str, Any]],
                  disruptions: Sequence[Disruption], now: datetime) -> Interruption | None:
    """The interruption news in this reconcile: pods taken away that the last one did not record, merged
    into the ongoing interruption if there is one; None when there is no news."""
    last = previous.last_interruption
    known = set(last.pod_uids) if last is not None else set()
    news: dict[str, Disruption] = {}
    for disruption in [*disruptions, *(d for pod in pods if (d := pod_disruption(pod)) is not None)]:
        if disruption.uid not in known:
            news.setdefault(disruption.uid, disruption)
    if not news:
        return None
    fresh = sorted(news.values(), key=lambda d: d.pod)
    interrupted = previous.condition("Interrupted")
    base = last if last is not None and interrupted is not None and interrupted.status == "True" else None
    pods_named = sorted({*(base.pods if base else []), *(d.pod for d in fresh)})
    nodes = sorted({*(base.nodes if base else []), *(d.node for d in fresh if d.node)})
    first = fresh[0]
    where = f" on node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)}" if nodes else ""
    what = {"Evicted": "evicted", "NodeTainted": "deleted for a NoExecute taint of its node",
            "Preempted": "preempted", "TerminatedByNode": "terminated by its node",
            "NodeLost": "lost with its node"}.get(first.reason, first.reason)
    message = f"pod{'s' if len(pods_named) > 1 else ''} {', '.join(pods_named)}{where} {what} ({first.message})"
    return Interruption(time=base.time if base else now, reason=base.reason if base else first.reason,
                        message=message, pods=pods_named, nodes=nodes,
                        pod_uids=sorted({*(base.pod_uids if base else []), *news}))


def _requested_extended(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Extended resources (``domain/name``: GPUs and the like) the pod asks for, summed over its containers."""
    wanted: dict[str, Any] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amounts = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        for resource, amount in amounts.items():
            if "/" in resource and not resource.startswith("kubernetes.io/"):
                try:
                    wanted[resource] = wanted.get(resource, 0) + parse_quantity(str(amount))
                except ValueError:
                    continue
    return wanted


def _offered(node: Mapping[str, Any], resource: str) -> Any:
    status = node.get("status") or {}
    amount = (status.get("allocatable") or status.get("capacity") or {}).get(resource)
    try:
        return parse_quantity(str(amount)) if amount is not None else 0
    except ValueError:
        return 0


def explain_unschedulable(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why no node can ever take ``pod``, in words: ``(reason, sentence)``, or None when some node could.

    The scheduler says "0/1 nodes are available: 1 Insufficient nvidia.com/gpu" both when no node has GPUs
    and when they are all in use, and "didn't match Pod's node affinity/selector" without naming the labels.
    Compared with the Nodes' capacities and labels it can say which: no node offers the resource at all, none
    offers that many on one node, or no node carries the labels the flavor selects. On the local cluster (its
    Nodes are labelled ``LOCAL_CLUSTER_LABEL``) it adds how to get GPUs there.
    """
    local = any(
        ((node.get("metadata") or {}).get("labels") or {}).get(LOCAL_CLUSTER_LABEL) == "true" for node in nodes
    )
    for resource, amount in sorted(_requested_extended(pod).items()):
        if amount <= 0:
            continue
        most = max((_offered(node, resource) for node in nodes), default=0)
        gpus = resource == GPU_RESOURCE
        if most <= 0:
            text = f"no node offers {resource}"
            if local:
                text += "; the local cluster has none (start it with --gpus N)" if gpus else " on the local cluster"
            return "NoNodeOffersResource", text
        if most < amount:
            text = f"no node offers {amount:g} {resource}; the most on one node is {most:g}"
            if local and gpus:
                text += f" (start the local cluster with --gpus {amount:g})"
            return "NoNodeOffersResource", text
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if selector and not any(
        all(((node.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())
        for node in nodes
    ):
        labels = ", ".join(f"{key}={value}" for key, value in sorted(selector.items()))
        text = f"no node has the labels {labels} that the flavor's nodeSelector asks for"
        if local:
            text += "; the local cluster's node has none of them" + (
                " (start it with --gpus N, which sets nvidia.com/gpu.present=true)"
                if any(key.startswith("nvidia.com/") for key in selector)
                else ""
            )
        return "NoMatchingNode", text
    return None


def _unscheduled_message(
    unscheduled: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> str:
    # Pods of one group usually wait for the same reason: say it once, naming them all.
    pods_by_reason: dict[str, list[str]] = {}
    for pod in unscheduled:
        condition = _pod_condition(pod, "PodScheduled")
        text = str((condition or {}).get("message") or "").strip()
        event = _latest_event(events, _name(pod))
        if not text and event is not None:
            text = str(event.get("message") or "").strip()
        reason = text or "waiting for the scheduler"
        if event is not None and event.get("reason") in ("TriggeredScaleUp", "NotTriggerScaleUp"):
            reason += f" ({event.get('reason')}: {str(event.get('message') or '').strip()})"
        pods_by_reason.setdefault(reason, []).append(_name(pod))
    return "; ".join(
        f"pod {names[0]} is not scheduled: {reason}" if len(names) == 1
        else f"pods {', '.join(names)} are not scheduled: {reason}"
        for reason, names in pods_by_reason.items())


def _conditions(
    devserver: DevServer,
    *,
    phase: Phase,
    message: str,
    degraded: tuple[ConditionStatus, str, str],
    unscheduled: Sequence[Mapping[str, Any]],
    live: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    expires_at: datetime | None,
    lifecycle: Decision | None,
    warning_lead: timedelta,
    generation: int | None,
) -> list[Condition]:
    previous = devserver.status

    def make(kind: str, status: ConditionStatus, reason: str, text: str) -> Condition:
        return _condition(previous, kind, status, reason, text, now=now, generation=generation)

    ready_reason = {
        "Running": "PodsReady",
        "Starting": "PodsStarting",
        "Interrupted": "Interrupted",
        "Pending": "PodsPending",
        "Stopping": "Stopping",
        "Stopped": "Stopped",
        "Expired": DEADLINE_BEFORE_CREATION,
        "Terminating": "Terminating",
    }
    ready = make(
        "Ready",
        "True" if phase == "Running" else "False",
        degraded[1] if phase == "Failed" else ready_reason[phase],
        message,
    )

    if phase in ("Stopped", "Stopping", "Terminating") or (not live and phase != "Pending"):
        scheduled = make("Scheduled", "False", "NoPods", f"no pods to schedule: {message}")
    elif any(_pod_condition(pod, "PodScheduled") is not None for pod in unscheduled):
        scheduled = make("Scheduled", "False", "Unschedulable", _unscheduled_message(unscheduled, events))
    elif unscheduled:  # created a moment ago: the scheduler has not looked yet, which is no failure
        scheduled = make("Scheduled", "Unknown", "Scheduling", _unscheduled_message(unscheduled, events))
    elif not live:
        scheduled = make("Scheduled", "Unknown", "NoPods", "the pods do not exist yet")
    else:
        scheduled = make("Scheduled", "True", "AllPodsScheduled", f"{len(live)} pod(s) scheduled")

    if lifecycle is not None:
        idle = make("Idle", *lifecycle.idle)
    else:
        before = previous.condition("Idle")
        idle = (
            make("Idle", before.status, before.reason, before.message)
            if before
            else make("Idle", "Unknown", "NotEvaluated", "idleness has not been evaluated yet")
        )

    if phase == "Expired":
        expiring = make("ExpiringSoon", "True", DEADLINE_BEFORE_CREATION, message)
    elif expires_at is None:
        expiring = make("ExpiringSoon", "False", "NoExpiry", "the server has no expiry time")
    elif now >= expires_at:
        expiring = make(
            "ExpiringSoon",
            "True",
            "Expired",
            f"expired at {rfc3339(expires_at)}; it is deleted with its home volumes",
        )
    elif now >= expires_at - warning_lead:
        minutes = max(1, int((expires_at - now).total_seconds() // 60))
        expiring = make(
            "ExpiringSoon",
            "True",
            "ExpiringSoon",
            f"deleted with its home volumes at {rfc3339(expires_at)} (in {minutes} min); extend it "
            f"with: {NextStep('extend', devserver.name, {'time': '2h'}).devctl()}",
        )
    else:
        expiring = make("ExpiringSoon", "False", "NotExpiring", f"expires at {rfc3339(expires_at)}")

    conditions = [ready, scheduled, idle, expiring, make("Degraded", *degraded)]
    ignored = devserver.spec.ignored_fields()
    if ignored:
        reason = IGNORED_FIELDS[next(iter(ignored))].reason if len(ignored) == 1 else "SeveralFieldsIgnored"
        conditions.append(make(FIELDS_IGNORED, "True", reason, "; ".join(ignored.values())))
    return conditions
