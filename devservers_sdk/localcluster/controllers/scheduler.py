"""The default scheduler, reduced to what a cluster of one (or a few) local nodes needs.

Tests observe the scheduler through three things, and those mirror kube-scheduler:

* *which* pods bind: the Filter plugins that matter without real machines: NodeUnschedulable,
  TaintToleration (NoSchedule/NoExecute taints), NodeAffinity (``nodeSelector`` and required node
  affinity), NodePorts (host ports), NodeResourcesFit (cpu in millicores, memory, extended resources such
  as ``nvidia.com/gpu`` and the pod count, with the effective request ``max(sum(containers),
  max(initContainers))``) and VolumeBinding for claims that do not exist or are unbound with
  ``Immediate`` binding;
* *the words* of a failure: the PodScheduled=False/Unschedulable condition and FailedScheduling event
  carry the real message, e.g. ``0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1
  nodes are available: 1 No preemption victims found for incoming pod.``;
* *when* it retries: an unschedulable pod is retried when something that could make it fit changes (a
  pod is deleted or finishes, a node, a claim or a volume changes), never in a busy loop.

Not mirrored: scoring (with one node there is nothing to rank), preemption (it is always reported as
finding no victims), pod (anti-)affinity and topology spread, which are ignored, and pod overhead.
Terminal pods (Succeeded/Failed) do not hold resources, as the real scheduler's informer excludes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..apiserver.errors import StatusError

if TYPE_CHECKING:
    from ..apiserver.api import ClusterAPI
    from ..apiserver.resources import ResourceType

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"

# -- quantities ----------------------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(value: str | int | float) -> Fraction:
    """A Kubernetes ``resource.Quantity`` as an exact number (``"500m"`` -> 1/2, ``"1Gi"`` -> 2**30).

    Accepts the serialisations the apiserver accepts: binary SI suffixes, decimal SI suffixes and decimal
    exponents (``"1e3"``). Raises ValueError otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    text = value.strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    sign, number, exponent, suffix = match.groups()
    amount = Fraction(number)
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    elif suffix in _BINARY:
        amount *= _BINARY[suffix]
    else:
        amount *= _DECIMAL[suffix or ""]
    return -amount if sign == "-" else amount


def milli_value(value: str | int | float) -> int:
    """Rounded up to whole thousandths, as ``Quantity.MilliValue`` (cpu is accounted in millicores)."""
    return math.ceil(parse_quantity(value) * 1000)


def int_value(value: str | int | float) -> int:
    """Rounded up to a whole number, as ``Quantity.Value`` (memory and everything but cpu)."""
    return math.ceil(parse_quantity(value))


@functools.lru_cache(maxsize=4096)
def resource_amount(resource: str, value: str | int | float) -> int:
    """The integer the scheduler compares: millicores for cpu, whole units for everything else.

    Cached: every placement sums the requests of every pod on the node, and a cluster has few distinct
    quantities ("10m", "16Mi") but parsing one goes through Fractions.
    """
    return milli_value(value) if resource == "cpu" else int_value(value)


def pod_requests(spec: dict[str, Any]) -> dict[str, int]:
    """Effective requests: max(sum over containers, each init container), per resource.

    A request missing but a limit given counts the limit (the apiserver defaults requests from limits).
    Sidecar init containers (``restartPolicy: Always``) keep running, so they add to the sum instead.
    """

    def requests_of(container: dict[str, Any]) -> dict[str, int]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        result = {}
        for name, value in merged.items():
            try:
                result[name] = resource_amount(name, value)
            except ValueError:
                continue
        return result

    total: dict[str, int] = collections.Counter()
    sidecars: dict[str, int] = collections.Counter()
    for container in spec.get("containers") or []:
        total.update(requests_of(container))
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        reqs = requests_of(container)
        if container.get("restartPolicy") == "Always":
            sidecars.update(reqs)
            continue
        for name, amount in reqs.items():
            # An init container runs alongside the sidecars started before it.
            init_peak[name] = max(init_peak.get(name, 0), amount + sidecars.get(name, 0))
    total.update(sidecars)
    result = dict(total)
    for name, amount in init_peak.items():
        result[name] = max(result.get(name, 0), amount)
    return {k: v for k, v in result.items() if v}


_REQUESTS_BY_VERSION: dict[tuple[str, str], dict[str, int]] = {}


def _stored_pod_requests(pod: dict[str, Any]) -> dict[str, int]:
    """``pod_requests`` of a stored pod, remembered per (uid, resourceVersion).

    Every placement weighs every pod already on the node, so without this a burst of N pods costs N^2
    request computations; a stored version never changes, so its requests don't either.
    """
    meta = pod.get("metadata", {})
    key = (meta.get("uid", ""), meta.get("resourceVersion", ""))
    if not all(key):
        return pod_requests(pod.get("spec", {}))
    cached = _REQUESTS_BY_VERSION.get(key)
    if cached is None:
        if len(_REQUESTS_BY_VERSION) >= 20_000:
            _REQUESTS_BY_VERSION.clear()
        cached = _REQUESTS_BY_VERSION[key] = pod_requests(pod.get("spec", {}))
    return cached


# -- filters -------------------------------------------------------------------------------------------


def tolerates(tolerations: Iterable[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expression(expr: dict[str, Any], value: str | None) -> bool:
    operator = expr.get("operator")
    values = expr.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            mine, theirs = int(value), int(values[0])
        except ValueError:
            return False
        return mine > theirs if operator == "Gt" else mine < theirs
    return False


def node_selector_term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    for expr in expressions:
        if not _match_expression(expr, labels.get(expr.get("key", ""))):
            return False
    for expr in fields:
        value = node["metadata"]["name"] if expr.get("key") == "metadata.name" else None
        if not _match_expression(expr, value):
            return False
    return True


def matches_node_affinity(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        terms = required.get("nodeSelectorTerms") or []
        if not any(node_selector_term_matches(term, node) for term in terms):
            return False
    return True


def _host_ports(spec: dict[str, Any]) -> set[tuple[str, str, int]]:
    ports = set()
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                ports.add(
                    (port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP", int(port["hostPort"]))
                )
    return ports


def _ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, proto, port in wanted:
        for used_ip, used_proto, used_port in used:
            if port == used_port and proto == used_proto and (ip == used_ip or "0.0.0.0" in (ip, used_ip)):
                return True
    return False


def _terminal(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class NodeVerdict:
    """Why one node cannot take the pod; ``resolvable`` says whether evicting pods could help."""

    reasons: list[str] = field(default_factory=list)
    resolvable: bool = True

    @property
    def fits(self) -> bool:
        return not self.reasons


def filter_node(
    pod: dict[str, Any], node: dict[str, Any], pods_on_node: Iterable[dict[str, Any]]
) -> NodeVerdict:
    """Run the filter plugins, in the real scheduler's order, stopping at the first that rejects."""
    spec = pod.get("spec", {})
    node_spec = node.get("spec", {})
    tolerations = spec.get("tolerations") or []
    if node_spec.get("unschedulable"):
        taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        if not tolerates(tolerations, taint):
            return NodeVerdict(["node(s) were unschedulable"], resolvable=False)
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, taint):
            return NodeVerdict(
                [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"],
                resolvable=False,
            )
    if not matches_node_affinity(spec, node):
        return NodeVerdict(["node(s) didn't match Pod's node affinity/selector"], resolvable=False)
    others = [
        p for p in pods_on_node if not _terminal(p) and p["metadata"].get("uid") != pod["metadata"].get("uid")
    ]
    wanted_ports = _host_ports(spec)
    if wanted_ports:
        used: set[tuple[str, str, int]] = set()
        for other in others:
            used |= _host_ports(other.get("spec", {}))
        if _ports_conflict(wanted_ports, used):
            return NodeVerdict(["node(s) didn't have free ports for the requested pod ports"])
    allocatable = node.get("status", {}).get("allocatable") or {}
    reasons = []
    pod_limit = allocatable.get("pods")
    if pod_limit is not None and len(others) + 1 > int_value(pod_limit):
        reasons.append("Too many pods")
    requested = pod_requests(spec)
    used_amounts: dict[str, int] = collections.Counter()
    for other in others:
        used_amounts.update(_stored_pod_requests(other))
    for name in sorted(requested):
        if name == "pods":
            continue
        available = resource_amount(name, allocatable[name]) if name in allocatable else 0
        if requested[name] + used_amounts.get(name, 0) > available:
            reasons.append(f"Insufficient {name}")
    return NodeVerdict(reasons)


def unschedulable_message(verdicts: list[NodeVerdict], *, pre_reasons: Iterable[str] = ()) -> str:
    """The FailedScheduling message, worded and ordered like kube-scheduler's FitError.

    ``pre_reasons`` are pod-level failures found before any node is tried (missing or unbound claims).
    """
    total = len(verdicts)
    if not total:
        return "no nodes available to schedule pods"
    pre = list(pre_reasons)
    if pre:
        return (
            f"0/{total} nodes are available: {', '.join(pre)}. preemption: 0/{total} nodes are available: "
            f"{total} Preemption is not helpful for scheduling."
        )
    counts: dict[str, int] = collections.Counter()
    for verdict in verdicts:
        for reason in verdict.reasons:
            counts[reason] += 1
    parts = sorted(f"{count} {reason}" for reason, count in counts.items())
    helpful = sum(1 for v in verdicts if v.resolvable)
    preemption = []
    if helpful:
        preemption.append(f"{helpful} No preemption victims found for incoming pod")
    if total - helpful:
        preemption.append(f"{total - helpful} Preemption is not helpful for scheduling")
    return (
        f"0/{total} nodes are available: {', '.join(parts)}. "
        f"preemption: 0/{total} nodes are available: {', '.join(sorted(preemption))}."
    )


@dataclass
class Decision:
    node: str | None
    message: str = ""


def claim_problems(
    pod: dict[str, Any], claims: dict[str, dict[str, Any]], binding_modes: dict[str, str]
) -> list[str]:
    """VolumeBinding's pod-level failures: claims that do not exist, or unbound with Immediate binding.

    ``claims`` maps claim name -> PVC in the pod's namespace; ``binding_modes`` maps storage class name to
    its volumeBindingMode. WaitForFirstConsumer claims are not a failure: binding waits for the pod.
    """
    problems = []
    unbound_immediate = False
    for volume in pod.get("spec", {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim")
        if not source:
            continue
        name = source.get("claimName", "")
        claim = claims.get(name)
        if claim is None:
            problems.append(f'persistentvolumeclaim "{name}" not found')
            continue
        if claim.get("metadata", {}).get("deletionTimestamp"):
            problems.append(f'persistentvolumeclaim "{name}" is being deleted')
            continue
        if claim.get("status", {}).get("phase") == "Bound" or claim.get("spec", {}).get("volumeName"):
            continue
        mode = binding_modes.get(claim.get("spec", {}).get("storageClassName") or "", "Immediate")
        if mode != "WaitForFirstConsumer":
            unbound_immediate = True
    if unbound_immediate:
        problems.append("pod has unbound immediate PersistentVolumeClaims")
    return problems


def schedule(
    pod: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    *,
    pre_reasons: Iterable[str] = (),
) -> Decision:
    """Pick a node for ``pod`` among ``nodes``, given all ``pods`` (bound ones count on their node).

    Pure: the caller fetches objects and applies the outcome. Feasible nodes are ranked by free cpu (a
    stand-in for LeastAllocated scoring), then by name.
    """
    pre = list(pre_reasons)
    if pre:
        return Decision(None, unschedulable_message([NodeVerdict() for _ in nodes], pre_reasons=pre))
    by_node: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for other in pods:
        node_name = other.get("spec", {}).get("nodeName")
        if node_name:
            by_node[node_name].append(other)
    verdicts = []
    feasible = []
    for node in nodes:
        name = node["metadata"]["name"]
        verdict = filter_node(pod, node, by_node.get(name, []))
        verdicts.append(verdict)
        if verdict.fits:
            allocatable = node.get("status", {}).get("allocatable") or {}
            free = milli_value(allocatable.get("cpu", "0")) - sum(
                _stored_pod_requests(p).get("cpu", 0)
                for p in by_node.get(name, [])
                if not _terminal(p)
            )
            feasible.append((-free, name))
    if feasible:
        return Decision(sorted(feasible)[0][1])
    return Decision(None, unschedulable_message(verdicts))


# -- the loop ------------------------------------------------------------------------------------------


EventSink = Callable[..., None]


class Scheduler:
    """Binds pending pods whose ``schedulerName`` is ``default-scheduler``, one at a time, in FIFO order.

    Woken by store events: a new or changed pending pod is queued; pods that did not fit wait in an
    "unschedulable" set until an event that may free room or change the answer (a pod deleted or
    finished, any Node, PVC, PV or StorageClass change) moves them back to the queue.
    """

    def __init__(self, api: ClusterAPI, *, record_event: EventSink | None = None) -> None:
        self.api = api
        self._record_event = record_event
        self._pods_rt = self._rt("pods")
        self._queue: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._unschedulable: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False

    def _rt(self, plural: str, group: str = "") -> ResourceType:
        rt = self.api.registry.get(group, "v1", plural)
        if rt is None:
            raise StatusError(404, "NotFound", f"the server could not find the requested resource ({plural})")
        return rt

    async def start(self) -> None:
        if not self._subscribed:
            self.api.store.on_event(self._on_event)
            self._subscribed = True
        for pod in self.api.list(self._pods_rt)["items"]:
            if self._wants(pod):
                self._queue[_key(pod)] = None
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="localcluster-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @staticmethod
    def _wants(pod: dict[str, Any]) -> bool:
        spec = pod.get("spec", {})
        return (
            not spec.get("nodeName")
            and not pod["metadata"].get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not _terminal(pod)
        )

    def _on_event(self, event: Any) -> None:
        group, resource = event.group_resource
        if (group, resource) == ("", "pods"):
            pod = event.obj
            key = _key(pod)
            if event.type == "DELETED":
                self._queue.pop(key, None)
                self._unschedulable.discard(key)
                if pod.get("spec", {}).get("nodeName"):
                    self._retry_unschedulable()
                return
            if self._wants(pod):
                # Our own status write on an unschedulable pod must not requeue it (that would spin).
                if key not in self._unschedulable or _spec_changed(event):
                    self._unschedulable.discard(key)
                    self._queue[key] = None
                    self._wake.set()
            else:
                self._queue.pop(key, None)
                self._unschedulable.discard(key)
                old = event.old or {}
                if _terminal(pod) and not _terminal(old) and pod.get("spec", {}).get("nodeName"):
                    self._retry_unschedulable()
        elif (group, resource) in (
            ("", "nodes"),
            ("", "persistentvolumeclaims"),
            ("", "persistentvolumes"),
            ("storage.k8s.io", "storageclasses"),
        ):
            if (
                (group, resource) == ("", "nodes")
                and event.old is not None
                and event.type == "MODIFIED"
                and _node_unchanged_for_scheduling(event.old, event.obj)
            ):
                return
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        if self._unschedulable:
            for key in sorted(self._unschedulable):
                self._queue[key] = None
            self._unschedulable.clear()
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                key, _ = self._queue.popitem(last=False)
                try:
                    self._schedule_one(*key)
                except Exception:
                    log.exception("scheduling %s/%s failed", *key)
                # Yield between pods so a burst of pending pods does not starve the server.
                await asyncio.sleep(0)

    def _schedule_one(self, namespace: str, name: str) -> None:
        try:
            pod = self.api.get(self._pods_rt, namespace, name)
        except StatusError:
            return
        if not self._wants(pod):
            return
        nodes_rt = self._rt("nodes")
        nodes = [n for n in self.api.list(nodes_rt)["items"] if _node_ready(n)]
        pods = self.api.list(self._pods_rt)["items"]
        pre = self._claim_problems(pod)
        decision = schedule(pod, nodes, pods, pre_reasons=pre)
        if decision.node is None:
            self._unschedulable.add((namespace, name))
            self._mark_unschedulable(pod, decision.message)
            return
        self._annotate_claims(pod, decision.node)
        spec = {**pod["spec"], "nodeName": decision.node}
        try:
            bound = self.api.update(self._pods_rt, namespace, name, {**pod, "spec": spec})
        except StatusError as exc:
            if exc.code == 409:
                self._queue[(namespace, name)] = None
                self._wake.set()
            return
        self._set_condition(bound, {"type": "PodScheduled", "status": "True"})
        self._event(
            bound, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {decision.node}"
        )

    def _claim_problems(self, pod: dict[str, Any]) -> list[str]:
        volumes = [v for v in pod.get("spec", {}).get("volumes") or [] if v.get("persistentVolumeClaim")]
        if not volumes:
            return []
        namespace = pod["metadata"]["namespace"]
        pvc_rt = self._rt("persistentvolumeclaims")
        sc_rt = self._rt("storageclasses", "storage.k8s.io")
        claims = {c["metadata"]["name"]: c for c in self.api.list(pvc_rt, namespace)["items"]}
        modes = {
            sc["metadata"]["name"]: sc.get("volumeBindingMode", "Immediate")
            for sc in self.api.list(sc_rt)["items"]
        }
        return claim_problems(pod, claims, modes)

    def _annotate_claims(self, pod: dict[str, Any], node: str) -> None:
        """WaitForFirstConsumer claims learn the chosen node, which is what provisioners wait for."""
        pvc_rt = self._rt("persistentvolumeclaims")
        namespace = pod["metadata"]["namespace"]
        for volume in pod.get("spec", {}).get("volumes") or []:
            source = volume.get("persistentVolumeClaim")
            if not source:
                continue
            try:
                claim = self.api.get(pvc_rt, namespace, source.get("claimName", ""))
            except StatusError:
                continue
            if claim.get("status", {}).get("phase") == "Bound" or claim.get("spec", {}).get("volumeName"):
                continue
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get("volume.kubernetes.io/selected-node") == node:
                continue
            with contextlib.suppress(StatusError):
                self.api.patch(
                    pvc_rt,
                    namespace,
                    claim["metadata"]["name"],
                    "merge",
                    {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}},
                )

    def _mark_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        self._set_condition(
            pod, {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        )
        # Every failed attempt is reported, as the real scheduler does; the event recorder aggregates
        # repeats into one Event with a count.
        self._event(pod, "Warning", "FailedScheduling", message)

    def _set_condition(self, pod: dict[str, Any], condition: dict[str, Any]) -> None:
        from ..apiserver.api import now_rfc3339

        status = pod.get("status", {})
        conditions = [dict(c) for c in status.get("conditions") or []]
        existing = next((c for c in conditions if c.get("type") == condition["type"]), None)
        new = {**condition, "lastProbeTime": None}
        if existing is not None and existing.get("status") == condition["status"]:
            new["lastTransitionTime"] = existing.get("lastTransitionTime") or now_rfc3339()
        else:
            new["lastTransitionTime"] = now_rfc3339()
        conditions = [c for c in conditions if c.get("type") != condition["type"]] + [new]
        patch: dict[str, Any] = {"status": {"conditions": conditions}}
        if not status.get("phase"):
            patch["status"]["phase"] = "Pending"
        with contextlib.suppress(StatusError):
            self.api.patch(
                self._pods_rt,
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                "merge",
                patch,
                subresource="status",
            )

    def _event(self, pod: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if self._record_event is not None:
            self._record_event(pod, type_, reason, message, component=SCHEDULER_NAME)


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _spec_changed(event: Any) -> bool:
    old = event.old or {}
    return old.get("spec") != event.obj.get("spec") or old.get("metadata", {}).get("labels") != event.obj.get(
        "metadata", {}
    ).get("labels")


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True"


def _node_unchanged_for_scheduling(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Heartbeats only touch timestamps; they must not requeue every unschedulable pod."""

    def essence(node: dict[str, Any]) -> Any:
        status = node.get("status", {})
        conditions = [(c.get("type"), c.get("status")) for c in status.get("conditions") or []]
        return (
            node.get("spec"),
            node.get("metadata", {}).get("labels"),
            status.get("allocatable"),
            conditions,
        )

    return essence(old) == essence(new)
