"""One reconcile of one DevServer: read the caches, build the desired objects, apply, act, write the status.

Level-triggered: the same function runs for a create, an update, an operator restart (kopf's initial
listing), a change of an owned StatefulSet, Service or pod, a flavor change and a lifecycle deadline, and
it always starts from what *is* (the caches its watches fill), never from what changed.

What it costs the API server, per reconcile (the caches make reads free):

* 0 requests when nothing changed: the StatefulSet and Service carry the hash of the manifest last
  applied (``devservers.io/applied-hash``), and the status is written only when it differs;
* 1 create (missing: first time, or healing) or 1 whole-object replace (PUT) per owned object whose desired
  manifest changed;
* 1 ``/status`` merge patch when the status changed;
* 1 GET only for what no watch covers: the shared claim (when named), a flavor missing from the cache;
* Events only on transitions (Degraded, Unschedulable, ExpiringSoon, the lifecycle's own actions).

What it must never do: delete a home volume other than by deleting the DevServer, stop a server on a
failed probe, or retry a missing flavor in a loop (the flavor watch brings it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from devservers_sdk.checkpoint_hook import STOP_MARGIN_SECONDS, TIMED_OUT_CODES, hook_command
from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.cost import (
    LEDGER_NAME,
    LedgerEntry,
    Stretch,
    account,
    parse_price,
    prune_ledger,
)
from devservers_sdk.durations import parse_duration
from devservers_sdk.errors import (
    AlreadyExistsError,
    ConflictError,
    DevServerError,
    NamespaceTerminatingError,
    NotFoundError,
    flavor_not_found,
)
from devservers_sdk.kube_async import (
    CONFIGMAPS,
    DEVSERVERS,
    EVENTS,
    FLAVORS,
    NODES,
    PODS,
    PVCS,
    SERVICES,
    STATEFULSETS,
    AsyncKube,
)
from devservers_sdk.lifecycle import (
    DESIRED_STATE_ANNOTATION,
    Decision,
    ProbeReport,
    desired_stopped,
    idle_timeout,
    plan,
    track_gpu_use,
)
from devservers_sdk.manifests import (
    MANAGED_BY,
    DesiredObjects,
    build_objects,
    gpu_count,
    immutable_changes,
    nprocs_per_node,
    rank_count,
)
from devservers_sdk.models import (
    API_GROUP,
    API_VERSION,
    DEVSERVER_KIND,
    CheckpointOutcome,
    CostStatus,
    DevServer,
    DevServerFlavor,
    DevServerStatus,
    GpuUse,
    RankCheckpoint,
    TrackingSpec,
)
from devservers_sdk.next_steps import NextStep
from devservers_sdk.status import (
    Disruption,
    derive_status,
    latest_pod_start,
    pod_disruption,
    pod_rank,
    pods_to_replace,
)
from devservers_sdk.tracking_settings import (
    effective_tracking,
    parse_defaults,
    required_secrets,
    secret_problem,
)

from .metrics import COUNTERS
from .probe import parse_probe, probe_command
from .settings import OperatorSettings
from .workqueue import WorkQueue

__all__ = [
    "APPLIED_HASH_ANNOTATION",
    "PROGRESS_WRITE_INTERVAL",
    "Cache",
    "Key",
    "Reconciler",
    "progress_only",
]

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, DevServer name)."""

APPLIED_HASH_ANNOTATION = "devservers.io/applied-hash"
TEMPLATE_HASH_ANNOTATION = "devservers.io/template-hash"
"""On the StatefulSet: the hash of its pod template, so a change that will restart the pods is known (and
the checkpoint hook run) before the StatefulSet is replaced."""
OUTPUT_TAIL_CHARS = 1000
"""On the StatefulSet and the Service: the hash of the manifest the operator last applied."""
COMPONENT = "devservers-operator"
CLAIM_RETRY_FIRST = 2.0
CLAIM_RETRY_MAX = 60.0
PROBE_CONCURRENCY = 16
ORPHAN_GRACE = 3.0
POD_PROGRESS_DELAY = 2.0
"""Seconds a pod event that is only progress waits for others to join it in one reconcile (``_pod_news``)."""
_PROGRESS_WAITING = ("ContainerCreating", "PodInitializing")
PROGRESS_WRITE_INTERVAL = 30.0
"""Seconds a status that only reports progress waits after the last write (see ``progress_only``).

A create is then two writes when it runs within this time (Pending, then Running), which is every create
on a machine that is not saturated; a slower one (an image pull, a thousand pods at once) still shows its
progress twice a minute. 2 s made a create 3 to 5 writes (Pending, Starting with each new container
state, Running), each one a request, a watch event for every watcher and one more reconcile."""
_PROGRESS_PHASES = ("Pending", "Starting")
_NEWS_FIELDS = ("observedGeneration", "expiresAt", "stoppedReason", "stoppedAt", "lastActivityTime", "cost")
NODES_MAX_AGE = 10.0
"""Seconds the Node list read to explain an unschedulable pod is reused (read only while one is)."""
LEDGER_ATTEMPTS = 5
"""Seconds a pod may stay without an owner next to its StatefulSet before the operator replaces it."""


class Cache(Protocol):
    """What the reconcile reads without a request: kopf's indices and the owned watches' caches."""

    def devserver(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def flavor(self, name: str) -> dict[str, Any] | None: ...
    def flavor_names(self) -> list[str]: ...
    def statefulset(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def service(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]: ...
    def flavor_users(self, flavor: str) -> list[Key]: ...
    def namespace_defaults(self, namespace: str) -> dict[str, Any] | None: ...
    def devservers_in(self, namespace: str) -> list[Key]: ...


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A short stable hash of a manifest (key order does not matter)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[
        :20
    ]


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class _Written:
    """An owned object as this operator last wrote it, and the hash of the manifest it came from."""

    digest: str
    body: dict[str, Any]


@dataclass
class _Desired:
    """The objects last built for a DevServer, with their hashes, and what they were built from.

    Building them and hashing them (a sorted JSON dump and a SHA-256 of each) was a fifth of a reconcile,
    and most reconciles (a pod event, a StatefulSet status update) build exactly what the last one did.
    """

    inputs: tuple[str | None, ...]
    objects: DesiredObjects
    digests: dict[str, str]


@dataclass
class _Memory:
    """What the operator remembers of one DevServer between reconciles (lost on restart, by design)."""

    probe: ProbeReport | None = None
    claim_failures: int = 0
    secret_failures: int = 0
    own_status_version: str | None = None
    status_written_at: float = -float("inf")  # time.monotonic() of the last status write
    warned_unschedulable: bool = False
    written: dict[str, _Written] = field(default_factory=dict)
    desired: _Desired | None = None
    last_written: dict[str, Any] | None = None
    # Pods the system took away, seen in watch events: a drained pod may be gone (and its replacement
    # created) before the debounced reconcile reads the cache, and with it the evidence.
    disruptions: dict[str, Disruption] = field(default_factory=dict)
    gpu_warned_for: datetime | None = None  # the gpuLowSince whose stop was already announced
    # Transitions whose Events were posted for a status write that has not landed yet: its retry computes
    # them again and must not announce them twice. Keys are (condition type, Event reason, condition status).
    announced: set[tuple[str, str, str]] = field(default_factory=set)
    checkpoint: CheckpointOutcome | None = None  # the last hook run, until the status carries it


class Reconciler:
    """Reconciles DevServers; ``trigger``/``forget`` are called from kopf's event handlers.

    Args:
        kube: the API client.
        cache: the watched objects.
        settings: the operator's settings.
        clock: the current time (tests can move it).
        ready: set once the caches hold their first listing; no reconcile runs before (None: ready now).
    """

    def __init__(
        self,
        kube: AsyncKube,
        cache: Cache,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.kube = kube
        self._ready = ready
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue(
            self.reconcile, concurrency=settings.max_concurrent_reconciles, debounce=settings.debounce
        )
        self._memory: dict[Key, _Memory] = {}
        self._probe_slots = asyncio.Semaphore(PROBE_CONCURRENCY)
        self._instance = socket.gethostname()
        self._nodes: tuple[float, list[dict[str, Any]]] | None = None
        self._ledger_locks: dict[str, asyncio.Lock] = {}
        self._ledgers: dict[str, dict[str, Any]] = {}  # each namespace's ledger as this operator last wrote it
        self._ledger_tasks: set[asyncio.Task[None]] = set()

    # -- events in -----------------------------------------------------------------------------------

    def devserver_changed(self, event_type: str | None, body: Mapping[str, Any]) -> str:
        """A DevServer event: reconcile it, unless the event is the echo of our own status write.

        Returns what became of the event (``metrics``): ``reconcile``, ``echo`` or ``ignored``.
        """
        meta = _meta(body)
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.forget(key)
            if (body.get("status") or {}).get("cost"):
                task = asyncio.get_running_loop().create_task(self._ledger_deleted(body))
                self._ledger_tasks.add(task)
                task.add_done_callback(self._ledger_tasks.discard)
            return "ignored"
        memory = self._memory.get(key)
        if (
            memory is not None
            and memory.own_status_version
            and meta.get("resourceVersion") == memory.own_status_version
        ):
            return "echo"
        self.queue.trigger(key)
        return "reconcile"

    def owned_changed(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> str:
        """An owned StatefulSet, Service or pod changed or was deleted: reconcile its DevServer.

        Returns what became of the event, as ``devserver_changed`` does, or for a pod's progress,
        ``progress`` (a reconcile soon) or ``joined`` (one was due already).
        """
        meta = _meta(body)
        name = (meta.get("labels") or {}).get(NAME_LABEL)
        if not name or not meta.get("namespace"):
            return "ignored"
        key = (str(meta["namespace"]), str(name))
        disruption = pod_disruption(body) if kind == "Pod" else None
        if disruption is not None:
            self._memory.setdefault(key, _Memory()).disruptions[disruption.uid] = disruption
        memory = self._memory.get(key)
        written = memory.written.get(kind) if memory is not None else None
        if event_type == "DELETED" and memory is not None:
            if written is not None and _meta(written.body).get("uid") == meta.get("uid"):
                del memory.written[kind]  # gone: the next reconcile creates it again
        elif written is not None and _meta(written.body).get("resourceVersion") == meta.get("resourceVersion"):
            return "echo"  # the object as this operator's own create or replace returned it: nothing new
        if disruption is not None and event_type != "DELETED" and not meta.get("deletionTimestamp"):
            # Marked for a disruption (eviction, taint, preemption), still up: the deletion follows at
            # once, and is the news. A reconcile between the two would see the pod still Running and
            # count the interruption as over before it began (no Interrupted phase).
            return "progress" if self.queue.schedule(key, POD_PROGRESS_DELAY) else "joined"
        if kind == "Pod" and event_type != "DELETED" and not _pod_news(body):
            # A pod on its way up (bound, scheduled, its containers being created, started but not
            # ready) changes seven times in a few seconds, and on the way up the status only reports
            # progress, which is held back anyway (``PROGRESS_WRITE_INTERVAL``). One reconcile for
            # the lot, or earlier when news comes (ready, a problem, a deletion). When that reconcile is
            # already due, the event joins it (it reads the pod from the cache, where this event is).
            return "progress" if self.queue.schedule(key, POD_PROGRESS_DELAY) else "joined"
        self.queue.trigger(key)
        return "reconcile"

    def namespace_defaults_changed(self, namespace: str) -> None:
        """The namespace's devservers-defaults ConfigMap appeared, changed or went away: reconcile every
        DevServer of the namespace."""
        for key in self.cache.devservers_in(namespace):
            self.queue.trigger(key)

    def flavor_changed(self, name: str) -> None:
        """A flavor appeared, changed or went away: reconcile every DevServer that names it."""
        for key in self.cache.flavor_users(name):
            self.queue.trigger(key)

    def forget(self, key: Key) -> None:
        self.queue.forget(key)
        self._memory.pop(key, None)

    async def stop(self) -> None:
        await self.queue.stop()
        if self._ledger_tasks:
            await asyncio.gather(*self._ledger_tasks, return_exceptions=True)

    # -- the reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        """Bring one DevServer's objects, status and lifecycle up to date; returns seconds until next look."""
        if self._ready is not None and not self._ready.is_set():
            # On an empty pod cache a pod would look missing: recreated, orphaned, the status Pending.
            await self._ready.wait()
        try:
            return await self._reconcile(key)
        except NamespaceTerminatingError as exc:
            # The namespace controller deletes the DevServer with everything else: no retry, no error.
            log.info("DevServer %s/%s: not reconciled, its namespace is being deleted: %s", *key, exc)
            self.forget(key)
            return None
        except NotFoundError as exc:
            # The namespace went while the caches still held the DevServer (an owned object's DELETED event,
            # sent by the namespace controller, triggered a re-create): the same end as above, a moment later.
            if not str(exc).startswith(f"Namespace '{key[0]}' does not exist"):
                raise
            log.info("DevServer %s/%s: not reconciled, its namespace is gone", *key)
            self.forget(key)
            return None

    async def _reconcile(self, key: Key) -> float | None:
        COUNTERS.reconciles += 1
        namespace, name = key
        body = self.cache.devserver(namespace, name)
        if body is None:
            self.forget(key)
            return None
        memory = self._memory.setdefault(key, _Memory())
        if memory.last_written is not None and _newer(memory.last_written, body):
            body = memory.last_written  # read our own writes: the cache lags them by a watch event
        try:
            devserver = DevServer.from_manifest(_resource_fields(body))
        except ValidationError as exc:
            await self._invalid(body, exc)
            return None
        now = self.clock()
        flavor, flavor_problem = await self._flavor(devserver)
        missing: dict[str, str] = {}
        if flavor_problem is not None:
            missing["flavor"] = flavor_problem
        retry: list[float] = []
        claim_problem = await self._shared_claim(devserver)
        if claim_problem is not None:
            missing["sharedVolumeClaim"] = claim_problem
            retry.append(min(CLAIM_RETRY_MAX, CLAIM_RETRY_FIRST * 2**memory.claim_failures))
            memory.claim_failures += 1
        else:
            memory.claim_failures = 0
        # Tracking: the namespace's defaults come from a watched ConfigMap (its change triggers this); a
        # Secret is not watched (a cluster-wide watch of Secrets is neither cheap nor wanted), so a missing
        # one is looked up again with the claim's backoff. Either problem withholds the pods, which could
        # not start (a Secret the kubelet cannot read) or would start half-configured.
        tracking, defaults_problem = parse_defaults(
            (self.cache.namespace_defaults(namespace) or {}).get("data"), namespace=namespace
        )
        if defaults_problem is not None:
            missing["namespaceDefaults"] = defaults_problem
        effective = effective_tracking(devserver, tracking)
        secret_problems = await self._tracking_secrets(devserver, effective)
        if secret_problems:
            missing["trackingSecret"] = "; ".join(secret_problems)
            retry.append(min(CLAIM_RETRY_MAX, CLAIM_RETRY_FIRST * 2**memory.secret_failures))
            memory.secret_failures += 1
        else:
            memory.secret_failures = 0
        withheld = defaults_problem is not None or bool(secret_problems)

        pods = self.cache.pods(namespace, name)
        statefulset = self.cache.statefulset(namespace, name)
        # GPU servers are probed every probe interval while they run: status.gpus and minGpuUtilization.
        watch_gpus = (
            flavor is not None
            and gpu_count(flavor) > 0
            and not desired_stopped(devserver)
            and devserver.metadata.deletion_timestamp is None
            and _running_pods(pods) >= rank_count(devserver)
        )
        gpu_low_since = self._gpu_low_since(devserver, pods, memory.probe)
        decision = self._plan(devserver, flavor, pods, now, probe=memory.probe, gpu_low_since=gpu_low_since)
        if flavor is not None and (decision.probe_wanted or watch_gpus) and self._probe_due(memory, now):
            memory.probe = await self._probe(devserver, pods)
            gpu_low_since = self._gpu_low_since(devserver, pods, memory.probe)
            decision = self._plan(devserver, flavor, pods, now, probe=memory.probe, gpu_low_since=gpu_low_since)
        if watch_gpus:
            retry.append(self.settings.probe_interval.total_seconds())

        if devserver.metadata.deletion_timestamp is None:
            if decision.action == "expire":
                await self._checkpoint(devserver, pods, "Expiry", memory)
                await self._event(devserver, "Normal", "Expired", decision.message)
                await self.kube.delete(DEVSERVERS, name, namespace=namespace, missing_ok=True)
                self.forget(key)
                return None
            if decision.warning is not None:
                await self._event(devserver, "Warning", "ExpiringSoon", decision.warning)
            if decision.gpu_warning is not None and memory.gpu_warned_for != gpu_low_since:
                memory.gpu_warned_for = gpu_low_since
                await self._event(devserver, "Warning", "LowGpuUtilization", decision.gpu_warning)
            if decision.action in ("stop_idle", "stop_low_gpu") and flavor is not None:
                await self._checkpoint(devserver, pods, "IdleStop", memory)
                body = await self.kube.patch(
                    DEVSERVERS, name, {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: "Stopped"}}},
                    namespace=namespace,
                )
                memory.last_written = body
                devserver = DevServer.from_manifest(_resource_fields(body))
                reason = "IdleStop" if decision.action == "stop_idle" else "LowGpuUtilizationStop"
                await self._event(devserver, "Normal", reason, decision.message)

            if decision.action == "hold":
                if devserver.status.phase != "Expired":
                    await self._event(devserver, "Warning", decision.reason, decision.message)
                if statefulset is not None and flavor is not None and not withheld:
                    # Edited into the past after it ran: keep everything, run nothing (as a stop does).
                    held = devserver.model_copy(update={"metadata": devserver.metadata.model_copy(update={
                        "annotations": {**devserver.metadata.annotations, DESIRED_STATE_ANNOTATION: "Stopped"}})})
                    statefulset, _ = await self._apply_objects(held, flavor, statefulset, pods, memory, now,
                                                               effective)
            elif flavor is not None and not withheld:
                statefulset, again = await self._apply_objects(
                    devserver, flavor, statefulset, pods, memory, now, effective
                )
                if again is not None:
                    retry.append(again)

        status = derive_status(
            devserver,
            statefulset=statefulset,
            pods=pods,
            now=now,
            expires_at=decision.expires_at,
            desired_stopped=desired_stopped(devserver),
            missing=missing,
            lifecycle=decision,
            warning_lead=self.settings.warning_lead,
            disruptions=list(memory.disruptions.values()),
            nodes=await self._nodes_if_unschedulable(pods),
        )
        status = await self._observed_extras(devserver, flavor, status, pods, memory.probe, gpu_low_since, now)
        checkpoint = memory.checkpoint or devserver.status.last_checkpoint
        if checkpoint is not None:
            status = status.model_copy(update={"last_checkpoint": checkpoint})
        seen = set(memory.disruptions)
        wait = await self._write_status(devserver, body, status, memory, pods)
        if wait is None:
            memory.checkpoint = None  # written (or already there)
        if status.last_interruption is not None and wait is None:
            for uid in seen & set(status.last_interruption.pod_uids):
                memory.disruptions.pop(uid, None)  # recorded in the status now
        if wait is not None:
            retry.append(wait)
        if decision.requeue_after is not None:
            retry.append(decision.requeue_after)
        return min(retry) if retry else None

    # -- reading -------------------------------------------------------------------------------------

    async def _flavor(self, devserver: DevServer) -> tuple[DevServerFlavor | None, str | None]:
        """The DevServer's flavor, or why there is none (a sentence naming the flavor and the fix)."""
        flavor_name = devserver.spec.flavor
        body = self.cache.flavor(flavor_name)
        if body is None:
            # Not in the cache: absent, or created a moment ago. Ask once; the flavor watch does the rest.
            try:
                body = await self.kube.get(FLAVORS, flavor_name)
            except NotFoundError:
                available = self.cache.flavor_names()
                text = flavor_not_found(flavor_name, available).message.rstrip(".")
                return None, (
                    f"{text}. DevServer '{devserver.name}' starts once flavor '{flavor_name}' exists; "
                    f"or pick another with: {NextStep('update', devserver.name, {'flavor': '...'}).devctl()}"
                )
        try:
            return DevServerFlavor.from_manifest(_resource_fields(body)), None
        except ValidationError as exc:
            return (
                None,
                f"DevServerFlavor '{flavor_name}' is invalid: {_first_error(exc)}. Ask an admin to fix it",
            )

    async def _shared_claim(self, devserver: DevServer) -> str | None:
        claim = devserver.spec.shared_volume_claim_name
        if claim is None:
            return None
        namespace = devserver.namespace or ""
        try:
            await self.kube.get(PVCS, claim, namespace=namespace)
        except NotFoundError:
            return (
                f"PersistentVolumeClaim '{claim}' (spec.sharedVolumeClaimName) does not exist in namespace "
                f"'{namespace}'; create it, or remove sharedVolumeClaimName. The pods start once it exists"
            )
        return None

    async def _tracking_secrets(self, devserver: DevServer, tracking: TrackingSpec) -> list[str]:
        """Why the pods could not read their tracking credentials (one sentence per Secret), or nothing."""
        namespace = devserver.namespace or ""
        problems = []
        for secret in required_secrets(tracking):
            keys = await self.kube.secret_keys(namespace, secret.name)
            problem = secret_problem(secret, keys, namespace=namespace, devserver=devserver.name)
            if problem is not None:
                problems.append(problem)
        return problems

    # -- lifecycle -----------------------------------------------------------------------------------

    def _plan(
        self,
        devserver: DevServer,
        flavor: DevServerFlavor | None,
        pods: Sequence[Mapping[str, Any]],
        now: datetime,
        *,
        probe: ProbeReport | None,
        gpu_low_since: datetime | None = None,
    ) -> Decision:
        flavor_spec = flavor.spec if flavor is not None else None
        return plan(
            self._scaled(devserver, flavor),
            now=now,
            flavor_spec=flavor_spec,
            probe=probe,
            started_at=latest_pod_start(pods),
            warning_lead=self.settings.warning_lead,
            gpu_low_since=gpu_low_since,
        )

    def _gpu_low_since(
        self, devserver: DevServer, pods: Sequence[Mapping[str, Any]], probe: ProbeReport | None
    ) -> datetime | None:
        return track_gpu_use(
            devserver.spec.lifecycle.min_gpu_utilization,
            devserver.status.gpu_low_since,
            probe,
            started_at=latest_pod_start(pods),
        )

    async def _nodes_if_unschedulable(self, pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
        """The Nodes, read (at most every ``NODES_MAX_AGE`` s) only while a pod of this server is unschedulable."""
        if not any(_pod_unschedulable(pod) for pod in pods):
            return None
        cached = self._nodes
        if cached is not None and time.monotonic() - cached[0] < NODES_MAX_AGE:
            return cached[1]
        try:
            nodes = (await self.kube.list(NODES))["items"]
        except DevServerError as exc:
            log.warning("Could not read the Nodes to explain an unschedulable pod: %s", exc)
            return None
        self._nodes = (time.monotonic(), nodes)
        return nodes

    async def _observed_extras(
        self,
        devserver: DevServer,
        flavor: DevServerFlavor | None,
        status: DevServerStatus,
        pods: Sequence[Mapping[str, Any]],
        probe: ProbeReport | None,
        gpu_low_since: datetime | None,
        now: datetime,
    ) -> DevServerStatus:
        """The status with what the pure status does not derive: nprocs, GPU readings and the cost so far."""
        stopped = desired_stopped(devserver) or devserver.metadata.deletion_timestamp is not None
        gpus: list[GpuUse] | None = None
        if not stopped and probe is not None and probe.gpus:
            gpus = [
                GpuUse(
                    rank=reading.rank,
                    index=reading.index,
                    utilization=reading.utilization,
                    memory_used_mib=reading.memory_used_mib,
                    memory_total_mib=reading.memory_total_mib,
                    observed_at=probe.observed_at,
                )
                for reading in sorted(probe.gpus, key=lambda r: (r.rank, r.index))
            ]
        price = None
        if flavor is not None:
            with contextlib.suppress(ValueError):  # the model's pattern makes this rare: counted as no price
                price = parse_price(flavor.spec.cost_per_hour)
        running = 0 if stopped else _running_pods(pods)
        previous_cost = devserver.status.cost
        if flavor is None and previous_cost is not None:
            # No flavor now (deleted, invalid): keep counting at the price last seen rather than forgetting it.
            price = parse_price(
                f"{previous_cost.per_hour} {previous_cost.currency}" if previous_cost.currency else previous_cost.per_hour
            )
        cost, closed = account(previous_cost, price=price, running_pods=running, now=now)
        if cost is not None and closed is not None:
            # Only a closed stretch is news for the ledger: an open one is in the status, and the DELETED
            # event closes it. So a create costs no ledger request, a stop or a deletion one or two.
            await self._ledger_update(devserver, cost, closed, now=now)
        return status.model_copy(
            update={
                "nprocs_per_node": nprocs_per_node(devserver, flavor) if flavor is not None else None,
                "gpus": gpus,
                "gpu_low_since": None if stopped else gpu_low_since,
                "cost": cost,
            }
        )

    # -- the cost ledger (see devservers_sdk.cost) -----------------------------------------------------

    def _entry(self, devserver: DevServer, cost: CostStatus, now: datetime) -> LedgerEntry:
        return LedgerEntry(
            uid=devserver.metadata.uid or devserver.name,
            name=devserver.name,
            namespace=devserver.namespace or "",
            owner=devserver.spec.owner,
            flavor=devserver.spec.flavor,
            cost=cost,
            updated=now,
        )

    async def _ledger_update(
        self,
        devserver: DevServer,
        cost: CostStatus,
        closed: Stretch | None,
        *,
        now: datetime,
        deleted: datetime | None = None,
    ) -> None:
        """Record the server's cost in its namespace's ledger ConfigMap; best effort (the status has it too)."""
        namespace = devserver.namespace or ""
        lock = self._ledger_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            for _ in range(LEDGER_ATTEMPTS):
                try:
                    await self._ledger_write(devserver, cost, closed, now=now, deleted=deleted)
                    return
                except (ConflictError, AlreadyExistsError, NotFoundError):
                    self._ledgers.pop(namespace, None)  # changed meanwhile (a hand edit, a restart): read again
                    continue
                except NamespaceTerminatingError:
                    log.debug("DevServer %s/%s: no cost ledger, its namespace is being deleted", namespace,
                              devserver.name)
                    return
                except DevServerError as exc:
                    log.warning("Could not record the cost of DevServer %s/%s: %s", namespace, devserver.name, exc)
                    return
            log.warning("Could not record the cost of DevServer %s/%s: the ledger kept changing", namespace,
                        devserver.name)

    async def _ledger_write(
        self,
        devserver: DevServer,
        cost: CostStatus,
        closed: Stretch | None,
        *,
        now: datetime,
        deleted: datetime | None,
    ) -> None:
        namespace = devserver.namespace or ""
        ledger: dict[str, Any] | None = self._ledgers.get(namespace)
        if ledger is None:
            try:
                ledger = await self.kube.get(CONFIGMAPS, LEDGER_NAME, namespace=namespace)
            except NotFoundError:
                ledger = None
        data = dict(((ledger or {}).get("data")) or {})
        entries = {uid: entry for uid, text in data.items() if (entry := LedgerEntry.from_json(uid, text))}
        uid = devserver.metadata.uid or devserver.name
        previous = entries.get(uid)
        entry = self._entry(devserver, cost, now)
        if previous is not None:
            stretches = previous.stretches
            if closed is not None and any(s.start == closed.start for s in stretches):
                closed = None  # already recorded by a write whose status patch was then lost
            entry = LedgerEntry(**{**entry.__dict__, "stretches": stretches})
        entry = entry.with_stretch(closed)
        if deleted is not None:
            entry = LedgerEntry(**{**entry.__dict__, "deleted": deleted})
        entries[uid] = entry
        kept = prune_ledger(entries, now=now)
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": LEDGER_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
            },
            "data": {key: value.to_json() for key, value in sorted(kept.items())},
        }
        if ledger is None:
            try:
                self._ledgers[namespace] = await self.kube.create(CONFIGMAPS, manifest)
            except NotFoundError:  # the namespace itself is gone: nothing left to account for there
                log.debug("No cost ledger for DevServer %s/%s: its namespace is gone", namespace, devserver.name)
        else:
            manifest["metadata"]["resourceVersion"] = (ledger.get("metadata") or {}).get("resourceVersion")
            self._ledgers[namespace] = await self.kube.replace(CONFIGMAPS, manifest)

    async def _ledger_deleted(self, body: Mapping[str, Any]) -> None:
        """A deleted DevServer's last figures: its open stretch closed now, marked deleted."""
        try:
            devserver = DevServer.from_manifest(_resource_fields(body))
        except ValidationError:
            return
        now = self.clock()
        cost, closed = account(devserver.status.cost, price=None, running_pods=0, now=now)
        if cost is not None:
            await self._ledger_update(devserver, cost, closed, now=now, deleted=now)

    def _scaled(self, devserver: DevServer, flavor: DevServerFlavor | None) -> DevServer:
        """The DevServer with its idle timeout multiplied by ``idle_timeout_scale`` (tests and demos)."""
        scale = self.settings.idle_timeout_scale
        timeout = idle_timeout(devserver.spec, flavor.spec if flavor is not None else None)
        policy = devserver.spec.lifecycle.min_gpu_utilization
        if scale == 1 or (timeout is None and policy is None):
            return devserver
        update: dict[str, Any] = {}
        if timeout is not None:
            update["idle_timeout"] = max(1.0, timeout.total_seconds() * scale)
        if policy is not None:
            seconds = max(1, round(parse_duration(policy.window).total_seconds() * scale))
            update["min_gpu_utilization"] = policy.model_copy(update={"window": f"{seconds}s"})
        lifecycle = devserver.spec.lifecycle.model_copy(update=update)
        return devserver.model_copy(
            update={"spec": devserver.spec.model_copy(update={"lifecycle": lifecycle})}
        )

    def _probe_due(self, memory: _Memory, now: datetime) -> bool:
        return memory.probe is None or now - memory.probe.observed_at >= self.settings.probe_interval

    async def _probe(self, devserver: DevServer, pods: Sequence[Mapping[str, Any]]) -> ProbeReport:
        """Probe every rank; one failed or missing rank makes the report failed (it proves nothing)."""
        now = self.clock()
        ranks = rank_count(devserver)
        live = {
            rank: pod
            for pod in pods
            if not _meta(pod).get("deletionTimestamp")
            if (rank := pod_rank(pod)) is not None and rank < ranks
        }
        if len(live) < ranks:
            return ProbeReport(observed_at=now, error=f"{ranks - len(live)} rank(s) have no pod to probe")

        async def one(rank: int, pod: Mapping[str, Any]) -> ProbeReport:
            pod_name = str(_meta(pod).get("name"))
            async with self._probe_slots:
                try:
                    result = await self.kube.exec(
                        devserver.namespace or "",
                        pod_name,
                        probe_command(self.settings.probe_window),
                        timeout=self.settings.probe_timeout,
                    )
                except DevServerError as exc:
                    return ProbeReport(observed_at=now, error=f"pod {pod_name}: {exc}")
            return parse_probe(
                result.stdout.decode("utf-8", "replace"),
                observed_at=now,
                returncode=result.returncode,
                stderr=result.stderr.decode("utf-8", "replace"),
                rank=rank,
            )

        reports = await asyncio.gather(*(one(rank, pod) for rank, pod in live.items()))
        combined = ProbeReport.combine(reports)
        assert combined is not None
        log.debug("Probed DevServer %s/%s: %s", devserver.namespace, devserver.name, combined.describe())
        return combined

    # -- writing -------------------------------------------------------------------------------------

    async def _apply_objects(
        self,
        devserver: DevServer,
        flavor: DevServerFlavor,
        statefulset: dict[str, Any] | None,
        pods: Sequence[Mapping[str, Any]],
        memory: _Memory,
        now: datetime,
        tracking: TrackingSpec,
    ) -> tuple[dict[str, Any] | None, float | None]:
        """Apply the StatefulSet and Service where they differ from the desired ones.

        Returns:
            The StatefulSet to derive the status from (None while it is being recreated), and the seconds
            until this DevServer needs another look, if any.
        """
        namespace = devserver.namespace or ""
        desired, digests = self._desired(devserver, flavor, tracking, memory)
        again: float | None = None
        if statefulset is not None and _meta(statefulset).get("deletionTimestamp"):
            statefulset = None  # being deleted (orphaned for a recreate): its DELETED event brings us back
        elif statefulset is not None and (changed := immutable_changes(statefulset, desired.statefulset)):
            await self._event(
                devserver,
                "Normal",
                "RecreatingStatefulSet",
                f"{', '.join(changed)} cannot change in place: recreating StatefulSet "
                f"'{devserver.name}'; its pods and home volumes are kept and adopted",
            )
            await self.kube.delete(STATEFULSETS, devserver.name, namespace=namespace, propagation="Orphan",
                                   missing_ok=True)
            statefulset = None
        else:
            template_hash = desired.statefulset["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
            live_hash = (_meta(statefulset).get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION)
            written = memory.written.get("StatefulSet")
            already = written is not None and (_meta(written.body).get("annotations") or {}).get(
                TEMPLATE_HASH_ANNOTATION) == template_hash  # applied already; the cache lags our write
            if statefulset is not None and live_hash not in (None, template_hash) and not already:
                await self._checkpoint(devserver, pods, "Restart", memory)  # the new template restarts them
            statefulset = await self._apply(
                "StatefulSet", desired.statefulset, statefulset, memory, digests["StatefulSet"]
            )
        service = self.cache.service(namespace, devserver.name)
        await self._apply("Service", desired.service, service, memory, digests["Service"])
        doomed = set(pods_to_replace(statefulset, pods))
        orphans = [str(_meta(pod).get("name")) for pod in pods if _orphaned(pod)]
        if statefulset is not None and orphans:
            # Pods left by a recreate. The StatefulSet controller adopts its orphans at once and then
            # rolls them to its template; one that stays an orphan (the local cluster never adopts) is
            # deleted so that the StatefulSet creates it again.
            created = _parse_time(_meta(statefulset).get("creationTimestamp")) or now
            waited = (now - created).total_seconds()
            if waited >= ORPHAN_GRACE:
                doomed |= set(orphans)
            else:
                again = ORPHAN_GRACE - waited
        for pod_name in sorted(doomed):
            log.info(
                "Deleting pod %s/%s: it is not on the StatefulSet's current template", namespace, pod_name
            )
            await self.kube.delete(PODS, pod_name, namespace=namespace, missing_ok=True)
        return statefulset, again

    async def _checkpoint(
        self, devserver: DevServer, pods: Sequence[Mapping[str, Any]], trigger: str, memory: _Memory
    ) -> None:
        """Run ``spec.lifecycle.checkpoint`` on every running rank at once, each cut at its timeout; the outcome
        goes to an Event and (through ``memory``) to ``status.lastCheckpoint``. Never raises: the stop goes on."""
        hook = devserver.spec.lifecycle.checkpoint
        running = {
            rank: str(_meta(pod).get("name"))
            for pod in pods
            if not _meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") == "Running"
            if (rank := pod_rank(pod)) is not None
        }
        if hook is None or not running:
            return
        started, began = self.clock(), time.monotonic()
        command = hook_command(hook, by_operator=True)

        async def one(rank: int, pod_name: str) -> RankCheckpoint:
            start = time.monotonic()
            try:
                result = await self.kube.exec(devserver.namespace or "", pod_name, command,
                                              timeout=hook.timeout_seconds + STOP_MARGIN_SECONDS)
            except DevServerError as exc:  # no exit status: the pod went, or the exec itself timed out
                took = time.monotonic() - start
                return RankCheckpoint(rank=rank, timed_out=took >= hook.timeout_seconds,
                                      duration_seconds=round(took, 1), output_tail=str(exc)[-OUTPUT_TAIL_CHARS:])
            output = (result.stdout + result.stderr).decode("utf-8", "replace")
            return RankCheckpoint(
                rank=rank,
                exit_code=None if result.returncode in TIMED_OUT_CODES else result.returncode,
                timed_out=result.returncode in TIMED_OUT_CODES,
                duration_seconds=round(time.monotonic() - start, 1),
                output_tail=output[-OUTPUT_TAIL_CHARS:],
            )

        ranks = sorted(await asyncio.gather(*(one(rank, pod) for rank, pod in running.items())),
                       key=lambda outcome: outcome.rank)
        outcome = CheckpointOutcome(
            trigger=trigger, time=started, succeeded=all(r.exit_code == 0 for r in ranks),
            duration_seconds=round(time.monotonic() - began, 1), ranks=ranks,
        )
        memory.checkpoint = outcome
        what = {"IdleStop": "the idle stop", "Expiry": "expiry", "Restart": "the pods restart"}[trigger]
        if outcome.succeeded:
            await self._event(devserver, "Normal", "CheckpointSaved",
                              f"checkpoint hook ran on {len(ranks)} rank(s) before {what} in "
                              f"{outcome.duration_seconds:g}s")
        else:
            failed = "; ".join(_rank_failure(r, hook.timeout_seconds) for r in ranks if r.exit_code != 0)
            await self._event(devserver, "Warning", "CheckpointFailed",
                              f"checkpoint hook before {what} failed ({failed}); stopping anyway")

    def _desired(
        self, devserver: DevServer, flavor: DevServerFlavor, tracking: TrackingSpec, memory: _Memory
    ) -> tuple[DesiredObjects, dict[str, str]]:
        """The StatefulSet (with its template's hash) and Service to apply, and the hash of each; built again
        only when what they are built from changed."""
        meta = devserver.metadata
        inputs = (
            meta.namespace,
            meta.name,
            meta.uid,
            json.dumps([meta.labels, meta.annotations], sort_keys=True),
            devserver.spec.model_dump_json(),
            flavor.spec.model_dump_json(),
            tracking.model_dump_json(),
        )
        if memory.desired is not None and memory.desired.inputs == inputs:
            return memory.desired.objects, memory.desired.digests
        desired = build_objects(devserver, flavor, self.settings.objects, tracking=tracking)
        template_hash = manifest_hash(desired.statefulset["spec"]["template"])
        desired.statefulset["metadata"].setdefault("annotations", {})[TEMPLATE_HASH_ANNOTATION] = template_hash
        digests = {"StatefulSet": manifest_hash(desired.statefulset), "Service": manifest_hash(desired.service)}
        memory.desired = _Desired(inputs, desired, digests)
        return desired, digests

    async def _apply(
        self,
        kind: str,
        desired: dict[str, Any],
        live: dict[str, Any] | None,
        memory: _Memory,
        digest: str,
    ) -> dict[str, Any] | None:
        """Create the object, or replace it whole when it differs from what was last applied.

        The cache lags the API by a watch event (the write's event arrives after its response), so the
        object this operator itself just wrote is remembered and preferred over an older cached copy:
        otherwise the next reconcile would create it again (409) or replace it again.
        """
        written = memory.written.get(kind)
        if live is not None and not _meta(live).get("deletionTimestamp"):
            live_meta = _meta(live)
            same_hash = (live_meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION) == digest
            if same_hash and (written is None or _generation(live) in (None, _generation(written.body))):
                return live  # as last applied, and nobody changed its spec since
            if written is not None and written.digest == digest and _not_newer(live, written.body):
                return written.body  # the cache has not caught up with our own replace yet
        elif live is None and written is not None and written.digest == digest:
            return written.body  # the cache has not caught up with our own create yet
        manifest = json.loads(json.dumps(desired))
        metadata = manifest["metadata"]
        if live is not None:
            # The spec is ours alone; metadata others added (annotations, labels, finalizers) is kept.
            live_meta = _meta(live)
            metadata["labels"] = {**(live_meta.get("labels") or {}), **metadata.get("labels", {})}
            metadata["annotations"] = {**(live_meta.get("annotations") or {}), **metadata.get("annotations", {})}
            if live_meta.get("finalizers"):
                metadata["finalizers"] = list(live_meta["finalizers"])
            if kind == "StatefulSet" and "volumeClaimTemplates" in (live.get("spec") or {}):
                # Immutable, and equal where it matters (immutable_changes said so); sending ours would be
                # refused where they differ in the rest, e.g. a StatefulSet made before the templates carried
                # the DevServer as the claims' owner.
                manifest["spec"]["volumeClaimTemplates"] = live["spec"]["volumeClaimTemplates"]
        metadata.setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest
        resource = STATEFULSETS if kind == "StatefulSet" else SERVICES
        if live is None:
            try:
                result = await self.kube.create(resource, manifest)
            except AlreadyExistsError:  # created by an earlier run this process no longer remembers
                result = await self.kube.replace(resource, manifest)
        else:
            try:
                result = await self.kube.replace(resource, manifest)
            except NotFoundError:
                # Gone since the cache saw it: a change of the namespace's defaults can arrive while the
                # namespace is being deleted, with its objects. Create it again (a terminating namespace
                # refuses that, which ends the reconcile quietly).
                manifest["metadata"].pop("resourceVersion", None)
                result = await self.kube.create(resource, manifest)
        memory.written[kind] = _Written(digest, result)
        return result

    async def _write_status(
        self,
        devserver: DevServer,
        body: Mapping[str, Any],
        status: DevServerStatus,
        memory: _Memory,
        pods: Sequence[Mapping[str, Any]],
    ) -> float | None:
        """Write the status if it changed; returns seconds to wait when a progress-only write was held back."""
        new = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        old_raw = dict(body.get("status") or {})
        try:
            old = DevServerStatus.model_validate(old_raw).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
        except ValidationError:
            old = {}
        if old == new and set(old_raw) <= set(new):
            memory.announced.clear()  # nothing to write: no Event is waiting for its status
            return None
        if progress_only(old, new):
            wait = memory.status_written_at + PROGRESS_WRITE_INTERVAL - time.monotonic()
            if wait > 0:
                return wait
        patch: dict[str, Any] = {key: None for key in old_raw if key not in new}
        patch.update(new)
        namespace = devserver.namespace or ""
        log.debug(
            "Status of DevServer %s/%s: %s: %s (changed: %s)",
            namespace,
            devserver.name,
            status.phase,
            status.message,
            ", ".join(sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))),
        )
        # The Events go first: they are the evidence of the status, so whoever sees the new status (a user
        # who then runs `kubectl describe`, a test) finds them. Posted after the write, they raced the reader.
        await self._transition_events(devserver, devserver.status, status, pods, memory)
        COUNTERS.status_writes += 1
        try:
            result = await self.kube.patch(DEVSERVERS, devserver.name, {"status": patch}, namespace=namespace,
                                           subresource="status")
        except NotFoundError:
            # Deleted since the cache saw it: nothing left to report on, and no reason to retry.
            log.debug("DevServer %s/%s is gone; its status is not written", namespace, devserver.name)
            self.forget((namespace, devserver.name))
            return None
        memory.announced.clear()
        # Skip the echo of this write, unless someone else changed the object meanwhile.
        result_meta, body_meta = _meta(result), _meta(body)
        unchanged = all(
            result_meta.get(k) == body_meta.get(k) for k in ("generation", "annotations", "labels")
        )
        memory.own_status_version = result_meta.get("resourceVersion") if unchanged else None
        memory.last_written = result
        memory.status_written_at = time.monotonic()
        if not unchanged:
            self.queue.trigger((namespace, devserver.name))
        return None

    async def _transition_events(
        self,
        devserver: DevServer,
        before: DevServerStatus,
        after: DevServerStatus,
        pods: Sequence[Mapping[str, Any]],
        memory: _Memory,
    ) -> None:
        """Warn when a problem appears or changes; note when it clears. Never once per reconcile, and never
        twice for one transition when the status write that makes it is retried."""
        events: list[tuple[tuple[str, str, str], str, str, str]] = []
        was, now_interrupted = before.condition("Interrupted"), after.condition("Interrupted")
        if now_interrupted is not None and now_interrupted.status == "True" and (
                was is None or was.status != "True"):
            events.append((("Interrupted", "Interrupted", "True"), "Warning", "Interrupted",
                           f"{now_interrupted.message}; the pods come back on other nodes with their home "
                           f"volumes (interruption {after.interruptions})"))
        elif was is not None and was.status == "True" and now_interrupted is not None and \
                now_interrupted.status != "True" and after.phase == "Running":
            events.append((("Interrupted", "InterruptionRecovered", now_interrupted.status), "Normal",
                           "InterruptionRecovered",
                           f"Running again after the interruption at {_rfc3339(was.last_transition_time)}: "
                           f"{after.message}"))
        old, new = before.condition("Degraded"), after.condition("Degraded")
        if (
            new is not None
            and new.status == "True"
            and (old is None or old.status != "True" or old.reason != new.reason)
        ):
            events.append((("Degraded", new.reason, "True"), "Warning", new.reason, new.message))
        elif old is not None and old.status == "True" and new is not None and new.status != "True":
            events.append((("Degraded", "Recovered", new.status), "Normal", "Recovered",
                           f"no longer degraded ({old.reason})"))
        for key, event_type, reason, message in events:
            if key not in memory.announced:
                await self._event(devserver, event_type, reason, message)
        # A transition that no longer holds is forgotten: should it come back, that is news again.
        memory.announced = {key for key, *_ in events}
        # Unschedulable as the scheduler says it (a pod not yet looked at is no news), once per episode.
        scheduled = after.condition("Scheduled")
        if scheduled is not None and scheduled.status == "True":
            memory.warned_unschedulable = False
        elif any(_pod_unschedulable(pod) for pod in pods) and not memory.warned_unschedulable:
            memory.warned_unschedulable = True
            await self._event(
                devserver,
                "Warning",
                "FailedScheduling",
                scheduled.message if scheduled is not None else "a pod cannot be scheduled",
            )

    async def _invalid(self, body: Mapping[str, Any], exc: ValidationError) -> None:
        """A DevServer that bypassed validation: say so in its status once, and do nothing else."""
        meta = _meta(body)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        message = (
            f"DevServer '{name}' is invalid: {_first_error(exc)}. Fix it with kubectl edit or recreate it"
        )
        old = body.get("status") or {}
        degraded: dict[str, Any] = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "Degraded"), {}
        )
        if old.get("phase") == "Failed" and degraded.get("message") == message:
            return
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "Degraded",
            "status": "True",
            "reason": "InvalidSpec",
            "message": message,
            "lastTransitionTime": now,
            "observedGeneration": meta.get("generation"),
        }
        COUNTERS.status_writes += 1
        await self.kube.patch(
            DEVSERVERS,
            name,
            {"status": {
                "phase": "Failed",
                "message": message,
                "observedGeneration": meta.get("generation"),
                "conditions": [condition],
            }},
            namespace=namespace,
            subresource="status",
        )
        log.warning("DevServer %s/%s: InvalidSpec: %s", namespace, name, message)

    async def _event(self, devserver: DevServer, event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event about the DevServer (``kubectl describe``, ``devctl describe``); best effort."""
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = devserver.namespace or ""
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{devserver.name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": DEVSERVER_KIND,
                "name": devserver.name,
                "namespace": namespace,
                "uid": devserver.metadata.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log.log(
            logging.WARNING if event_type == "Warning" else logging.INFO,
            "DevServer %s/%s: %s: %s",
            namespace,
            devserver.name,
            reason,
            message,
        )
        try:
            await self.kube.create(EVENTS, event, namespace=namespace)
        except DevServerError as exc:
            log.warning(
                "Could not record the %s Event of DevServer %s/%s: %s", reason, namespace, devserver.name, exc
            )


def progress_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether status ``new`` only reports progress over ``old`` on the way to Running.

    Such a write waits until the last one is ``PROGRESS_WRITE_INTERVAL`` old: a create moves through
    several such steps (the pods are created, scheduled, their containers start) within seconds, and
    writing each one cost a request, a watch event for every watcher and one more reconcile, for
    statuses that are gone before anyone reads them. Never held back: the first status, any phase outside Pending and
    Starting (Running, Failed, Stopped...), a new generation, a change of expiry, activity or stop
    reason, and any change of the Degraded, Idle or ExpiringSoon conditions. The pods' start moving the
    last activity is not news on the way up: it is the progress itself, and the Running status carries it.
    """
    if old.get("phase") not in _PROGRESS_PHASES or new.get("phase") not in _PROGRESS_PHASES:
        return False
    started = new.get("lastActivitySource") == "start"
    if any(
        old.get(key) != new.get(key)
        for key in _NEWS_FIELDS
        if not (started and key == "lastActivityTime")
    ):
        return False

    def news(status: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {
            c.get("type"): (c.get("status"), c.get("reason"))
            for c in status.get("conditions") or []
            if c.get("type") in ("Degraded", "Idle", "ExpiringSoon")
        }

    return news(old) == news(new)


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``a`` is a later version of the object than ``b``.

    resourceVersions are opaque by contract, but every apiserver (etcd revisions) and the local cluster
    issue increasing integers; anything else compares as "not newer", and the cache is used as it is.
    """
    try:
        return int(_meta(a).get("resourceVersion") or 0) > int(_meta(b).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return False


def _rank_failure(outcome: RankCheckpoint, timeout: int) -> str:
    if outcome.timed_out:
        how = f"timed out after {timeout}s"
    elif outcome.exit_code is not None:
        how = f"exited {outcome.exit_code}"
    else:
        how = "could not run"
    lines = outcome.output_tail.strip().splitlines()
    return f"rank {outcome.rank} {how}: {lines[-1] if lines else 'no output'}"


def _rfc3339(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else "an unknown time"


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _generation(obj: Mapping[str, Any]) -> int | None:
    generation = _meta(obj).get("generation")
    return generation if isinstance(generation, int) else None


def _not_newer(live: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """Whether the cached ``live`` is at most as new as what was written (by spec generation)."""
    live_generation, written_generation = _generation(live), _generation(written)
    if live_generation is None or written_generation is None:
        return True  # no generations (Services): trust what was written
    return live_generation <= written_generation


def _running_pods(pods: Sequence[Mapping[str, Any]]) -> int:
    """Pods whose containers run (phase Running) and are not being deleted: what the cost counts."""
    return sum(
        1
        for pod in pods
        if (pod.get("status") or {}).get("phase") == "Running" and not _meta(pod).get("deletionTimestamp")
    )


def _orphaned(pod: Mapping[str, Any]) -> bool:
    meta = _meta(pod)
    owners = meta.get("ownerReferences") or []
    return not meta.get("deletionTimestamp") and not any(owner.get("controller") for owner in owners)


def _pod_news(pod: Mapping[str, Any]) -> bool:
    """Whether a pod event may change more than the progress of a start: the pod is ready, being deleted,
    orphaned, finished, refused by the scheduler, or a container waits for another reason than being
    created, has ended or has restarted (the causes of Degraded)."""
    meta, status = _meta(pod), pod.get("status") or {}
    if meta.get("deletionTimestamp") or _orphaned(pod) or status.get("phase") in ("Succeeded", "Failed"):
        return True
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return True
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return True
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = container.get("state") or {}
        waiting = state.get("waiting")
        if waiting is not None and waiting.get("reason") not in _PROGRESS_WAITING:
            return True
        if state.get("terminated") or container.get("restartCount") or container.get("lastState"):
            return True
    return False


def _pod_unschedulable(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in conditions
    )


def _resource_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the models read (the API adds none at the top level, but a cache entry may hold more)."""
    return {key: body[key] for key in ("apiVersion", "kind", "metadata", "spec", "status") if key in body}


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
