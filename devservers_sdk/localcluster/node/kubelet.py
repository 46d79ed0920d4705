"""A kubelet whose containers are local processes: the node, pod lifecycle, probes, logs and volumes.

It is a client of the API server like any kubelet, over HTTPS only (``apiclient.py``), authenticated as
``system:node:<name>``, so it works the same against our emulator and a real kube-apiserver, and can do only
what the Node authorizer and NodeRestriction admit: it watches the pods bound to it (``spec.nodeName``
selector), reads each ConfigMap and Secret its pods use through a watch on that one object, reads claims and
volumes by name, and writes ``pods/status``, ``nodes/status``, its Lease and Events. The hosts file (below),
our stand-in for cluster DNS, needs every pod and Service: with ``names_client`` it reads them with
credentials of their own, as CoreDNS would.

What clients observe of a real kubelet, and what is mirrored here:

* **The Node.** One Node object with the usual labels, capacity/allocatable (host cpu and memory, 110
  pods, plus extended resources given to the constructor, e.g. ``nvidia.com/gpu``), a Ready condition,
  addresses, nodeInfo and the kubelet API's port in ``daemonEndpoints``; its Lease in ``kube-node-lease``
  is renewed every 10 s. A deleted Node is registered again. ``status.declaredFeatures``
  (NodeDeclaredFeatures, GA in 1.37) lists what this node implements of the features a 1.37 kubelet may
  declare (``DECLARABLE_FEATURES``): by default ``ExtendWebSocketsToKubelet``, so the API server passes
  v5 WebSocket exec/attach and tunnelled port-forward straight to the kubelet API instead of translating
  them into SPDY. A real 1.37 kubelet with default gates also declares
  ``InPlacePodLevelResourcesVerticalScaling``, ``InPlacePodVerticalScalingInitContainers`` and
  ``RestartAllContainersOnContainerExits``; this one implements none of them, so it does not claim them
  (the scheduler and the ``NodeDeclaredFeatureValidator`` admission plugin keep pods needing them away).
* **Pod status**, written through ``pods/status`` exactly when the real kubelet would change it: phase,
  the five conditions with ``lastTransitionTime``, hostIP, podIP(s), startTime, qosClass and container
  statuses (``local://`` container IDs, states waiting/running/terminated, ``lastState``, restartCount,
  ready, started). Main container statuses are sorted by name, init containers keep spec order.
* **Lifecycle.** Volumes are set up first (a pod bound to the node by ``spec.nodeName`` whose claim is
  unbound, or whose ConfigMap/Secret volume is missing, stays ContainerCreating with ``FailedMount``
  events; through the scheduler, an unbound ``Immediate`` claim already keeps it unscheduled); init
  containers run in order (sidecars, i.e. init containers with ``restartPolicy: Always``, are started and
  kept running); then all containers start. ``restartPolicy`` Always/OnFailure/Never with
  CrashLoopBackOff; a changed ``image`` restarts the container. **Deliberately faster than real:** the
  restart and image-pull back-offs start at 1 s and cap at 30 s (real: 10 s and 5 min); as in the real
  kubelet the first restart is immediate and the back-off resets after a container ran for twice the cap.
  ``activeDeadlineSeconds`` fails the pod with reason DeadlineExceeded.
* **Images.** There are no images. Every image "pulls" successfully (Pulling/Pulled events, an imageID
  derived from the name) except those whose registry host ends with ``.invalid`` (RFC 2606 reserves the
  TLD), which fail with ErrImagePull then ImagePullBackOff, with the real events: that is how tests
  provoke pull errors. The image's entrypoint is unknown, so a container runs ``command + args``; a
  container with only ``args`` runs those; one with neither idles until stopped.
* **Processes** (see ``sandbox.py`` for containment, mounts and names): the environment is built as the
  kubelet builds it (``env`` with ``$(VAR)`` expansion and fieldRef/resourceFieldRef/configMapKeyRef/
  secretKeyRef, ``envFrom`` with prefixes, service links, ``KUBERNETES_SERVICE_HOST/PORT`` pointing at this
  API server, ``HOSTNAME``); PATH and HOME come from the cluster process, as an image would provide them.
  stdout/stderr go to CRI-format log files, one per run (``<restartCount>.log``; the previous run is kept
  for ``previous=true``).
* **Probes**: exec (run inside the container's namespaces), httpGet and tcpSocket against the pod IP,
  with initialDelaySeconds/periodSeconds/timeoutSeconds/success- and failureThreshold; startup, readiness
  and liveness semantics; ``Unhealthy`` events. gRPC probes only check that the port accepts connections.
* **Deletion**: a graceful delete runs preStop, sends SIGTERM to the main process, waits for the grace
  period, then SIGKILLs everything in the container and finishes the deletion with grace period 0.
  Processes started by ``kubectl exec`` are tracked and killed with the pod.
* **Events** are core/v1 Events with ``source.component`` kubelet, aggregated into ``count`` as the
  client-go recorder does.

Not mirrored: resource limits are not enforced (no cgroups), no OOMKilled, no network namespaces (a
``hostNetwork`` pod gets the node's address, others a loopback address of their own, but all share the
host's ports), no PID namespace (``ps`` shows the host; the container's main process is not PID 1, so
it dies of SIGTERM where a real PID 1 without a handler would ignore it), no image GC, no ephemeral
containers, ``attach`` streams a container's output (from its log) but gives it no stdin,
``terminationMessagePath`` is not read (``FallbackToLogsOnError`` is).
Projected service-account tokens come from the TokenRequest API, bound to the pod, so a pod's in-cluster
config works (on either control plane); only an API server without TokenRequest gets a placeholder.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime
import functools
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..apiserver import errors
from ..apiserver.errors import StatusError
from ..apiserver.strategies import qos_class
from ..apiserver.tables import parse_time
from ..controllers.scheduler import parse_quantity
from . import sandbox
from .apiclient import ApiClient, Informer, object_path
from .events import NodeEventRecorder, now
from .fake_gpus import GPU_RESOURCE, FakeGpus

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# The real kubelet shows ErrImagePull until its next sync, then ImagePullBackOff.
ERR_IMAGE_PULL_SECONDS = 0.5
LEASE_DURATION = 40
LEASE_RENEW_SECONDS = 10.0
NODE_STATUS_SECONDS = 300.0
# Grace period used for every container when the whole cluster shuts down.
SHUTDOWN_GRACE = 2.0
# How long a stop waits for a pod's lifecycle to end before cancelling it again (see PodWorker._cancel_life).
CANCEL_RETRY_SECONDS = 1.0
HOST_IP = "127.0.0.1"
# A pod's first reads of its claims, volumes, ConfigMaps and Secrets can be refused (403) for a moment: the Node
# authorizer admits them only once its graph, fed by the API server's own pod informer, has seen the pod bound
# here, and this node may see the pod first. The refusal is retried at once and then quickly (the real kubelet's
# volume populator loops every 100 ms), and said in a FailedMount Event only if it outlasts the grace.
REFUSED_RETRY_FIRST = 0.1
REFUSED_RETRY_MAX = 2.0
REFUSED_GRACE_SECONDS = 5.0
LOCAL_CLUSTER_LABEL = "devservers.io/local-cluster"
"""On every Node of the local cluster: how front ends know their hints (``--gpus N``) apply."""
# A pod still here this long after its deletionTimestamp (which already counts its grace period) gets a WARNING in
# the node's log saying where its stop is: a pod left Terminating is all a user sees, and only the node knows why.
DELETION_OVERDUE_SECONDS = 30.0
DELETION_WATCHDOG_SECONDS = 10.0
# k8s.io/component-helpers/nodedeclaredfeatures/features: every feature a 1.37 kubelet can declare.
DECLARABLE_FEATURES = (
    "DRANodeAllocatableResources",
    "DRAOptionalNodeOperations",
    "ExtendWebSocketsToKubelet",
    "InPlacePodLevelResourcesVerticalScaling",
    "InPlacePodVerticalScalingInitContainers",
    "InPlacePodVerticalScalingMemoryBackedVolumes",
    "RestartAllContainersOnContainerExits",
    "UserNamespacesHostNetworkSupport",
    "VolumeBindMountOptions",
)
# What this node implements of them (its kubelet API serves v5 WebSockets and tunnelled port-forward).
DEFAULT_DECLARED_FEATURES = ("ExtendWebSocketsToKubelet",)
RUNTIME_VERSION = "local://1.0.0"
MAX_LOG_LINE = 16 * 1024  # containerd splits longer lines into partial (P) records
CLUSTER_DOMAIN = "cluster.local"


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cri_timestamp() -> bytes:
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    return f"{base}.{ns % 1_000_000_000:09d}Z".encode()


@dataclass(frozen=True)
class LaunchSpec:
    """How to start a process inside a running container (for ``kubectl exec``).

    Run ``argv_prefix + command`` with exactly ``env`` and working directory ``cwd``. In the namespace
    modes the prefix enters the container's mount/UTS namespaces and root and then changes to the
    container's working directory itself, so ``cwd`` is just ``/``.
    """

    argv_prefix: list[str]
    env: dict[str, str]
    cwd: str
    pod_uid: str


# -- pure helpers: images, env, quantities ------------------------------------------------------------


def normalize_image(image: str) -> tuple[str, str, str]:
    """(registry host, repository path, tag-or-digest reference) as containerd normalises ``image``."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", name
    if host == "docker.io" and "/" not in path:
        path = f"library/{path}"
    tag = ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if digest:
        return host, path, f"@{digest}"
    return host, path, f":{tag or 'latest'}"


def image_pull_error(image: str) -> str | None:
    """Why pulling ``image`` fails, in containerd's words, or None: only ``*.invalid`` registries fail."""
    host, path, ref = normalize_image(image)
    if not host.split(":")[0].endswith(".invalid"):
        return None
    full = f"{host}/{path}{ref}"
    reference = ref[1:]
    return (
        f'failed to pull and unpack image "{full}": failed to resolve reference "{full}": failed to do '
        f'request: Head "https://{host}/v2/{path}/manifests/{reference}": dial tcp: lookup '
        f"{host.split(':')[0]}: no such host"
    )


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay verbatim and ``$$`` escapes ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    out.append(text[i:])
                    break
                value = lookup(text[i + 2 : end])
                out.append(value if value is not None else text[i : end + 1])
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _format_map(values: dict[str, str]) -> str:
    """Labels/annotations as the downward API renders them: sorted ``key="value"`` lines."""
    return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))


def field_ref_value(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    if path.startswith("metadata.labels['") and path.endswith("']"):
        return (meta.get("labels") or {}).get(path[len("metadata.labels['") : -2], "")
    if path.startswith("metadata.annotations['") and path.endswith("']"):
        return (meta.get("annotations") or {}).get(path[len("metadata.annotations['") : -2], "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(a.get("ip", "") for a in status.get("hostIPs") or []),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(a.get("ip", "") for a in status.get("podIPs") or []),
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return _format_map(meta.get("labels") or {})
    if path == "metadata.annotations":
        return _format_map(meta.get("annotations") or {})
    raise ValueError(f"unsupported fieldPath: {path}")


def resource_field_value(
    pod: dict[str, Any], container_name: str, ref: dict[str, Any], allocatable: dict[str, str]
) -> str:
    """``resourceFieldRef``: the container's limit (node allocatable when unset) or request, over divisor."""
    name = ref.get("containerName") or container_name
    containers = (pod.get("spec", {}).get("containers") or []) + (
        pod.get("spec", {}).get("initContainers") or []
    )
    container: dict[str, Any] = next((c for c in containers if c.get("name") == name), {})
    kind, _, resource = (ref.get("resource") or "").partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None:
        value = allocatable.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1") or parse_quantity("1")
    return str(math.ceil(parse_quantity(value) / divisor))


class ConfigError(Exception):
    """What the real kubelet reports as CreateContainerConfigError."""


def _decode_secret(obj: dict[str, Any]) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("stringData") or {}).items():
        data[k] = v.encode()
    return data


def _configmap_data(obj: dict[str, Any]) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v)
    return data


def _service_env(services: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables for Services of the pod's namespace, as ``enableServiceLinks`` adds."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port.get("port"))
        proto = (ports[0].get("protocol") or "TCP").lower()
        env[f"{prefix}_PORT"] = f"{proto}://{ip}:{ports[0].get('port')}"
        for port in ports:
            proto_upper = (port.get("protocol") or "TCP").upper()
            base = f"{prefix}_PORT_{port.get('port')}_{proto_upper}"
            env[base] = f"{proto_upper.lower()}://{ip}:{port.get('port')}"
            env[f"{base}_PROTO"] = proto_upper.lower()
            env[f"{base}_PORT"] = str(port.get("port"))
            env[f"{base}_ADDR"] = ip
    return env


def _kubernetes_env(url: str) -> dict[str, str]:
    """``KUBERNETES_*`` variables pointing at this emulator (the in-cluster config reads them)."""
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]") or rest
    port = port if port.isdigit() else "443"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


class Backoff:
    """client-go's ``flowcontrol.Backoff`` for one key, as the kubelet uses it for restarts and pulls.

    The first failure restarts at once and arms the back-off; each later failure waits the current delay
    and doubles it, up to the cap. A key not touched for twice the cap starts over.
    """

    def __init__(self, initial: float = INITIAL_BACKOFF, cap: float = MAX_BACKOFF) -> None:
        self.initial = initial
        self.cap = cap
        self.delay = 0.0
        self._last = 0.0

    def next_delay(self, at: float | None = None) -> float:
        at = time.monotonic() if at is None else at
        if self.delay and at - self._last > 2 * self.cap:
            self.delay = 0.0
        if not self.delay:
            self.delay = self.initial
            self._last = at
            return 0.0
        wait = self.delay
        self.delay = min(self.delay * 2, self.cap)
        self._last = at + wait
        return wait

    @property
    def current(self) -> float:
        return self.delay


def _seconds(value: float) -> str:
    """Go's ``time.Duration.String()`` for whole-second back-offs: ``10s``, ``1m20s``, ``5m0s``."""
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60}s"


# -- events -------------------------------------------------------------------------------------------


# -- containers ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class ContainerRuntime:
    """The kubelet's record of one container of a pod, across restarts."""

    spec: dict[str, Any]
    kind: str  # "init", "sidecar" or "regular"
    restart_count: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    ever_started: bool = False
    container_id: str = ""
    image_id: str = ""
    process: asyncio.subprocess.Process | None = None
    shim_pid: int = 0
    mount_ns: str | None = None
    # Holds the run's mount namespace open until the run is over: a namespace no process holds is freed, and
    # the kernel gives its inode number (all that ``mount_ns`` names) to the next namespace made, another
    # pod's container, which a sweep by that name would then kill.
    mount_ns_pin: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int | None = None
    started_at: str = ""
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    probe_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    backoff: Backoff = field(default_factory=Backoff)
    stopping: bool = False
    definition_changed: bool = False
    started_event: asyncio.Event = field(default_factory=asyncio.Event)
    waiter: asyncio.Task[None] | None = None
    logs: dict[str, Path] = field(default_factory=dict)  # containerID -> that run's CRI log

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def field_path(self) -> str:
        return f"spec.{'initContainers' if self.kind != 'regular' else 'containers'}{{{self.name}}}"

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def process_alive(self) -> bool:
        return self.process is not None and not self.exited.is_set()

    def set_state(self, state: dict[str, Any]) -> None:
        """Move to ``state``; a terminated run becomes ``lastState`` as the next one is prepared."""
        if "terminated" in self.state and "terminated" not in state:
            self.last_state = self.state
        self.state = state

    def wait(self, reason: str, message: str | None = None) -> None:
        waiting: dict[str, Any] = {"reason": reason}
        if message:
            waiting["message"] = message
        self.set_state({"waiting": waiting})


@dataclass
class _Mount:
    source: str
    target: str
    read_only: bool


class PodWorker:
    """Owns one pod on this node, from the first sight of it until its deletion is finished."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.paths = sandbox.SandboxPaths.of(kubelet.state_dir, self.namespace, self.name, self.uid)
        spec = pod.get("spec", {})
        self.containers: dict[str, ContainerRuntime] = {}
        for c in spec.get("initContainers") or []:
            kind = "sidecar" if c.get("restartPolicy") == "Always" else "init"
            self.containers[c["name"]] = ContainerRuntime(c, kind)
        for c in spec.get("containers") or []:
            self.containers[c["name"]] = ContainerRuntime(c, "regular")
        has_init = bool(spec.get("initContainers"))
        for c in self.containers.values():
            reason = "PodInitializing" if has_init else "ContainerCreating"
            c.state = {"waiting": {"reason": reason}}
        self.pod_ip: str | None = None
        self.start_time = now()
        self.sandbox_ready = False
        self.initialized = not has_init
        self.final_phase: str | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self.terminating = False
        self.gone = False  # the API object no longer exists
        self.volume_sources: dict[str, str] = {}
        self.volume_refs: set[tuple[str, str]] = set()  # (kind, name) of ConfigMaps/Secrets in volumes
        # The refs of volume reads under way: their watches must outlive another pod's departure (see forget).
        self.volume_refs_being_read: list[set[tuple[str, str]]] = []
        self.volume_wakeup = asyncio.Event()
        # Exec sessions and exec hooks, killed with the pod; finished ones are dropped as new ones come.
        self.exec_groups: set[sandbox.ProcessGroup] = set()
        self._conditions: dict[str, dict[str, Any]] = {}
        self._status_dirty = asyncio.Event()
        self._status_writer: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._grace: float = 0
        self._life: asyncio.Task[None] | None = None
        self._supervisors: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    # -- API-facing ------------------------------------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        return self.pod.get("spec", {})

    def observe(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0))
            return
        if self._conditions_overwritten(pod):
            self.push_status()
        # ``image`` is the one container field a pod update may change: like the kubelet, restart the
        # container with the new definition (whatever the restart policy).
        for spec in (pod.get("spec", {}).get("initContainers") or []) + (
            pod.get("spec", {}).get("containers") or []
        ):
            c = self.containers.get(spec.get("name", ""))
            if c is None or spec.get("image") == c.spec.get("image"):
                continue
            c.spec = {**c.spec, "image": spec.get("image")}
            if c.process_alive and not self.terminating:
                c.definition_changed = True
                self.event(
                    "Normal", "Killing", f"Container {c.name} definition changed, will be restarted", c
                )
                self.detach(self._kill(c, float(self.spec.get("terminationGracePeriodSeconds", 30))))

    def _conditions_overwritten(self, pod: dict[str, Any]) -> bool:
        """Whether someone else changed a condition this node owns: kube-controller-manager marks every pod of an
        unreachable node not Ready, and the kubelet's status manager writes its own view back once the node is
        reachable again. Not doing so left a DevServer's pods unready for good after an API server outage."""
        if self.final_phase or self.terminating or self.gone:
            return False
        theirs = {c.get("type"): c.get("status") for c in pod.get("status", {}).get("conditions") or []}
        return any(theirs.get(kind, mine.get("status")) != mine.get("status")
                   for kind, mine in self._conditions.items())

    def detach(self, coro: Any) -> None:
        """Run ``coro`` on its own, keeping a reference (tasks cancelled by terminate)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def observe_deleted(self) -> None:
        self.gone = True
        self.request_stop(0)

    def request_stop(self, grace: float) -> None:
        if self._stop_requested.is_set():
            self._grace = min(self._grace, grace)
            return
        self._grace = grace
        self._stop_requested.set()

    def where_stopping(self) -> str:
        """Where this pod's stop stands, and where each of its tasks waits (for an overdue deletion's WARNING)."""
        containers = ", ".join(
            f"{c.name} {'alive' if c.process_alive else 'not running'} (shim {c.shim_pid}, state {next(iter(c.state), '?')})"
            for c in self.containers.values()
        )
        tasks = [("pod", self.task), ("lifecycle", self._life), ("status", self._status_writer)]
        tasks += [(f"supervisor {n}", t) for n, t in enumerate(self._supervisors)]
        tasks += [(f"background {n}", t) for n, t in enumerate(self._background)]
        waiting = "; ".join(f"{label}: {_awaiting(task)}" for label, task in tasks if task is not None and not task.done())
        return (
            f"stop requested: {self._stop_requested.is_set()} (grace {self._grace:g}s), terminating: "
            f"{self.terminating}, gone: {self.gone}; containers: {containers or 'none'}; waiting: {waiting or 'nothing'}"
        )

    def event(self, type_: str, reason: str, message: str, container: ContainerRuntime | None = None) -> None:
        if self.gone:
            return
        self.kubelet.events.record(
            self.pod, type_, reason, message, field_path=container.field_path if container else None
        )

    def push_status(self) -> None:
        """Coalesce status writes: changes made while a PATCH is in flight go out together in the next."""
        self._status_dirty.set()
        if self._status_writer is None or self._status_writer.done():
            self._status_writer = asyncio.get_running_loop().create_task(
                self._write_status(), name=f"pod {self.namespace}/{self.name} status"
            )

    async def _write_status(self) -> None:
        failures = 0
        while self._status_dirty.is_set() and not self.gone:
            self._status_dirty.clear()
            try:
                await self._flush_status()
                failures = 0
            except StatusError as exc:
                # The API server is away or refused: keep the change and try again, as the kubelet's
                # status manager does, without spinning.
                log.info("status of %s/%s not written: %s", self.namespace, self.name, exc.message)
                self._status_dirty.set()
                failures += 1
                await asyncio.sleep(min(0.2 * 2**failures, 5.0))

    async def flush_status(self) -> None:
        """Write the status now and wait for it (the next step depends on it being visible)."""
        self._status_dirty.clear()
        with contextlib.suppress(StatusError):
            await self._flush_status()

    async def _flush_status(self) -> None:
        if self.gone:
            return
        current = self.pod.get("status", {})
        status = self.build_status(current)
        patch: dict[str, Any] = {k: v for k, v in status.items() if current.get(k) != v and k != "conditions"}
        for key in current:
            if key not in status:
                patch[key] = None
        # Conditions are merged by type (a strategic merge patch, as the kubelet's status manager sends): only
        # those that changed go out, so a condition someone else owns (PodScheduled, written by the scheduler)
        # is never overwritten with what this node's cache last saw of it.
        known = {c.get("type"): c for c in current.get("conditions") or []}
        changed = [c for c in status["conditions"] if known.get(c["type"]) != c]
        if changed:
            patch["conditions"] = changed
        if not patch:
            return
        try:
            self.pod = await self.kubelet.client.strategic_merge_patch(
                object_path("pods", self.namespace, self.name) + "/status",
                {"metadata": {"uid": self.uid}, "status": patch},
            )
        except StatusError as exc:
            # Deleted, or replaced by a pod of the same name (the uid precondition). A 409 can also be a
            # plain conflict, which is retried: only a pod that is really gone may be forgotten, or its
            # deletion would never be finished.
            if exc.code in (404, 409) and not await self._still_ours():  # a 404 only if the read agrees
                self.gone = True
                return
            raise

    # -- status ----------------------------------------------------------------------------------------

    def _condition(self, type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> None:
        status = "True" if ok else "False"
        previous = self._conditions.get(type_)
        transition = (
            now() if previous is None or previous["status"] != status else previous["lastTransitionTime"]
        )
        condition: dict[str, Any] = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": transition,
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        self._conditions[type_] = condition

    def phase(self) -> str:
        if self.final_phase:
            return self.final_phase
        if not self.initialized:
            return "Pending"
        regular = [c for c in self.containers.values() if c.kind == "regular"]
        return "Running" if any(c.ever_started for c in regular) else "Pending"

    def build_status(self, current: dict[str, Any]) -> dict[str, Any]:
        phase = self.phase()
        regular = [c for c in self.containers.values() if c.kind == "regular"]
        inits = [c for c in self.containers.values() if c.kind != "regular"]
        self._condition("PodReadyToStartContainers", self.sandbox_ready)
        if phase == "Succeeded":
            self._condition("Initialized", True, "PodCompleted")
            self._condition("ContainersReady", False, "PodCompleted")
            self._condition("Ready", False, "PodCompleted")
        elif phase == "Failed" and self.initialized:
            self._condition("Initialized", True)
            self._condition("ContainersReady", False, "PodFailed")
            self._condition("Ready", False, "PodFailed")
        else:
            if self.initialized:
                self._condition("Initialized", True)
            else:
                pending = [
                    c.name
                    for c in inits
                    if not (c.kind == "init" and c.exit_code == 0 and not c.running)
                    and not (c.kind == "sidecar" and c.started)
                ]
                self._condition(
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(pending)}]",
                )
            unready = [c.name for c in regular if not c.ready]
            unready += [c.name for c in inits if c.kind == "sidecar" and not c.ready]
            if unready:
                message = f"containers with unready status: [{' '.join(unready)}]"
                self._condition("ContainersReady", False, "ContainersNotReady", message)
                self._condition("Ready", False, "ContainersNotReady", message)
            else:
                self._condition("ContainersReady", True)
                missing = self._unready_gates(current)
                if missing:
                    self._condition("Ready", False, "ReadinessGatesNotReady", missing)
                else:
                    self._condition("Ready", True)
        ours = {"PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"}
        others = [c for c in current.get("conditions") or [] if c.get("type") not in ours]
        if not any(c.get("type") == "PodScheduled" for c in others):
            # A pod created with spec.nodeName never met the scheduler; the kubelet reports it scheduled.
            others.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": self.start_time,
                }
            )
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"]
        conditions = [self._conditions[t] for t in order] + others
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": self.start_time,
            "qosClass": current.get("qosClass") or qos_class(self.spec),
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if inits:
            status["initContainerStatuses"] = [self._container_status(c) for c in inits]
        status["containerStatuses"] = [
            self._container_status(c) for c in sorted(regular, key=lambda c: c.name)
        ]
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        for key in ("nominatedNodeName", "resize", "resourceClaimStatuses"):
            if key in current:
                status[key] = current[key]
        return status

    def _unready_gates(self, current: dict[str, Any]) -> str:
        conditions = {c.get("type"): c.get("status") for c in current.get("conditions") or []}
        for gate in self.spec.get("readinessGates") or []:
            gate_type = gate.get("conditionType", "")
            if gate_type not in conditions:
                return f'corresponding condition of pod readiness gate "{gate_type}" does not exist.'
            if conditions[gate_type] != "True":
                status = conditions[gate_type]
                return f'the status of pod readiness gate "{gate_type}" is not "True", but {status}'
        return ""

    def _container_status(self, c: ContainerRuntime) -> dict[str, Any]:
        host, path, ref = normalize_image(c.spec.get("image", ""))
        status: dict[str, Any] = {
            "name": c.name,
            "image": f"{host}/{path}{ref}",
            "imageID": c.image_id,
            "ready": c.ready,
            "started": c.started,
            "restartCount": c.restart_count,
            "state": c.state,
            "lastState": c.last_state,
        }
        if c.container_id:
            status["containerID"] = c.container_id
        mounts = []
        for vm in c.spec.get("volumeMounts") or []:
            entry = {"name": vm.get("name"), "mountPath": vm.get("mountPath")}
            if vm.get("readOnly"):
                entry["readOnly"] = True
                entry["recursiveReadOnly"] = "Disabled"
            mounts.append(entry)
        if mounts:
            status["volumeMounts"] = mounts
        return status

    # -- the pod's life ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        self.push_status()
        self._life = asyncio.create_task(
            self._lifecycle(), name=f"pod {self.namespace}/{self.name} lifecycle"
        )
        deadline = self.spec.get("activeDeadlineSeconds")
        deadline_task = asyncio.create_task(self._active_deadline(deadline)) if deadline else None
        try:
            await self._stop_requested.wait()
            await self.terminate(self._grace)
        finally:
            if deadline_task is not None:
                deadline_task.cancel()
        await self._finish_deletion()

    async def _active_deadline(self, seconds: int) -> None:
        await asyncio.sleep(max(0, int(seconds)))
        if self.final_phase or self.terminating:
            return
        self.event(
            "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
        )
        await self._cancel_life()
        await asyncio.gather(
            *(
                self._stop_container(c, float(self.spec.get("terminationGracePeriodSeconds", 30)))
                for c in self.containers.values()
            )
        )
        self.final_phase = "Failed"
        self.reason = "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self.sandbox_ready = False
        self.push_status()

    async def _cancel_life(self) -> None:
        # Cancelled until it ends, not once: a coroutine may swallow a cancellation (Python 3.11's wait_for did, when
        # what it awaited finished in the same loop iteration). A lifecycle that went on started the containers of a
        # pod being deleted, and its stop then waited for them for good: "Running", terminating, no Killing event.
        while pending := [t for t in (self._life, *self._supervisors) if t is not None and not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=CANCEL_RETRY_SECONDS)
        for ended in (self._life, *self._supervisors):
            if ended is not None and not ended.cancelled():
                ended.exception()  # retrieved: the lifecycle logs its own failures

    async def _lifecycle(self) -> None:
        try:
            await self._prepare_sandbox()
            for c in [c for c in self.containers.values() if c.kind != "regular"]:
                if c.kind == "sidecar":
                    self._supervisors.append(asyncio.create_task(self._supervise(c)))
                    await c.started_event.wait()
                    continue
                code = await self._supervise(c)
                if code != 0:
                    self.final_phase = "Failed"
                    for other in self.containers.values():
                        if other.kind == "regular":
                            other.state = {"waiting": {"reason": "PodInitializing"}}
                    await self._stop_sidecars()
                    self.sandbox_ready = False
                    self.push_status()
                    return
            self.initialized = True
            for c in self.containers.values():
                if c.kind == "regular":
                    c.state = {"waiting": {"reason": "ContainerCreating"}}
            self.push_status()
            regular = [c for c in self.containers.values() if c.kind == "regular"]
            tasks = [asyncio.create_task(self._supervise(c)) for c in regular]
            self._supervisors.extend(tasks)
            codes = await asyncio.gather(*tasks)
            await self._stop_sidecars()
            self.final_phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
            self.sandbox_ready = False
            self.push_status()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
            raise

    async def _stop_sidecars(self) -> None:
        sidecars = [c for c in self.containers.values() if c.kind == "sidecar"]
        for c in reversed(sidecars):
            c.stopping = True
            await self._stop_container(c, float(self.spec.get("terminationGracePeriodSeconds", 30)))

    async def _prepare_sandbox(self) -> None:
        await asyncio.to_thread(self.paths.root.mkdir, parents=True, exist_ok=True)
        # The address exists before the volumes so a downward API volume can project status.podIP.
        # hostNetwork pods have the node's address, as on a real node.
        self.pod_ip = HOST_IP if self.spec.get("hostNetwork") else self.kubelet.ips.allocate()
        await self._setup_volumes()
        self.sandbox_ready = True
        await self.flush_status()
        # Containers must find their own and their peers' names from their first instruction.
        await self.kubelet.refresh_hosts()

    # -- volumes ----------------------------------------------------------------------------------------

    async def _setup_volumes(self) -> None:
        reported: set[str] = set()
        waiting_since = time.monotonic()
        unbound_reported = False
        refusals = Backoff(REFUSED_RETRY_FIRST, REFUSED_RETRY_MAX)
        while True:
            self.volume_wakeup.clear()
            problems, unbound, refused = await self.materialize_volumes()
            if not problems and not unbound and not refused:
                return
            if time.monotonic() - waiting_since > REFUSED_GRACE_SECONDS:
                problems = problems + refused
            for problem in problems:
                if problem not in reported:
                    reported.add(problem)
                    self.event("Warning", "FailedMount", problem)
            if refused:
                # Backoff.next_delay is 0 on the first refusal: ask again at once, then 0.1 s, 0.2 s, ...
                await asyncio.sleep(refusals.next_delay())
                continue
            if unbound and not unbound_reported and time.monotonic() - waiting_since > 5:
                unbound_reported = True
                names = " ".join(sorted(unbound))
                all_names = " ".join(sorted(v.get("name", "") for v in self.spec.get("volumes") or []))
                self.event(
                    "Warning",
                    "FailedMount",
                    f"Unable to attach or mount volumes: unmounted volumes=[{names}], unattached "
                    f"volumes=[{all_names}]: timed out waiting for the condition",
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 if unbound else 5):
                    await self.volume_wakeup.wait()

    async def materialize_volumes(self) -> tuple[list[str], set[str], list[str]]:
        """Set every volume up; returns (problems worded as MountVolume.SetUp failures, unbound claims, and the
        failures that were the API server refusing this node, worded the same: see ``REFUSED_RETRY_FIRST``)."""
        problems: list[str] = []
        unbound: set[str] = set()
        refused: list[str] = []
        writes: list[tuple[Path, dict[str, tuple[bytes, int]]]] = []
        dirs: list[Path] = []
        refs: set[tuple[str, str]] = set()
        self.volume_refs_being_read.append(refs)
        try:
            await self._read_volumes(problems, unbound, refused, writes, dirs, refs)
        finally:
            self.volume_refs_being_read.remove(refs)
        self.volume_refs = refs

        def write() -> None:
            for path in dirs:
                path.mkdir(parents=True, exist_ok=True)
            for path, files in writes:
                sandbox.project_files(path, files)

        await asyncio.to_thread(write)
        return problems, unbound, refused

    async def _read_volumes(
        self,
        problems: list[str],
        unbound: set[str],
        refused: list[str],
        writes: list[tuple[Path, dict[str, tuple[bytes, int]]]],
        dirs: list[Path],
        refs: set[tuple[str, str]],
    ) -> None:
        for volume in self.spec.get("volumes") or []:
            name = volume.get("name", "")
            try:
                if "emptyDir" in volume:
                    path = self.paths.volume(name)
                    dirs.append(path)
                    self.volume_sources[name] = str(path)
                elif "hostPath" in volume:
                    self.volume_sources[name] = await self._host_path(volume["hostPath"])
                elif "persistentVolumeClaim" in volume or "ephemeral" in volume:
                    claim = (
                        volume["persistentVolumeClaim"].get("claimName", "")
                        if "persistentVolumeClaim" in volume
                        else f"{self.name}-{name}"
                    )
                    source = await self._claim_path(claim)
                    if source is None:
                        unbound.add(name)
                        continue
                    dirs.append(Path(source))
                    self.volume_sources[name] = source
                elif any(k in volume for k in ("configMap", "secret", "downwardAPI", "projected")):
                    files = await self._projected_files(volume, refs)
                    path = self.paths.volume(name)
                    writes.append((path, files))
                    dirs.append(path)
                    self.volume_sources[name] = str(path)
                else:
                    kind = next((k for k in volume if k != "name"), "unknown")
                    problems.append(
                        f'MountVolume.SetUp failed for volume "{name}" : volume type {kind} is not '
                        f"supported by the local cluster"
                    )
            except ConfigError as exc:
                problems.append(f'MountVolume.SetUp failed for volume "{name}" : {exc}')
            except StatusError as exc:
                failed = refused if exc.code == 403 else problems
                failed.append(f'MountVolume.SetUp failed for volume "{name}" : {exc.message}')

    async def _host_path(self, source: dict[str, Any]) -> str:
        path = source.get("path", "")
        kind = source.get("type") or ""

        def check() -> str:
            p = Path(path)
            if kind in ("DirectoryOrCreate", "") and not p.exists():
                # containerd creates a missing hostPath source directory, so type "" does too.
                p.mkdir(parents=True, exist_ok=True)
                os.chmod(p, 0o755)
            elif kind == "FileOrCreate" and not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch(mode=0o644)
            elif kind == "Directory" and not p.is_dir():
                raise ConfigError(f"hostPath type check failed: {path} is not a directory")
            elif kind == "File" and not p.is_file():
                raise ConfigError(f"hostPath type check failed: {path} is not a file")
            elif kind == "Socket" and not p.is_socket():
                raise ConfigError(f"hostPath type check failed: {path} is not a socket file")
            return path

        return await asyncio.to_thread(check)

    async def _claim_path(self, claim_name: str) -> str | None:
        """The directory of the PersistentVolume bound to ``claim_name``, or None while unbound."""
        client = self.kubelet.client
        try:
            claim = await client.get(object_path("persistentvolumeclaims", self.namespace, claim_name))
        except StatusError as exc:
            if exc.code == 404:
                raise ConfigError(f'persistentvolumeclaim "{claim_name}" not found') from exc
            raise
        volume_name = claim.get("spec", {}).get("volumeName")
        if not volume_name or claim.get("status", {}).get("phase") not in (None, "Bound"):
            return None
        try:
            pv = await client.get(object_path("persistentvolumes", None, volume_name))
        except StatusError as exc:
            if exc.code == 403:  # the Node authorizer reaches a volume only through its bound claim
                raise
            return None
        spec = pv.get("spec", {})
        path = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
        return path or str(self.kubelet.state_dir / "volumes" / volume_name)

    async def _projected_files(
        self, volume: dict[str, Any], refs: set[tuple[str, str]]
    ) -> dict[str, tuple[bytes, int]]:
        if "configMap" in volume:
            return await self._object_files(
                "configmaps", volume["configMap"], volume["configMap"].get("defaultMode"), refs
            )
        if "secret" in volume:
            source = {**volume["secret"], "name": volume["secret"].get("secretName", "")}
            return await self._object_files("secrets", source, volume["secret"].get("defaultMode"), refs)
        if "downwardAPI" in volume:
            return self._downward_files(
                volume["downwardAPI"].get("items") or [], volume["downwardAPI"].get("defaultMode")
            )
        files: dict[str, tuple[bytes, int]] = {}
        projected = volume["projected"]
        default_mode = projected.get("defaultMode")
        for source in projected.get("sources") or []:
            if "configMap" in source:
                root_ca = source["configMap"].get("name") == "kube-root-ca.crt"
                if root_ca:
                    refs.add(("configmaps", "kube-root-ca.crt"))  # watched even while absent: its creation fills the file
                if root_ca and not await self._exists("configmaps", "kube-root-ca.crt"):
                    # The auto-mounted service account volume wants this ConfigMap; without one, an empty
                    # CA file keeps such pods starting (the emulator's CA is in the kubeconfig).
                    files["ca.crt"] = (b"", default_mode or 0o644)
                    continue
                files.update(await self._object_files("configmaps", source["configMap"], default_mode, refs))
            elif "secret" in source:
                files.update(await self._object_files("secrets", source["secret"], default_mode, refs))
            elif "downwardAPI" in source:
                files.update(self._downward_files(source["downwardAPI"].get("items") or [], default_mode))
            elif "serviceAccountToken" in source:
                token = await self._service_account_token(source["serviceAccountToken"])
                files[source["serviceAccountToken"].get("path", "token")] = (
                    token.encode(),
                    default_mode or 0o644,
                )
        return files

    async def _exists(self, plural: str, name: str) -> bool:
        """Whether the object exists. Only a 404 means absent: a refusal or an unanswered watch (503) is raised,
        and the volume is tried again; taken for absence, it gave a pod an empty CA file for good."""
        try:
            await self.kubelet.watched_object(plural, self.namespace, name)
            return True
        except StatusError as exc:
            if exc.code != 404:
                raise
            return False

    async def _service_account_token(self, source: dict[str, Any]) -> str:
        """A token for the pod's service account from the TokenRequest API, bound to this pod.

        That is what a real kubelet mounts, so a pod's in-cluster config works. An API server without
        TokenRequest gets a JWT-shaped placeholder instead.
        """
        sa = self.spec.get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else None,
                "expirationSeconds": int(source.get("expirationSeconds") or 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        try:
            answer = await self.kubelet.client.create(
                object_path("serviceaccounts", self.namespace, sa) + "/token", request
            )
            return str(answer["status"]["token"])
        except StatusError as exc:
            if exc.code not in (404, 405):
                raise
        return self._dummy_token(source)

    def _dummy_token(self, source: dict[str, Any]) -> str:
        """A JWT-shaped token naming the pod's service account (the API server does not accept it)."""

        def part(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        sa = self.spec.get("serviceAccountName", "default")
        claims = {
            "iss": "https://kubernetes.default.svc.cluster.local",
            "aud": [source.get("audience") or "https://kubernetes.default.svc.cluster.local"],
            "sub": f"system:serviceaccount:{self.namespace}:{sa}",
            "exp": int(time.time()) + int(source.get("expirationSeconds") or 3607),
            "kubernetes.io": {
                "namespace": self.namespace,
                "pod": {"name": self.name, "uid": self.uid},
                "serviceaccount": {"name": sa},
            },
        }
        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.localcluster"

    async def _object_files(
        self, plural: str, source: dict[str, Any], default_mode: int | None, refs: set[tuple[str, str]]
    ) -> dict[str, tuple[bytes, int]]:
        kind = "configmap" if plural == "configmaps" else "secret"
        name = source.get("name", "")
        refs.add((plural, name))
        mode = default_mode if default_mode is not None else 0o644
        try:
            obj = await self.kubelet.watched_object(plural, self.namespace, name)
        except StatusError as exc:
            if exc.code == 404:
                if source.get("optional"):
                    return {}
                raise ConfigError(f'{kind} "{name}" not found') from exc
            raise
        data = _configmap_data(obj) if plural == "configmaps" else _decode_secret(obj)
        items = source.get("items")
        if not items:
            return {key: (value, mode) for key, value in data.items()}
        files = {}
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if source.get("optional"):
                    continue
                raise ConfigError(f"{kind} references non-existent config key: {key}")
            files[item.get("path") or key] = (
                data[key],
                item.get("mode") if item.get("mode") is not None else mode,
            )
        return files

    def _downward_files(
        self, items: list[dict[str, Any]], default_mode: int | None
    ) -> dict[str, tuple[bytes, int]]:
        files: dict[str, tuple[bytes, int]] = {}
        mode = default_mode if default_mode is not None else 0o644
        pod = self._pod_with_ips()
        for item in items:
            if item.get("fieldRef"):
                value = field_ref_value(pod, item["fieldRef"].get("fieldPath", ""))
            elif item.get("resourceFieldRef"):
                value = resource_field_value(pod, "", item["resourceFieldRef"], self.kubelet.allocatable)
            else:
                continue
            item_mode = item.get("mode")
            files[item.get("path", "")] = (value.encode(), int(item_mode) if item_mode is not None else mode)
        return files

    def _pod_with_ips(self) -> dict[str, Any]:
        status = dict(self.pod.get("status", {}))
        status.setdefault("hostIP", HOST_IP)
        status.setdefault("hostIPs", [{"ip": HOST_IP}])
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return {**self.pod, "status": status}

    def _mounts(self, c: ContainerRuntime, env: dict[str, str]) -> list[_Mount]:
        mounts = []
        volumes = {v.get("name"): v for v in self.spec.get("volumes") or []}
        for vm in c.spec.get("volumeMounts") or []:
            source = self.volume_sources.get(vm.get("name", ""))
            if source is None:
                raise ConfigError(f'cannot find volume "{vm.get("name")}" to mount into container "{c.name}"')
            sub = vm.get("subPath") or ""
            if vm.get("subPathExpr"):
                sub = expand(vm["subPathExpr"], env.get)
            if sub:
                if os.path.isabs(sub) or ".." in Path(sub).parts:
                    raise ConfigError(
                        f'failed to prepare subPath for volumeMount "{vm.get("name")}" of '
                        f'container "{c.name}"'
                    )
                source = os.path.join(source, sub)
                if not os.path.exists(source):
                    os.makedirs(source, exist_ok=True)  # the real kubelet creates a missing subPath directory
            volume = volumes.get(vm.get("name"), {})
            read_only = bool(vm.get("readOnly")) or any(
                k in volume for k in ("configMap", "secret", "downwardAPI", "projected")
            )
            read_only = read_only or bool((volume.get("persistentVolumeClaim") or {}).get("readOnly"))
            mounts.append(_Mount(source, vm.get("mountPath", ""), read_only))
        return mounts

    async def refresh_projected_volumes(self) -> None:
        """A referenced ConfigMap or Secret changed: rewrite its files (subPath mounts keep the old)."""
        if self.sandbox_ready and not self.terminating:
            with contextlib.suppress(Exception):
                await self.materialize_volumes()

    # -- containers -----------------------------------------------------------------------------------

    def _restart_policy(self, c: ContainerRuntime) -> str:
        if c.kind == "sidecar":
            return "Always"
        policy = self.spec.get("restartPolicy", "Always")
        if c.kind == "init" and policy == "Always":
            return "OnFailure"  # init containers must succeed once; they are retried on failure only
        return policy

    async def _supervise(self, c: ContainerRuntime) -> int:
        """Run a container until its restart policy says it is finished; returns the last exit code."""
        while True:
            code = await self._run_once(c)
            if c.stopping or self.terminating:
                return code
            policy = self._restart_policy(c)
            if c.definition_changed:
                c.definition_changed = False
                c.restart_count += 1
                continue
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                return code
            delay = c.backoff.next_delay()
            if delay:
                pod_ref = f"{self.name}_{self.namespace}({self.uid})"
                c.wait(
                    "CrashLoopBackOff",
                    f"back-off {_seconds(delay)} restarting failed container={c.name} pod={pod_ref}",
                )
                c.ready = False
                c.started = False
                self.push_status()
                self.event(
                    "Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod {pod_ref}", c
                )
                await asyncio.sleep(delay)
            c.restart_count += 1

    async def _run_once(self, c: ContainerRuntime) -> int:
        await self._pull(c)
        while True:
            try:
                env = await self._container_env(c)
                mounts = self._mounts(c, env)
                break
            except ConfigError as exc:
                c.wait("CreateContainerConfigError", str(exc))
                self.push_status()
                self.event("Warning", "Failed", f"Error: {exc}", c)
                await asyncio.sleep(c.backoff.current or INITIAL_BACKOFF)
        c.exited = asyncio.Event()
        c.exit_code = None
        c.container_id = f"local://{uuid.uuid4().hex}{uuid.uuid4().hex}"
        error = await self._start_process(c, env, mounts)
        if error is not None:
            finished = now()
            if "terminated" in c.state:
                c.last_state = c.state
            c.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": error,
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": finished,
                    "containerID": c.container_id,
                }
            }
            c.exit_code = 128
            c.exited.set()
            self.push_status()
            self.event("Warning", "Failed", f"Error: {error}", c)
            return 128
        self.event("Normal", "Created", f"Created container: {c.name}", c)
        self.event("Normal", "Started", f"Started container {c.name}", c)
        c.started_at = now()
        c.set_state({"running": {"startedAt": c.started_at}})
        c.ever_started = True
        post_start = (c.spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            ok, message = await self._handler(
                c, post_start, timeout=float(self.spec.get("terminationGracePeriodSeconds", 30))
            )
            if not ok and not c.exited.is_set():
                self.event("Warning", "FailedPostStartHook", f"PostStartHook failed: {message}", c)
                await self._kill(c, float(self.spec.get("terminationGracePeriodSeconds", 30)))
        self._start_probes(c)
        self.push_status()
        try:
            await c.exited.wait()
        finally:
            for task in c.probe_tasks:
                task.cancel()
            c.probe_tasks = []
        c.ready = False
        c.started = False
        self.push_status()
        return c.exit_code if c.exit_code is not None else 137

    async def _pull(self, c: ContainerRuntime) -> None:
        image = c.spec.get("image", "")
        policy = c.spec.get("imagePullPolicy") or "IfNotPresent"
        backoff = Backoff()
        while True:
            failure = image_pull_error(image)
            if policy == "Never":
                if failure is None:
                    self.event("Normal", "Pulled", f'Container image "{image}" already present on machine', c)
                    break
                message = f'Container image "{image}" is not present with pull policy of Never'
                c.wait("ErrImageNeverPull", message)
                self.push_status()
                self.event("Warning", "ErrImageNeverPull", message, c)
                await asyncio.sleep(backoff.next_delay() or INITIAL_BACKOFF)
                continue
            if failure is None and policy == "IfNotPresent" and image in self.kubelet.pulled_images:
                self.event("Normal", "Pulled", f'Container image "{image}" already present on machine', c)
                break
            self.event("Normal", "Pulling", f'Pulling image "{image}"', c)
            if failure is None:
                self.kubelet.pulled_images.add(image)
                self.event(
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in 1ms (1ms including waiting). '
                    "Image size: 0 bytes.",
                    c,
                )
                break
            message = f"rpc error: code = NotFound desc = {failure}"
            c.wait("ErrImagePull", message)
            self.push_status()
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {message}', c)
            self.event("Warning", "Failed", "Error: ErrImagePull", c)
            await asyncio.sleep(ERR_IMAGE_PULL_SECONDS)
            delay = backoff.next_delay() or INITIAL_BACKOFF
            c.wait("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.push_status()
            self.event("Normal", "BackOff", f'Back-off pulling image "{image}"', c)
            self.event("Warning", "Failed", "Error: ImagePullBackOff", c)
            await asyncio.sleep(delay)
        host, path, ref = normalize_image(image)
        digest = hashlib.sha256(f"{host}/{path}{ref}".encode()).hexdigest()
        c.image_id = f"{host}/{path}@sha256:{digest}"

    async def _container_env(self, c: ContainerRuntime) -> dict[str, str]:
        """The process environment, built in the kubelet's order (see ``makeEnvironmentVariables``)."""
        kubelet = self.kubelet
        pod = self._pod_with_ips()
        spec = c.spec
        hostname = self.hostname
        env: dict[str, str] = {}
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            for kind, plural in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                ref = source.get(kind)
                if not ref:
                    continue
                data = await self._env_source(plural, ref)
                if data is None:
                    continue
                for key, value in data.items():
                    env[prefix + key] = value
        service_env: dict[str, str] = {}
        if self.spec.get("enableServiceLinks", True):
            services = [
                s for s in kubelet.services.values() if s["metadata"].get("namespace") == self.namespace
            ]
            service_env.update(_service_env(services))
        service_env.update(_kubernetes_env(kubelet.api_server_url))

        def lookup(name: str) -> str | None:
            if name in env:
                return env[name]
            return service_env.get(name)

        for var in spec.get("env") or []:
            name = var.get("name", "")
            if "value" in var or not var.get("valueFrom"):
                env[name] = expand(var.get("value") or "", lookup)
                continue
            source = var["valueFrom"]
            if source.get("fieldRef"):
                env[name] = field_ref_value(pod, source["fieldRef"].get("fieldPath", ""))
            elif source.get("resourceFieldRef"):
                env[name] = resource_field_value(pod, c.name, source["resourceFieldRef"], kubelet.allocatable)
            elif source.get("configMapKeyRef") or source.get("secretKeyRef"):
                is_cm = bool(source.get("configMapKeyRef"))
                ref = source["configMapKeyRef"] if is_cm else source["secretKeyRef"]
                plural = "configmaps" if is_cm else "secrets"
                kind = "ConfigMap" if is_cm else "Secret"
                found = await self._env_source(plural, ref)
                if found is None:
                    continue
                data = found
                key = ref.get("key", "")
                if key not in data:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{ref.get('name')}")
                env[name] = data[key]
        for key, value in service_env.items():
            env.setdefault(key, value)
        base = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOSTNAME": hostname,
            "HOME": os.environ.get("HOME") or "/root",
        }
        result = {**base, **env}
        resources = spec.get("resources") or {}
        gpus = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(GPU_RESOURCE)
        wanted = int(parse_quantity(str(gpus))) if gpus is not None else 0
        if kubelet.fake_gpus is not None and wanted > 0:
            result.update(kubelet.fake_gpus.container_env(
                pod_uid=self.uid, container=c.name, namespace=self.namespace, pod_name=self.name, wanted=wanted,
                path=result["PATH"]))
        return result

    async def _env_source(self, plural: str, ref: dict[str, Any]) -> dict[str, str] | None:
        """The data of the ConfigMap or Secret an env source names, as text; None when it is optional and absent."""
        try:
            obj = await self.kubelet.watched_object(plural, self.namespace, ref.get("name", ""))
        except StatusError as exc:
            if exc.code != 404:
                raise ConfigError(str(exc.message)) from exc
            if ref.get("optional"):
                return None
            kind = "configmap" if plural == "configmaps" else "secret"
            raise ConfigError(f'{kind} "{ref.get("name")}" not found') from exc
        if plural == "configmaps":
            return dict(obj.get("data") or {})
        return {k: v.decode(errors="replace") for k, v in _decode_secret(obj).items()}

    @property
    def hostname(self) -> str:
        return (self.spec.get("hostname") or self.name)[:63]

    def _argv(self, c: ContainerRuntime, env: dict[str, str]) -> list[str]:
        command = [expand(part, env.get) for part in c.spec.get("command") or []]
        args = [expand(part, env.get) for part in c.spec.get("args") or []]
        argv = command + args
        if not argv:
            # Without an image there is no entrypoint to run: the container idles until it is stopped.
            return [sys.executable, "-I", "-S", "-c", "import signal; signal.pause()"]
        return argv

    async def _start_process(
        self, c: ContainerRuntime, env: dict[str, str], mounts: list[_Mount]
    ) -> str | None:
        """Start the container under its shim; returns an error (the runtime's StartError) or None."""
        kubelet = self.kubelet
        mode = kubelet.isolation_mode
        argv = self._argv(c, env)
        working_dir = c.spec.get("workingDir") or "/"
        mount_dicts = [{"source": m.source, "target": m.target, "readOnly": m.read_only} for m in mounts]
        env = dict(env)
        scratch = self.paths.scratch(c.name)
        log_path = self.paths.log_file(c.name, c.restart_count)
        c.logs = {
            cid: path
            for cid, path in c.logs.items()
            if path.stem.isdigit() and int(path.stem) >= c.restart_count - 1
        }
        c.logs[c.container_id] = log_path
        fallback_root = self.paths.fallback_root(c.name)

        def prepare() -> None:
            scratch.mkdir(parents=True, exist_ok=True)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_bytes(b"")
            for old in log_path.parent.glob("*.log"):
                # Keep this run and the previous one (what ``kubectl logs --previous`` reads).
                if old.stem.isdigit() and int(old.stem) < c.restart_count - 1:
                    with contextlib.suppress(OSError):
                        old.unlink()
            if mode == sandbox.ISOLATION_NONE:
                sandbox.build_fallback_root(fallback_root, mount_dicts)

        await asyncio.to_thread(prepare)
        if mode == sandbox.ISOLATION_NONE:
            env["LOCALCLUSTER_ROOT"] = str(fallback_root)
            env["LOCALCLUSTER_HOSTS"] = str(kubelet.hosts_path)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(kubelet.pyhooks_dir), env.get("PYTHONPATH")) if p
            )
            env["HOME"] = sandbox.map_into_root(env.get("HOME", "/"), fallback_root, mount_dicts)
            working_dir = sandbox.map_into_root(working_dir, fallback_root, mount_dicts)
            if not os.path.isdir(working_dir):
                working_dir = str(fallback_root / working_dir.lstrip("/"))
                await asyncio.to_thread(os.makedirs, working_dir, exist_ok=True)
        c.env = env
        c.cwd = working_dir
        spec = {
            "isolation": mode,
            "hostname": self.hostname,
            "scratch": str(scratch),
            "parent": os.getpid(),
            "mounts": mount_dicts,
            "hosts": str(kubelet.hosts_path) if mode != sandbox.ISOLATION_NONE else None,
            "cwd": working_dir,
            "argv": argv,
            "env": env,
        }
        report_r, report_w = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *sandbox.shim_argv(report_w),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(report_w,),
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", os.defpath)},
            )
        except OSError as exc:
            os.close(report_r)
            return f"failed to start the container shim: {exc}"
        finally:
            os.close(report_w)
        c.process = process
        c.shim_pid = process.pid
        kubelet.shims.add(process.pid)
        # The waiter comes before the first await: a pod deleted while its container starts cancels us there, and its
        # stop must find a run that ends (c.exited). Without a waiter it took the whole grace period and 10 s more
        # for a shim that was long gone, and the node said the container was alive meanwhile.
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed by the waiter when the run ends
        pumps = [
            asyncio.create_task(_pump(process.stdout, b"stdout", log_file)),
            asyncio.create_task(_pump(process.stderr, b"stderr", log_file)),
        ]
        c.waiter = asyncio.create_task(self._wait(c, process, pumps, log_file, log_path))
        kubelet.waiters.add(c.waiter)
        c.waiter.add_done_callback(kubelet.waiters.discard)
        assert process.stdin is not None
        process.stdin.write(json.dumps(spec).encode())
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
        report = await asyncio.to_thread(_read_all, report_r)
        if not report.startswith("started"):
            await c.exited.wait()
            why = report.partition(" ")[2].strip() or f"the container shim exited with code {c.exit_code}"
            return (
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                f"runc create failed: unable to start container process: {why}: unknown"
            )
        if mode != sandbox.ISOLATION_NONE:
            c.mount_ns, c.mount_ns_pin = sandbox.pin_mount_namespace(process.pid)
        return None

    async def _wait(
        self,
        c: ContainerRuntime,
        process: asyncio.subprocess.Process,
        pumps: list[asyncio.Task[None]],
        log_file: Any,
        log_path: Path,
    ) -> None:
        try:
            returncode = await process.wait()
            self.kubelet.shims.discard(process.pid)
            _done, pending = await asyncio.wait(pumps, timeout=2)
            for task in pending:
                task.cancel()
            log_file.close()
            # Processes that joined the container (kubectl exec, exec probes) end with it, as they do when a
            # container's PID namespace loses its init; swept while the namespace is still pinned.
            if c.mount_ns and c.mount_ns_pin is not None:
                await asyncio.to_thread(
                    lambda: sandbox.kill_pids(sandbox.processes_in_mount_namespace(c.mount_ns or ""))
                )
        finally:
            if c.mount_ns_pin is not None:
                os.close(c.mount_ns_pin)
            c.mount_ns, c.mount_ns_pin = None, None
        code = returncode if returncode >= 0 else 128 - returncode
        c.exit_code = code
        if c.running:
            terminated: dict[str, Any] = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": c.started_at,
                "finishedAt": now(),
                "containerID": c.container_id,
            }
            if code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                message = await asyncio.to_thread(_log_tail, log_path)
                if message:
                    terminated["message"] = message
            c.state = {"terminated": terminated}
        c.ready = False
        c.started = False
        c.started_event.clear()
        c.exited.set()
        self.push_status()

    # -- probes and hooks --------------------------------------------------------------------------------

    def _start_probes(self, c: ContainerRuntime) -> None:
        spec = c.spec
        if spec.get("startupProbe"):
            c.probe_tasks.append(asyncio.create_task(self._probe_loop(c, "startup", spec["startupProbe"])))
        else:
            self._start_after_startup(c)

    def _start_after_startup(self, c: ContainerRuntime) -> None:
        c.started = True
        c.started_event.set()
        spec = c.spec
        if spec.get("readinessProbe") and c.kind != "init":
            c.probe_tasks.append(
                asyncio.create_task(self._probe_loop(c, "readiness", spec["readinessProbe"]))
            )
        else:
            c.ready = c.kind != "init"
        if spec.get("livenessProbe") and c.kind != "init":
            c.probe_tasks.append(asyncio.create_task(self._probe_loop(c, "liveness", spec["livenessProbe"])))
        self.push_status()

    async def _probe_loop(self, c: ContainerRuntime, kind: str, probe: dict[str, Any]) -> None:
        await asyncio.sleep(max(0, int(probe.get("initialDelaySeconds") or 0)))
        period = max(1, int(probe.get("periodSeconds") or 10))
        timeout = max(1, int(probe.get("timeoutSeconds") or 1))
        success_threshold = max(1, int(probe.get("successThreshold") or 1))
        failure_threshold = max(1, int(probe.get("failureThreshold") or 3))
        successes = failures = 0
        label = {"startup": "Startup", "readiness": "Readiness", "liveness": "Liveness"}[kind]
        while c.process_alive and not self.terminating:
            ok, message = await self._handler(c, probe, timeout=timeout)
            if not c.process_alive or self.terminating:
                return
            if ok:
                successes, failures = successes + 1, 0
                if kind == "readiness" and successes >= success_threshold and not c.ready:
                    c.ready = True
                    self.push_status()
                if kind == "startup":
                    self._start_after_startup(c)
                    return
            else:
                successes, failures = 0, failures + 1
                self.event("Warning", "Unhealthy", f"{label} probe failed: {message}", c)
                if kind == "readiness" and failures >= failure_threshold and c.ready:
                    c.ready = False
                    self.push_status()
                if kind in ("liveness", "startup") and failures >= failure_threshold:
                    self.event(
                        "Normal", "Killing", f"Container {c.name} failed {kind} probe, will be restarted", c
                    )
                    grace = probe.get("terminationGracePeriodSeconds")
                    if grace is None:
                        grace = self.spec.get("terminationGracePeriodSeconds", 30)
                    # Killing from inside a probe task that _kill would cancel: detach it.
                    self.detach(self._kill(c, float(grace)))
                    return
            await asyncio.sleep(period)

    async def _handler(
        self, c: ContainerRuntime, handler: dict[str, Any], *, timeout: float
    ) -> tuple[bool, str]:
        """Run a probe or lifecycle handler: exec, httpGet, tcpSocket (grpc as a connect check)."""
        try:
            if handler.get("exec"):
                return await self._exec_handler(c, handler["exec"].get("command") or [], timeout)
            if handler.get("httpGet"):
                return await self._http_handler(c, handler["httpGet"], timeout)
            if handler.get("tcpSocket"):
                host = handler["tcpSocket"].get("host") or self.pod_ip or HOST_IP
                return await _tcp_check(host, self._port(c, handler["tcpSocket"].get("port")), timeout)
            if handler.get("grpc"):
                return await _tcp_check(self.pod_ip or HOST_IP, int(handler["grpc"].get("port", 0)), timeout)
            if handler.get("sleep"):
                await asyncio.sleep(min(timeout, float(handler["sleep"].get("seconds", 0))))
                return True, ""
        except Exception as exc:  # a broken handler is a failed probe, never a crashed kubelet
            return False, str(exc)
        return True, ""

    def _port(self, c: ContainerRuntime, port: Any) -> int:
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p.get("containerPort", 0))
        raise ValueError(f"unable to find port {port!r} in container {c.name}")

    async def _exec_handler(
        self, c: ContainerRuntime, command: list[str], timeout: float
    ) -> tuple[bool, str]:
        if not command or not c.process_alive:
            return False, "container is not running"
        mode = self.kubelet.isolation_mode
        if mode == sandbox.ISOLATION_NONE:
            argv, cwd = list(command), c.cwd
        else:
            argv, cwd = sandbox.join_argv(c.shim_pid, c.cwd) + list(command), "/"
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=c.env,
            cwd=cwd,
            start_new_session=True,
        )
        group = sandbox.ProcessGroup.led_by(process.pid)
        self.exec_groups.add(group)
        try:
            async with asyncio.timeout(timeout):
                output, _ = await process.communicate()
        except TimeoutError:
            return False, f'command "{" ".join(command)}" timed out'
        finally:
            self.exec_groups.discard(group)
            if process.returncode is None:
                # Timed out, or the probe was cancelled with its container: kill it, and reap it in the
                # background so that neither the process nor its pipes outlive the kubelet.
                sandbox.kill_process_group(process.pid, signal.SIGKILL)
                reaper = asyncio.ensure_future(process.communicate())
                self.kubelet.waiters.add(reaper)
                reaper.add_done_callback(self.kubelet.waiters.discard)
        text = output.decode(errors="replace").strip()
        if process.returncode == 0:
            return True, text
        return False, text or f"command {command!r} exited with {process.returncode}"

    async def _http_handler(
        self, c: ContainerRuntime, get: dict[str, Any], timeout: float
    ) -> tuple[bool, str]:
        host = get.get("host") or self.pod_ip or HOST_IP
        port = self._port(c, get.get("port"))
        scheme = (get.get("scheme") or "HTTP").upper()
        path = get.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme.lower()}://{host}:{port}{path}"
        headers = {
            "Host": f"{host}:{port}",
            "User-Agent": f"kube-probe/{self.kubelet.version.lstrip('v').rsplit('.', 1)[0]}",
            "Accept": "*/*",
            "Connection": "close",
        }
        for header in get.get("httpHeaders") or []:
            headers[header.get("name", "")] = header.get("value", "")
        context = None
        if scheme == "HTTPS":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=context)
        except (TimeoutError, OSError) as exc:
            return False, f'Get "{url}": {_dial_error(host, port, exc)}'
        try:
            request = (
                f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            )
            writer.write(request.encode())
            async with asyncio.timeout(timeout):
                line = await reader.readline()
        except (TimeoutError, OSError) as exc:
            return False, f'Get "{url}": context deadline exceeded ({type(exc).__name__})'
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        parts = line.decode(errors="replace").split()
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"

    # -- stopping -------------------------------------------------------------------------------------

    async def _kill(self, c: ContainerRuntime, grace: float) -> None:
        """Stop one run of a container: preStop, SIGTERM to the main process, SIGKILL after ``grace``."""
        if not c.process_alive:
            return
        deadline = time.monotonic() + max(0.0, grace)
        pre_stop = (c.spec.get("lifecycle") or {}).get("preStop")
        if pre_stop and grace > 0:
            ok, message = await self._handler(c, pre_stop, timeout=grace)
            if not ok:
                self.event("Warning", "FailedPreStopHook", f"PreStopHook failed: {message}", c)
        if c.process_alive and grace > 0:
            sandbox.kill_pids([c.shim_pid], signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await c.exited.wait()
        if c.process_alive:
            await self._kill_tree(c)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await c.exited.wait()

    async def _kill_tree(self, c: ContainerRuntime) -> None:
        # A pin of our own: the run may end (and its waiter unpin the namespace) while the sweep is under way.
        pin = os.dup(c.mount_ns_pin) if c.mount_ns_pin is not None else None
        try:
            await asyncio.to_thread(_kill_container_tree, c.shim_pid, c.mount_ns if pin is not None else None)
        finally:
            if pin is not None:
                os.close(pin)

    async def _stop_container(self, c: ContainerRuntime, grace: float) -> None:
        c.stopping = True
        if c.process_alive:
            self.event("Normal", "Killing", f"Stopping container {c.name}", c)
            await self._kill(c, grace)

    async def terminate(self, grace: float) -> None:
        """Stop everything (graceful deletion or kubelet shutdown), regular containers before sidecars."""
        self.terminating = True
        await self._cancel_life()
        regular = [c for c in self.containers.values() if c.kind == "regular"]
        others = [c for c in self.containers.values() if c.kind != "regular"]
        await asyncio.gather(*(self._stop_container(c, grace) for c in regular))
        for c in reversed(others):
            await self._stop_container(c, grace)
        await asyncio.to_thread(self._kill_exec_processes)
        for task in list(self._background):
            task.cancel()
        self.sandbox_ready = False
        if not self.final_phase:
            codes = [c.exit_code for c in regular]
            self.final_phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"

    def track_exec(self, group: sandbox.ProcessGroup) -> None:
        # Without the pruning a long-lived pod kept every session's pid; pids wrap within minutes here, and its
        # deletion killed whatever process held them by then.
        self.exec_groups = {g for g in self.exec_groups if not g.ended()}
        self.exec_groups.add(group)

    def _kill_exec_processes(self) -> None:
        for group in list(self.exec_groups):
            group.kill()
        self.exec_groups.clear()

    async def _finish_deletion(self) -> None:
        kubelet = self.kubelet
        if not self.gone and not kubelet.stopping:
            await self.flush_status()
            await self._delete_from_api()
        self.gone = True
        if self.pod_ip and self.pod_ip != HOST_IP:
            kubelet.ips.release(self.pod_ip)
        kubelet.forget(self)
        if not kubelet.stopping:
            root = self.paths.root
            if kubelet.state_dir in root.parents:
                await asyncio.to_thread(shutil.rmtree, root, True)
            kubelet.hosts_changed()

    async def _delete_from_api(self) -> None:
        """Finish a graceful deletion (grace 0, this uid only), retrying while the API server fails."""
        failures = 0
        while not self.kubelet.stopping:
            try:
                await self.kubelet.client.delete(
                    object_path("pods", self.namespace, self.name),
                    {
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "gracePeriodSeconds": 0,
                        "preconditions": {"uid": self.uid},
                    },
                )
                return
            except StatusError as exc:
                # A 404 is checked like a 409: kube-apiserver's NodeRestriction admission looks the pod up in its
                # own informer cache and answers 404 for a pod that exists until that cache is synced after a
                # restart. Taken for done, the pod stayed Terminating for good, and its claim with it (pvc-protection).
                if exc.code in (404, 409) and not await self._still_ours():  # gone, or a new pod of the same name
                    return
                failures += 1
                log.info("deletion of %s/%s not finished: %s", self.namespace, self.name, exc.message)
                await asyncio.sleep(min(0.2 * 2**failures, 5.0))

    async def _still_ours(self) -> bool:
        """Whether the API still holds this pod (same uid): a 409 may be a conflict worth retrying."""
        try:
            pod = await self.kubelet.client.get(object_path("pods", self.namespace, self.name))
        except StatusError as exc:
            return exc.code != 404
        return bool(pod["metadata"].get("uid") == self.uid)

    async def shutdown(self) -> None:
        """The kubelet is stopping: stop the containers quickly and leave the API alone."""
        self.request_stop(SHUTDOWN_GRACE)
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE + 1):
                await asyncio.shield(self.task)
        except (TimeoutError, asyncio.CancelledError, Exception):
            # A graceful deletion with a long grace period was under way: cut it short.
            for c in self.containers.values():
                if c.process_alive:
                    await self._kill_tree(c)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                async with asyncio.timeout(10):
                    await self.task


def _awaiting(task: asyncio.Task[Any]) -> str:
    """The chain of coroutines a task is suspended in, outermost first (``Task.get_stack`` stops at the first)."""
    frames = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            frames.append(type(coro).__name__)
            break
        frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(frames)


def _read_all(fd: int) -> str:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


async def _pump(stream: asyncio.StreamReader | None, name: bytes, log_file: Any) -> None:
    """Copy one output stream into the CRI log: ``<time> <stream> F|P <text>``.

    Lines longer than 16 KiB are split into partial (``P``) records as containerd does; output left
    without a final newline when the stream ends becomes a full record.
    """
    if stream is None:
        return
    pending = b""
    eof = False
    while not eof:
        chunk = await stream.read(65536)
        eof = not chunk
        pending += chunk
        records = []
        stamp = _cri_timestamp()
        while pending:
            cut = pending.find(b"\n", 0, MAX_LOG_LINE + 1)
            if cut >= 0:
                records.append(b"%s %s F %s\n" % (stamp, name, pending[:cut]))
                pending = pending[cut + 1 :]
            elif len(pending) > MAX_LOG_LINE:
                records.append(b"%s %s P %s\n" % (stamp, name, pending[:MAX_LOG_LINE]))
                pending = pending[MAX_LOG_LINE:]
            elif eof:
                records.append(b"%s %s F %s\n" % (stamp, name, pending))
                pending = b""
            else:
                break
        if records:
            log_file.write(b"".join(records))
            log_file.flush()


def _log_tail(path: Path) -> str:
    """``FallbackToLogsOnError``: the last 80 lines (at most 2048 bytes) of the run's output."""
    try:
        data = path.read_bytes()[-65536:]
    except OSError:
        return ""
    lines = []
    for record in data.splitlines():
        parts = record.split(b" ", 3)
        if len(parts) == 4:
            lines.append(parts[3].decode(errors="replace"))
    return "\n".join(lines[-80:])[-2048:]


def _kill_container_tree(shim_pid: int, mount_ns: str | None) -> None:
    """SIGKILL a container's processes, leaving its shim to reap them and exit.

    Killing the shim at the same time would orphan the dying processes to init (which, in some
    sandboxes, never reaps them); the shim is only killed if it does not exit by itself.
    """
    for _ in range(3):
        victims = sandbox.descendants(shim_pid)
        if mount_ns:
            victims += [p for p in sandbox.processes_in_mount_namespace(mount_ns) if p != shim_pid]
        sandbox.kill_pids(victims)
        if not victims:
            break
    deadline = time.monotonic() + 2
    while sandbox.pid_alive(shim_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    sandbox.kill_process_group(shim_pid, signal.SIGKILL)
    sandbox.kill_pids([shim_pid])


async def _tcp_check(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (TimeoutError, OSError) as exc:
        return False, _dial_error(host, port, exc)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, ""


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {host}:{port}: connect: connection refused"
    return f"dial tcp {host}:{port}: {getattr(exc, 'strerror', None) or exc}"


# -- the node -----------------------------------------------------------------------------------------


def host_capacity(state_dir: Path) -> dict[str, str]:
    """What a real kubelet reports for this machine (cpu, memory, ephemeral storage, 110 pods)."""
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    if not memory_kib:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            memory_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    storage_kib = 0
    with contextlib.suppress(OSError):
        st = os.statvfs(state_dir if state_dir.exists() else "/")
        storage_kib = st.f_frsize * st.f_blocks // 1024
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "ephemeral-storage": f"{storage_kib}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)


def _os_image() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            value = Path(path).read_text().strip()
            if value:
                return value
    return uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return str(uuid.uuid4())


def declared_feature_list(features: Iterable[str]) -> list[str]:
    """``status.declaredFeatures`` as the API server validates it: known names, sorted, without duplicates."""
    chosen = sorted(set(features))
    unknown = [f for f in chosen if f not in DECLARABLE_FEATURES]
    if unknown:
        raise ValueError(
            f"unknown node feature(s) {', '.join(unknown)}: a 1.37 kubelet declares only {', '.join(DECLARABLE_FEATURES)}"
        )
    return chosen


# -- the kubelet ---------------------------------------------------------------------------------------


class Kubelet:
    """A node: registers itself, runs every pod bound to it, and keeps its Lease. See the module docstring.

    It reaches the cluster only through ``client`` (an :class:`ApiClient` authenticated as
    ``system:node:<node_name>``), whichever control plane serves it. ``capacity`` is merged over the host's (so
    ``{"nvidia.com/gpu": "2"}`` adds two GPUs); ``isolation`` forces a mode of ``sandbox.ISOLATION_MODES``
    instead of probing (``LOCALCLUSTER_ISOLATION`` too); ``api_server_url`` is what pods get as
    ``KUBERNETES_SERVICE_HOST/PORT`` (default: the URL the client talks to); ``kubelet_port`` is the port of
    the kubelet API the API server proxies exec, logs and port-forward to (advertised in the Node status);
    ``declared_features`` is what the Node declares (default :data:`DEFAULT_DECLARED_FEATURES`; each must be
    one of :data:`DECLARABLE_FEATURES`).
    """

    def __init__(
        self,
        client: ApiClient,
        *,
        state_dir: Path,
        node_name: str = "localcluster",
        capacity: dict[str, str] | None = None,
        isolation: str = "auto",
        api_server_url: str | None = None,
        pod_cidr: str | None = None,
        kubelet_port: int = 10250,
        labels: dict[str, str] | None = None,
        names_client: ApiClient | None = None,
        declared_features: Iterable[str] | None = None,
    ) -> None:
        self.client = client
        self.declared_features = declared_feature_list(
            DEFAULT_DECLARED_FEATURES if declared_features is None else declared_features
        )
        self.state_dir = Path(state_dir)
        self.node_name = node_name
        self.capacity = {**host_capacity(self.state_dir), **(capacity or {})}
        self.allocatable = dict(self.capacity)
        self.api_server_url = api_server_url or client.server
        self.kubelet_port = kubelet_port
        self.extra_labels = dict(labels or {})
        gpus = int(parse_quantity(str(self.capacity.get(GPU_RESOURCE) or 0)))
        self.fake_gpus = FakeGpus(self.state_dir, gpus) if gpus > 0 else None
        self._requested_isolation = os.environ.get("LOCALCLUSTER_ISOLATION") or isolation
        if self._requested_isolation not in (*sandbox.ISOLATION_MODES, "auto"):
            raise ValueError(f"isolation must be auto or one of {sandbox.ISOLATION_MODES}")
        self._isolation: str | None = None
        self.ips = sandbox.PodIPAllocator(pod_cidr)
        self.events = NodeEventRecorder(client, node_name)
        self.hosts_path = self.state_dir / "hosts"
        self.pyhooks_dir = self.state_dir / "pyhooks"
        self.pulled_images: set[str] = set()
        self.shims: set[int] = set()
        # One per container run (and killed probe), done once the process is reaped and its pipes closed.
        self.waiters: set[asyncio.Future[Any]] = set()
        self.stopping = False
        self.version = "v1.37.0"
        # The pods bound here: all a node may list and watch (the Node authorizer insists on the selector).
        self.pods = client.informer(object_path("pods"), field_selector=f"spec.nodeName={node_name}")
        # The hosts file stands in for cluster DNS, so it reads what CoreDNS reads (every pod, Service and
        # Endpoints) with credentials of its own; without them it knows this node's pods and the Services.
        names = names_client or client
        self.cluster_pods = names_client.informer(object_path("pods")) if names_client else None
        self.services = names.informer(object_path("services"))
        self.endpoints = names_client.informer(object_path("endpoints")) if names_client else None
        # ConfigMaps and Secrets one by one, as the kubelet's watch-based manager does: the Node authorizer
        # lets a node read only those its pods use, and only by name.
        self._object_watches: dict[tuple[str, str, str], Informer] = {}
        self._workers: dict[str, PodWorker] = {}
        self._by_name: dict[tuple[str, str], PodWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._hosts_wakeup: asyncio.Event | None = None
        self._hosts_written = ""
        self._hosts_lock = asyncio.Lock()
        self._node_uid = ""
        self._started = False

    def _name_informers(self) -> list[Informer]:
        return [i for i in (self.cluster_pods, self.services, self.endpoints) if i is not None]

    @property
    def isolation_mode(self) -> str:
        """``namespaces``, ``user-namespaces`` or ``none`` (decided by ``start``; see sandbox.py)."""
        return self._isolation or sandbox.ISOLATION_NONE

    # -- start / stop ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.fake_gpus is not None:
            await asyncio.to_thread(self.fake_gpus.install)
        self._isolation = await self._probe_isolation()
        with contextlib.suppress(StatusError, KeyError):
            self.version = str((await self.client.get("/version"))["gitVersion"])
        self.events.start()
        await self._register_node()
        self._hosts_wakeup = asyncio.Event()
        self.pods.add_handler(self._on_pod_event)
        for informer in self._name_informers():
            informer.add_handler(lambda _kind, _obj: self.hosts_changed())
        for informer in (self.pods, *self._name_informers()):
            informer.start()
        await asyncio.gather(*(i.synced.wait() for i in (self.pods, *self._name_informers())))
        live = {
            (p["metadata"]["namespace"], f"{p['metadata']['name']}-{p['metadata']['uid']}")
            for p in self.pods.values()
        }
        await asyncio.to_thread(self._prepare_state, live)
        self._started = True
        for pod in self.pods.values():
            self._observe_pod(pod)
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="kubelet heartbeat"),
            asyncio.create_task(self._hosts_loop(), name="kubelet hosts file"),
            asyncio.create_task(self._deletion_watchdog(), name="kubelet deletion watchdog"),
        ]
        self._hosts_wakeup.set()

    async def stop(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL after a short grace) and all background work."""
        self.stopping = True
        workers = list(self._workers.values())
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for informer in [self.pods, *self._name_informers(), *self._object_watches.values()]:
            await informer.stop()
        self._object_watches.clear()
        await self.events.stop()
        # Belt and braces: any shim still alive (a worker that failed) takes its whole tree down, and
        # every run is reaped before the loop may close.
        for pid in list(self.shims):
            await asyncio.to_thread(_kill_container_tree, pid, None)
        if self.waiters:
            await asyncio.wait(list(self.waiters), timeout=10)
        self.shims.clear()

    def _prepare_state(self, live: set[tuple[str, str]]) -> None:
        (self.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "volumes").mkdir(parents=True, exist_ok=True)
        if not self.hosts_path.exists():
            sandbox.write_in_place(self.hosts_path, sandbox.HOSTS_HEADER)
        sandbox.install_sitecustomize(self.pyhooks_dir)
        # Sandboxes of pods that no longer exist (a previous run of a persistent cluster) are removed.
        for ns_dir in (self.state_dir / "pods").iterdir():
            for pod_dir in ns_dir.iterdir():
                if (ns_dir.name, pod_dir.name) not in live:
                    shutil.rmtree(pod_dir, ignore_errors=True)

    async def _probe_isolation(self) -> str:
        if self._requested_isolation != "auto":
            return self._requested_isolation
        candidates = [sandbox.ISOLATION_NAMESPACES] if os.geteuid() == 0 else []
        candidates.append(sandbox.ISOLATION_USER_NAMESPACES)
        if not sys.platform.startswith("linux"):
            return sandbox.ISOLATION_NONE
        for mode in candidates:
            scratch = self.state_dir / f".probe-{uuid.uuid4().hex[:8]}"
            scratch.mkdir(parents=True)
            try:
                process = await asyncio.create_subprocess_exec(
                    *sandbox.probe_argv(mode, scratch),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, stderr = await process.communicate()
                if process.returncode == 0:
                    return mode
                log.info("isolation mode %s unavailable: %s", mode, stderr.decode(errors="replace").strip())
            finally:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        return sandbox.ISOLATION_NONE

    # -- objects the pods use -----------------------------------------------------------------------------

    async def watched_object(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """A ConfigMap or Secret a pod uses, from a watch kept on it (raises ``StatusError`` 404 if absent).

        The first use starts the watch and waits for its first LIST; changes then refresh the volumes of
        the pods that project the object.
        """
        key = (plural, namespace, name)
        informer = self._object_watches.get(key)
        if informer is None:
            informer = self.client.informer(
                object_path(plural, namespace), field_selector=f"metadata.name={name}"
            )
            informer.add_handler(functools.partial(self._on_object_event, key))
            self._object_watches[key] = informer
            informer.start()
        try:
            async with asyncio.timeout(30):
                await informer.synced.wait()
        except TimeoutError:
            raise StatusError(503, "ServiceUnavailable", f"{plural} {namespace}/{name}: no answer") from None
        if informer.forbidden:
            # Forget the refused watch so that the next use asks again: the refusal may only mean that the Node
            # authorizer has not yet seen the pod that uses the object (see REFUSED_RETRY_FIRST).
            if self._object_watches.get(key) is informer:
                del self._object_watches[key]
            raise StatusError(403, "Forbidden", f'{plural} "{name}" is forbidden for node {self.node_name}')
        obj = informer.get(namespace, name)
        if obj is None:
            raise StatusError(404, "NotFound", f'{plural} "{name}" not found')
        return obj

    def _on_object_event(self, key: tuple[str, str, str], _kind: str, obj: dict[str, Any]) -> None:
        plural, namespace, name = key
        for worker in list(self._workers.values()):
            if worker.namespace == namespace and (plural, name) in worker.volume_refs:
                worker.volume_wakeup.set()
                worker.detach(worker.refresh_projected_volumes())

    def _release_object_watches(self) -> None:
        """Stop watching objects no pod on this node uses any more."""
        # A pod still reading its volumes counts too: its new watch, stopped before its first LIST, never synced,
        # and the pod waited 30 s and got an empty CA file (any other pod's deletion on the node did it).
        used = {(plural, w.namespace, name) for w in self._workers.values()
                for refs in (w.volume_refs, *w.volume_refs_being_read) for plural, name in refs}
        for key in [k for k in self._object_watches if k not in used]:
            informer = self._object_watches.pop(key)
            asyncio.get_running_loop().create_task(informer.stop())

    # -- node -------------------------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        return {
            "beta.kubernetes.io/arch": _arch(),
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "local",
            LOCAL_CLUSTER_LABEL: "true",
            **(self.fake_gpus.labels() if self.fake_gpus is not None else {}),
            **self.extra_labels,
        }

    async def _register_node(self) -> None:
        path = object_path("nodes", None, self.node_name)
        try:
            node = await self.client.get(path)
            cidr = node.get("spec", {}).get("podCIDR")
            if cidr and not self._workers:
                # A persistent cluster keeps handing out addresses from the range its Node advertises.
                with contextlib.suppress(ValueError):
                    self.ips = sandbox.PodIPAllocator(cidr)
            labels = node["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in self._labels().items()):
                node = await self.client.merge_patch(path, {"metadata": {"labels": self._labels()}})
        except StatusError as exc:
            if exc.code != 404:
                raise
            node = await self.client.create(
                object_path("nodes"),
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": self.node_name,
                        "labels": self._labels(),
                        "annotations": {
                            "node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                        },
                    },
                    "spec": {"podCIDR": self.ips.cidr, "podCIDRs": [self.ips.cidr]},
                },
            )
            self.events.record(node, "Normal", "Starting", "Starting kubelet.")
        self._node_uid = node["metadata"]["uid"]
        await self._write_node_status(first=True, node=node)
        await self._renew_lease()

    async def _write_node_status(self, *, first: bool = False, node: dict[str, Any] | None = None) -> None:
        path = object_path("nodes", None, self.node_name)
        stamp = now()
        if node is None:
            node = await self.client.get(path)
        previous = {c.get("type"): c for c in node.get("status", {}).get("conditions") or []}

        def condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
            old = previous.get(type_)
            transition = old.get("lastTransitionTime") if old and old.get("status") == status else stamp
            return {
                "type": type_,
                "status": status,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": transition or stamp,
                "reason": reason,
                "message": message,
            }

        status = {
            "capacity": self.capacity,
            "allocatable": self.allocatable,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
                ),
                condition(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            # A merge patch replaces the list; null removes it (the API server drops an empty one too).
            "declaredFeatures": self.declared_features or None,
            "nodeInfo": {
                "machineID": _machine_id(),
                "systemUUID": _machine_id(),
                "bootID": _boot_id(),
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": RUNTIME_VERSION,
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
            "images": [],
        }
        await self.client.merge_patch(path + "/status", {"status": status})
        if first and (previous.get("Ready") or {}).get("status") != "True":
            self.events.record(node, "Normal", "NodeReady", f"Node {self.node_name} status is now: NodeReady")

    async def _renew_lease(self) -> None:
        path = object_path("leases", "kube-node-lease", self.node_name, group="coordination.k8s.io")
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": _now_micro(),
        }
        try:
            lease = await self.client.get(path)
            await self.client.replace(path, {**lease, "spec": {**lease.get("spec", {}), **spec}})
        except StatusError as exc:
            if exc.code != 404:
                raise
            await self.client.create(
                object_path("leases", "kube-node-lease", group="coordination.k8s.io"),
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.node_name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self._node_uid}
                        ],
                    },
                    "spec": {**spec, "acquireTime": spec["renewTime"]},
                },
            )

    async def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                node = await self._current_node()
                if node is None:
                    # Someone deleted the Node (kubectl delete node): register again, as a kubelet does.
                    await self._register_node()
                    last_status = time.monotonic()
                    continue
                await self._renew_lease()
                # The status is posted every 5 minutes when nothing changed, and at once when the API's copy
                # says otherwise: after an outage the node lifecycle controller marks us Unknown (and taints
                # the node unreachable) until we post Ready again, as the kubelet's status loop does.
                conditions = node.get("status", {}).get("conditions") or []
                ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
                if ready.get("status") != "True" or time.monotonic() - last_status >= NODE_STATUS_SECONDS:
                    last_status = time.monotonic()
                    await self._write_node_status(node=node)
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    async def _current_node(self) -> dict[str, Any] | None:
        try:
            return await self.client.get(object_path("nodes", None, self.node_name))
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise

    # -- pods -------------------------------------------------------------------------------------------

    def _on_pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        if self.stopping or not self._started:
            return
        if kind == "DELETED":
            worker = self._workers.get(pod["metadata"].get("uid", ""))
            if worker is not None:
                worker.observe_deleted()
        else:
            self._observe_pod(pod)
        self.hosts_changed()

    def _observe_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if pod.get("spec", {}).get("nodeName") != self.node_name:
            return
        worker = self._workers.get(meta["uid"])
        if worker is not None:
            worker.observe(pod)
            return
        if self.stopping or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self, pod)
        self._workers[worker.uid] = worker
        self._by_name[(worker.namespace, worker.name)] = worker
        worker.observe(pod)

    async def _deletion_watchdog(self) -> None:
        """A WARNING, once per pod, for a pod of this node whose deletion is overdue (see DELETION_OVERDUE_SECONDS)."""
        reported: set[str] = set()
        while True:
            await asyncio.sleep(DELETION_WATCHDOG_SECONDS)
            moment = datetime.datetime.now(datetime.UTC)
            for pod in self.pods.values():
                meta = pod["metadata"]
                uid, deadline = meta.get("uid", ""), parse_time(meta.get("deletionTimestamp"))
                if deadline is None or uid in reported:
                    continue
                overdue = (moment - deadline).total_seconds()
                if overdue < DELETION_OVERDUE_SECONDS:
                    continue
                reported.add(uid)
                worker = self._workers.get(uid)
                log.warning(
                    "pod %s/%s (uid %s): deletion overdue by %.0fs (phase %s); %s",
                    meta.get("namespace"), meta.get("name"), uid, overdue, pod.get("status", {}).get("phase"),
                    worker.where_stopping() if worker is not None else "no worker of this node holds it",
                )
            reported &= {p["metadata"].get("uid", "") for p in self.pods.values()}

    def forget(self, worker: PodWorker) -> None:
        self._workers.pop(worker.uid, None)
        if self.fake_gpus is not None:
            self.fake_gpus.release(worker.uid)
        if self._by_name.get((worker.namespace, worker.name)) is worker:
            del self._by_name[(worker.namespace, worker.name)]
        self._release_object_watches()

    # -- names ------------------------------------------------------------------------------------------

    def hosts_changed(self) -> None:
        if self._hosts_wakeup is not None:
            self._hosts_wakeup.set()

    async def refresh_hosts(self) -> None:
        # Serialised, and rendered under the lock: an older rendering must never land after a newer one.
        async with self._hosts_lock:
            content = self._render_hosts()
            if content != self._hosts_written:
                await asyncio.to_thread(sandbox.write_in_place, self.hosts_path, content)
                self._hosts_written = content

    def _render_hosts(self) -> str:
        pods = [
            p
            for p in (self.cluster_pods or self.pods).values()
            if p.get("status", {}).get("podIP")
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]
        # Pods of this node carry the address they were given here even before their status says so.
        for worker in self._workers.values():
            if worker.pod_ip and not worker.pod.get("status", {}).get("podIP") and not worker.terminating:
                pods.append(worker._pod_with_ips())
        # Ready pods by (namespace, label, value): a Service looks its selector up here instead of
        # scanning its namespace's pods, which made each rewrite O(services x pods) at a thousand pods.
        ready_by_label: dict[tuple[str, str, str], list[dict[str, Any]]] = collections.defaultdict(list)
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            if _pod_ready(pod):
                namespace = pod["metadata"]["namespace"]
                for label, value in (pod["metadata"].get("labels") or {}).items():
                    ready_by_label[(namespace, label, value)].append(pod)
        services = []
        for svc in self.services.values():
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            selector = svc.get("spec", {}).get("selector") or {}
            ip = None
            if selector:
                candidates = min(
                    (ready_by_label.get((ns, label, value), []) for label, value in selector.items()), key=len
                )
                for pod in candidates:  # by name, so the answer is stable
                    labels = pod["metadata"].get("labels") or {}
                    if all(labels.get(k) == v for k, v in selector.items()):
                        ip = pod["status"]["podIP"]
                        break
            elif self.endpoints is not None:
                endpoints = self.endpoints.get(ns, name) or {}
                for subset in endpoints.get("subsets") or []:
                    if subset.get("addresses"):
                        ip = subset["addresses"][0].get("ip")
                        break
            if ip:
                services.append((ns, name, ip))
        return sandbox.render_hosts(pods, services, CLUSTER_DOMAIN)

    async def _hosts_loop(self) -> None:
        assert self._hosts_wakeup is not None
        while True:
            await self._hosts_wakeup.wait()
            self._hosts_wakeup.clear()
            try:
                await self.refresh_hosts()
            except Exception:
                log.exception("hosts file not updated")
            # Bursts of pod events (a StatefulSet scaling) produce one rewrite, not hundreds.
            await asyncio.sleep(0.05)

    # -- for the exec and log handlers -------------------------------------------------------------------

    def _worker_for(self, namespace: str, pod_name: str) -> tuple[dict[str, Any], PodWorker | None]:
        worker = self._by_name.get((namespace, pod_name))
        pod = worker.pod if worker is not None else self.pods.get(namespace, pod_name)
        if pod is None:
            raise errors.not_found("pods", pod_name)
        if not pod.get("spec", {}).get("nodeName"):
            raise errors.bad_request(f"pod {pod_name} does not have a host assigned")
        if worker is None:
            worker = self._workers.get(pod["metadata"]["uid"])
        return pod, worker

    @staticmethod
    def container_name(pod: dict[str, Any], container: str | None) -> str:
        """Resolve ``container`` for exec/log the way the API server does (no default with several)."""
        spec = pod.get("spec", {})
        name = pod["metadata"]["name"]
        regular = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in spec.get("initContainers") or []]
        ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
        if not container:
            if len(regular) == 1:
                return regular[0]
            message = (
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(regular)}]"
            )
            if inits:
                message += f" or one of the init containers: [{' '.join(inits)}]"
            raise errors.bad_request(message)
        if container not in regular + inits + ephemeral:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container

    def launch_spec(self, namespace: str, pod_name: str, container: str | None) -> LaunchSpec:
        pod, worker = self._worker_for(namespace, pod_name)
        name = self.container_name(pod, container)
        c = worker.containers.get(name) if worker is not None else None
        if worker is None or c is None or not c.running or not c.process_alive:
            raise errors.bad_request(f'container not found ("{name}")')
        if self.isolation_mode == sandbox.ISOLATION_NONE:
            return LaunchSpec([], dict(c.env), c.cwd, worker.uid)
        return LaunchSpec(sandbox.join_argv(c.shim_pid, c.cwd), dict(c.env), "/", worker.uid)

    def track_process(self, namespace: str, pod_name: str, popen_or_pid: Any) -> None:
        """Tie a process started with ``launch_spec`` to the pod: it is killed when the pod goes away."""
        pid = popen_or_pid if isinstance(popen_or_pid, int) else int(popen_or_pid.pid)
        worker = self._by_name.get((namespace, pod_name))
        group = sandbox.ProcessGroup.led_by(pid)
        if worker is None or worker.terminating:
            group.kill()
            return
        worker.track_exec(group)

    def log_path(self, namespace: str, pod_name: str, container: str | None, previous: bool = False) -> Path:
        """The CRI log the kubelet would read, chosen and refused as ``validateContainerLogStatus`` does.

        The current log is the running container's, else the last terminated one's; ``previous`` is
        the run that ``lastState.terminated`` describes (so in CrashLoopBackOff both name the last run).
        """
        pod, worker = self._worker_for(namespace, pod_name)
        name = self.container_name(pod, container)
        c = worker.containers.get(name) if worker is not None else None
        state = c.state if c is not None else {"waiting": {"reason": "ContainerCreating"}}
        last = (c.last_state if c is not None else {}).get("terminated") or {}

        def log_of(container_id: str | None) -> Path | None:
            return c.logs.get(container_id or "") if c is not None else None

        if previous:
            path = log_of(last.get("containerID"))
            if path is None:
                raise errors.bad_request(
                    f'previous terminated container "{name}" in pod "{pod_name}" not found'
                )
            return path
        if "running" in state and c is not None:
            return c.logs[c.container_id]
        terminated = state.get("terminated")
        for candidate in ((terminated or {}).get("containerID"), last.get("containerID")):
            path = log_of(candidate)
            if path is not None:
                return path
        if terminated or last:
            raise errors.bad_request(f'container "{name}" in pod "{pod_name}" is terminated')
        reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
        reason = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(reason, reason)
        raise errors.bad_request(f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}')

    def container_running(self, namespace: str, pod_name: str, container: str) -> bool:
        worker = self._by_name.get((namespace, pod_name))
        c = worker.containers.get(container) if worker is not None else None
        return bool(c is not None and c.running and c.process_alive)

    # -- for the kubelet API (kubelet_api.KubeletAPIServer) ----------------------------------------------

    def _local_worker(self, namespace: str, pod_name: str) -> PodWorker:
        worker = self._by_name.get((namespace, pod_name))
        if worker is None or worker.gone:
            raise errors.not_found("pods", pod_name)
        return worker

    def pod_uid(self, namespace: str, pod_name: str) -> str:
        """The UID of a pod this node runs (404 for one it does not)."""
        return self._local_worker(namespace, pod_name).uid

    def pod_ip(self, namespace: str, pod_name: str) -> str:
        """Where port-forward connects: the pod's IP once its sandbox is up."""
        worker = self._local_worker(namespace, pod_name)
        if not worker.pod_ip:
            raise errors.bad_request(f'pod "{pod_name}" has no IP address yet: its sandbox is not ready')
        return worker.pod_ip


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )
