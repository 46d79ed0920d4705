"""A seeded DevServer workload, the platform it runs on, the chaos around it, and the checker of its end state.

Shared by ``test_reliability.py`` (a CI size) and ``bench/reliability.py`` (the full size of issue 8).

* **The plan** (``plan``) is drawn from a seed before anything runs: N operations mixing create, update
  (flavor or image), extend, stop, start, delete and mark (write a file into a home directory through
  ``exec``), chosen from a model of what each DevServer should be. The model is the expected end state, so
  the plan is the same whatever the timing, the faults or the kills.
* **The platform** (``Platform``) is a local cluster of its own, in this process (so that its fault injection
  and request counters are at hand), with the CRDs, two tiny flavors (10m and 20m CPU) and one namespace,
  and the operator as a subprocess, ``python -m devservers_operator``, that can be SIGKILLed and started again.
* **Chaos** (``Chaos``) kills the operator at seeded moments (a seeded delay after a seeded operation) and
  starts it again after a seeded pause, while the workload goes on.
* **The checker** (``converge``) reads everything in the namespace until it is right or time runs out:
  every expected DevServer has its spec (flavor, image, home, the deadline ``extend`` wrote) and the
  phase its desired state says, a StatefulSet whose template and replicas follow the spec, its Service,
  its home claim, and the right number of Ready pods; no object is orphaned (labelled for, or owned by, a
  DevServer or StatefulSet that no longer exists) and none is duplicated (two of a kind for one DevServer
  or rank). Then every marker file written into a persistent home is read back through ``exec``, after
  starting the servers that are stopped.

Markers go only into persistent homes (``persistentHomeSize``): an ``emptyDir`` home is expected to lose them
on every restart. The workload's requests go through the SDK (``DevServerClient``) with its default retry
policy: under injected faults that is part of what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.errors import DevServerError, DevServerNotReadyError, ExecError
from devservers_sdk.kube import DEVSERVERS, EVENTS, PODS, Kube, Resource, RetryPolicy
from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.localcluster.pytest_plugin import wait_established
from devservers_sdk.quantities import parse_quantity
from devservers_sdk.settings import load_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NAMESPACE = "reliability"
OWNER = "reliability"
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
SERVICES = Resource("", "v1", "services", "Service")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
FLAVOR_CPU = {"rel-small": "10m", "rel-large": "20m"}
IMAGES = ("devservers/reliability:1", "devservers/reliability:2")
OPERATOR_READY_LINE = "devservers operator watching"
MARK_TIMEOUT = 120.0

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- the plan -----------------------------------------------------------------------------------------------

@dataclass
class Op:
    """One operation of the workload."""

    index: int
    kind: str  # create, update, extend, stop, start, delete, mark
    name: str
    flavor: str | None = None
    image: str | None = None
    home: bool = False
    token: str | None = None


@dataclass
class Expected:
    """What one DevServer must be at the end, as the plan left it."""

    name: str
    flavor: str
    image: str
    home: bool
    stopped: bool = False
    markers: list[str] = field(default_factory=list)
    expiration: datetime | None = None  # recorded when an extend returns: computed from the clock


def plan(seed: int, count: int, *, max_live: int = 12) -> tuple[list[Op], dict[str, Expected]]:
    """``count`` operations drawn from ``seed``, and the DevServers they leave behind.

    Args:
        max_live: DevServers alive at once at most (the 2-core machine runs every pod as a process).
    """
    rng = random.Random(seed)
    live: dict[str, Expected] = {}
    ops: list[Op] = []
    created = 0
    for index in range(count):
        everyone = sorted(live.values(), key=lambda e: e.name)
        pools = {"update": everyone, "extend": everyone, "delete": everyone,
                 "stop": [e for e in everyone if not e.stopped], "start": [e for e in everyone if e.stopped],
                 "mark": [e for e in everyone if e.home and not e.stopped]}
        weights = {"create": 3.0 if len(live) < max_live else 0.0, "update": 2.0, "extend": 1.0, "stop": 1.5,
                   "start": 1.5, "delete": 1.0 if len(live) > 2 else 0.2, "mark": 2.5}
        kinds = [kind for kind in weights if kind == "create" or pools[kind]]
        kind = rng.choices(kinds, [weights[kind] for kind in kinds])[0]
        if kind == "create":
            name = f"w{seed}-{created:03d}"
            created += 1
            expected = Expected(name, rng.choice(sorted(FLAVOR_CPU)), rng.choice(IMAGES), home=rng.random() < 0.7)
            live[name] = expected
            ops.append(Op(index, kind, name, flavor=expected.flavor, image=expected.image, home=expected.home))
            continue
        target = rng.choice(pools[kind])
        op = Op(index, kind, target.name)
        if kind == "update":
            if rng.random() < 0.5:
                target.flavor = op.flavor = next(f for f in sorted(FLAVOR_CPU) if f != target.flavor)
            else:
                target.image = op.image = next(i for i in IMAGES if i != target.image)
        elif kind == "stop":
            target.stopped = True
        elif kind == "start":
            target.stopped = False
        elif kind == "delete":
            del live[target.name]
        elif kind == "mark":
            op.token = f"m{index:04d}x{rng.randrange(16**6):06x}"
            target.markers.append(op.token)
        ops.append(op)
    return ops, live


# -- the platform -------------------------------------------------------------------------------------------

def kubectl(kubeconfig: str, *args: str, input_text: str | None = None) -> str:
    result = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=input_text, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def flavor_manifests() -> str:
    documents = [{"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": name},
                  "spec": {"description": f"{cpu} CPU, for the reliability workload",
                           "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                           "maxTimeToLive": "7d"}}
                 for name, cpu in FLAVOR_CPU.items()]
    return yaml.safe_dump_all(documents)


class OperatorProcess:
    """``python -m devservers_operator`` for one namespace, its output appended to one log across restarts."""

    def __init__(self, kubeconfig: str, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)]),
               "DEVSERVERS_NAMESPACES": NAMESPACE,
               # No fixed port: other operators may run on this machine.
               "DEVSERVERS_LIVENESS": "",
               # The container keeps its default keep-alive loop (a bare `sleep` as PID 1 of a pod sandbox
               # ignores SIGTERM). But a pod deleted in its first moments, before that loop has set its
               # trap, ignores SIGTERM too, as on any cluster, and waits out the grace period; the workload
               # rolls pods seconds after they start, so the grace is short here.
               "DEVSERVERS_TERMINATION_GRACE_SECONDS": "2"}
        with self._lock, self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen([sys.executable, "-m", "devservers_operator"], cwd=ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
            self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the operator has connected (its startup handler logged), as the first start needs."""
        deadline = time.monotonic() + timeout
        while OPERATOR_READY_LINE not in self.log_path.read_text(errors="replace").rsplit("--- start", 1)[-1]:
            if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not start:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup handler runs, as when a node dies or the OOM killer strikes."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(30)
                self.kills += 1

    def stop(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def tracebacks(self) -> int:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count("Traceback (most recent call last)")


class Platform:
    """A local cluster of its own with the CRDs, the flavors and the namespace, and the operator running.

    Example::

        with Platform(tmp_path) as platform:
            client = platform.client()
    """

    def __init__(self, workdir: Path, *, faults: FaultSettings | None = None,
                 control_plane: str = "emulator") -> None:
        if faults is not None and control_plane != "emulator":
            raise ValueError("injected faults are the emulator's: a real API server cannot be told to fail")
        self.workdir = workdir
        self.faults = faults
        self.cluster = LocalCluster(state_dir=workdir / "cluster", control_plane=control_plane,
                                    node_capacity={"cpu": "64", "memory": "256Gi", "pods": "500"})
        self.operator = OperatorProcess(self.cluster.kubeconfig, workdir / "operator.log")

    def __enter__(self) -> Platform:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Pods run as plain processes (the kubelet reads LOCALCLUSTER_ISOLATION when the cluster starts). In the
        # namespace sandbox, a pod replaced by one of the same name within the same second (every rollout of a
        # StatefulSet pod does that) now and then keeps failing its exec probes against a dead shim ("No such
        # file or directory: '/proc/<pid>/ns/user'") and stays Starting: a local-cluster kubelet race that
        # says nothing about the operator, and would make these runs flaky. Plain processes are also cheaper
        # on 2 cores, and homes are still the claims' directories.
        previous = os.environ.get("LOCALCLUSTER_ISOLATION")
        os.environ["LOCALCLUSTER_ISOLATION"] = "none"
        try:
            self.cluster.start()
        finally:
            if previous is None:
                del os.environ["LOCALCLUSTER_ISOLATION"]
            else:
                os.environ["LOCALCLUSTER_ISOLATION"] = previous
        try:
            kubeconfig = self.cluster.kubeconfig
            kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
            wait_established(kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
            kubectl(kubeconfig, "apply", "-f", "-", input_text=flavor_manifests())
            kubectl(kubeconfig, "apply", "-f", "-",
                    input_text=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
            if self.faults is not None:
                # Before the operator starts: its watch streams are opened now, and a stream's lifetime (the
                # cut) is decided when it opens.
                self.cluster.set_faults(self.faults)
            self.operator.start()
            self.operator.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.operator.stop()
        self.cluster.stop()

    def client(self, retry: RetryPolicy | None = None) -> DevServerClient:
        return DevServerClient(kubeconfig=self.cluster.kubeconfig, namespace=NAMESPACE, owner=OWNER, retry=retry)

    def kube(self) -> CountingKube:
        return CountingKube(load_kubeconfig(self.cluster.kubeconfig))


class Chaos:
    """SIGKILLs the operator at seeded moments during the workload and starts it again after a seeded pause.

    A kill comes a seeded 0-0.5 s after a seeded operation (so, often, in the middle of the reconcile that
    operation caused); the operator is started again 0.2-2 s later, while the workload goes on.
    """

    def __init__(self, operator: OperatorProcess, *, seed: int, kills: int, ops: int) -> None:
        self.operator = operator
        self._rng = random.Random(seed * 7919 + 1)
        self.moments = set(self._rng.sample(range(1, max(2, ops)), min(kills, max(1, ops - 1)))) if kills else set()
        self._thread: threading.Thread | None = None

    def before(self, index: int) -> None:
        if index not in self.moments:
            return
        self.finish()
        delay, downtime = self._rng.uniform(0.0, 0.5), self._rng.uniform(0.2, 2.0)

        def strike() -> None:
            time.sleep(delay)
            self.operator.kill()
            time.sleep(downtime)
            self.operator.start()

        self._thread = threading.Thread(target=strike, name=f"chaos-{index}", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


# -- running it ---------------------------------------------------------------------------------------------

@dataclass
class WorkloadStats:
    done: Counter[str] = field(default_factory=Counter)
    retried_marks: int = 0
    seconds: float = 0.0


def run_workload(client: DevServerClient, ops: list[Op], expected: dict[str, Expected], *,
                 before: Callable[[int], None] = lambda index: None, think: float = 0.05, seed: int = 0,
                 log: Log = _quiet) -> WorkloadStats:
    """Carry out the plan through the SDK; records the deadlines ``extend`` wrote into ``expected``.

    Raises:
        DevServerError: an operation failed (the SDK's retries did not carry it through).
    """
    rng = random.Random(seed * 31 + 7)
    stats = WorkloadStats()
    started = time.monotonic()
    for op in ops:
        before(op.index)
        if op.kind == "create":
            client.create(op.name, flavor=op.flavor or "", image=op.image, home_size="1Gi" if op.home else None,
                          time_to_live="2h", auto_shutdown=False)
        elif op.kind == "update":
            client.update(op.name, flavor=op.flavor, image=op.image)
        elif op.kind == "extend":
            server = client.extend(op.name, by="1h")
            if op.name in expected:
                expected[op.name].expiration = server.spec.lifecycle.expiration_time
        elif op.kind == "stop":
            client.stop(op.name)
        elif op.kind == "start":
            client.start(op.name)
        elif op.kind == "delete":
            client.delete(op.name)
        elif op.kind == "mark":
            assert op.token is not None
            stats.retried_marks += write_marker(client, op.name, op.token)
        stats.done[op.kind] += 1
        log(f"  op {op.index:3d} {op.kind:6s} {op.name}")
        if think:
            time.sleep(rng.uniform(0, 2 * think))
    stats.seconds = time.monotonic() - started
    return stats


def write_marker(client: DevServerClient, name: str, token: str) -> int:
    """Write ``~/marker-<token>`` in the DevServer once it runs; returns how many tries failed first.

    The pod may be replaced under the exec (an update rolls it, a restarted operator may recreate it): the
    file is then written again, by the same command, into the same home.
    """
    command = f'echo {shlex.quote(token)} > "$HOME/marker-{token}" && sync'
    deadline = time.monotonic() + MARK_TIMEOUT
    failures = 0
    while True:
        try:
            client.wait(name, timeout=max(1.0, deadline - time.monotonic()))
            client.exec(name, ["/bin/sh", "-c", command], check=True, timeout=30)
            return failures
        except (DevServerNotReadyError, ExecError):
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# -- the checker --------------------------------------------------------------------------------------------

@dataclass
class EndState:
    """What the checker found; ``problems`` is empty when everything is as the plan says."""

    running: int = 0
    stopped: int = 0
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    markers_kept: int = 0
    markers_lost: list[str] = field(default_factory=list)
    summary: list[tuple[str, str, str, bool, str]] = field(default_factory=list)
    converge_seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        return [*self.mismatches, *(f"orphan {o}" for o in self.orphans),
                *(f"duplicate {d}" for d in self.duplicates), *(f"marker lost {m}" for m in self.markers_lost)]


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _label(obj: dict[str, Any]) -> str | None:
    value = (_meta(obj).get("labels") or {}).get(NAME_LABEL)
    return str(value) if value else None


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    return {str(ref.get("uid")) for ref in _meta(obj).get("ownerReferences") or []}


def _lineage(obj: dict[str, Any]) -> str:
    """Owners, finalizers and deletion of an object, in one bracket: what tells why an orphan stayed (never
    collected, or a deletion that something does not finish, such as a pod's node or a claim's protection)."""
    meta = _meta(obj)
    owners = ",".join(f"{ref.get('kind')}/{ref.get('name')}/{str(ref.get('uid'))[:8]}"
                      for ref in meta.get("ownerReferences") or []) or "none"
    deleting = meta.get("deletionTimestamp") or "no"
    phase = (obj.get("status") or {}).get("phase")
    return (f"[owners {owners}; finalizers {','.join(meta.get('finalizers') or []) or 'none'}; "
            f"deleting since {deleting}{f'; phase {phase}' if phase else ''}]")


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def inspect(kube: Kube, expected: dict[str, Expected]) -> EndState:
    """One look at the namespace: the DevServers against the plan, and every owned object against them."""
    state = EndState()
    listed = {resource.kind: kube.list(resource, namespace=NAMESPACE).get("items") or []
              for resource in (DEVSERVERS, STATEFULSETS, SERVICES, PVCS, PODS)}
    servers = {str(_meta(s)["name"]): s for s in listed["DevServer"]}
    server_uids = {str(_meta(s)["uid"]): name for name, s in servers.items()}
    statefulsets = listed["StatefulSet"]
    set_uids = {str(_meta(s)["uid"]) for s in statefulsets}

    for name in sorted(set(servers) - set(expected)):
        state.mismatches.append(f"DevServer {name} should have been deleted")
    for name, want in sorted(expected.items()):
        server = servers.get(name)
        if server is None:
            state.mismatches.append(f"DevServer {name} is missing")
            continue
        state.mismatches.extend(_compare(server, want, listed, state))

    # Orphans: an owned object whose DevServer (by label, or by owner reference) or StatefulSet is gone.
    for kind in ("StatefulSet", "Service", "PersistentVolumeClaim", "Pod"):
        for obj in listed[kind]:
            label, owners = _label(obj), _owner_uids(obj)
            where = f"{kind} {_meta(obj).get('name')} {_lineage(obj)}"
            if label is None or label not in servers:
                state.orphans.append(f"{where} (labelled for DevServer {label}, which does not exist)")
            elif kind == "Pod" and not owners & set_uids:
                state.orphans.append(f"{where} (its StatefulSet is gone)")
            elif kind != "Pod" and not owners & (set(server_uids) | set_uids):
                state.orphans.append(f"{where} (owned by nothing that exists)")
    # Duplicates: two live objects of one kind for one DevServer (and rank).
    for kind in ("StatefulSet", "Service", "PersistentVolumeClaim", "Pod"):
        per_owner = Counter((_label(obj), _rank_of(obj)) for obj in listed[kind]
                            if not _meta(obj).get("deletionTimestamp"))
        state.duplicates.extend(f"{kind} x{count} for DevServer {label} rank {rank}"
                                for (label, rank), count in sorted(per_owner.items(), key=str) if count > 1)
    state.summary = sorted((name, str((s.get("spec") or {}).get("flavor")), str((s.get("spec") or {}).get("image")),
                            bool((s.get("spec") or {}).get("persistentHomeSize")),
                            str((s.get("status") or {}).get("phase"))) for name, s in servers.items())
    return state


def _rank_of(obj: dict[str, Any]) -> str:
    labels = _meta(obj).get("labels") or {}
    if "apps.kubernetes.io/pod-index" in labels:
        return str(labels["apps.kubernetes.io/pod-index"])
    name = str(_meta(obj).get("name"))
    return name.rsplit("-", 1)[-1] if name.startswith("home-") else "-"


def _compare(server: dict[str, Any], want: Expected, listed: dict[str, list[dict[str, Any]]],
             state: EndState) -> list[str]:
    """What differs between one DevServer (and its objects) and the plan."""
    name, spec, status, meta = want.name, server.get("spec") or {}, server.get("status") or {}, _meta(server)
    problems = []
    if spec.get("flavor") != want.flavor or spec.get("image") != want.image:
        problems.append(f"{name}: spec has flavor {spec.get('flavor')} image {spec.get('image')}, "
                        f"the plan says {want.flavor} {want.image}")
    if bool(spec.get("persistentHomeSize")) != want.home:
        problems.append(f"{name}: persistentHomeSize is {spec.get('persistentHomeSize')}")
    if want.expiration is not None:
        written = (spec.get("lifecycle") or {}).get("expirationTime")
        if written is None or datetime.fromisoformat(str(written).replace("Z", "+00:00")) != want.expiration:
            problems.append(f"{name}: expirationTime is {written}, extend wrote {want.expiration}")
    phase = "Stopped" if want.stopped else "Running"
    if status.get("phase") != phase:
        problems.append(f"{name}: phase {status.get('phase')}, should be {phase}")
    elif status.get("observedGeneration") != meta.get("generation"):
        problems.append(f"{name}: status is for generation {status.get('observedGeneration')}, "
                        f"not {meta.get('generation')}")
    else:
        state.running += phase == "Running"
        state.stopped += phase == "Stopped"
    mine = {kind: [o for o in objects if _label(o) == name and not _meta(o).get("deletionTimestamp")]
            for kind, objects in listed.items() if kind != "DevServer"}
    statefulset = next(iter(mine["StatefulSet"]), None)
    if statefulset is None:
        problems.append(f"{name}: no StatefulSet")
    else:
        replicas = (statefulset.get("spec") or {}).get("replicas")
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        if replicas != (0 if want.stopped else 1):
            problems.append(f"{name}: StatefulSet has {replicas} replicas")
        if container.get("image") != want.image or cpu is None or \
                parse_quantity(str(cpu)) != parse_quantity(FLAVOR_CPU[want.flavor]):
            problems.append(f"{name}: StatefulSet runs {container.get('image')} with {cpu} CPU, the spec says "
                            f"{want.image} with {FLAVOR_CPU[want.flavor]}")
    if not mine["Service"]:
        problems.append(f"{name}: no Service")
    # The StatefulSet controller makes a home claim with the first pod: a server stopped before it ever ran
    # has none yet, one that ran (it is running, or holds markers) must have one, owned by the DevServer.
    if want.home and (not want.stopped or want.markers) and \
            not any(str(meta.get("uid")) in _owner_uids(c) for c in mine["PersistentVolumeClaim"]):
        problems.append(f"{name}: no home claim owned by the DevServer")
    pods = [p for p in mine["Pod"] if _ready(p)] if not want.stopped else mine["Pod"]
    if len(pods) != (0 if want.stopped else 1):
        problems.append(f"{name}: {len(pods)} {'pods' if want.stopped else 'Ready pods'}")
    return problems


class CountingKube(Kube):
    """The checker's client, counting what it sends (retries included), so that its polling can be told
    apart from the workload's and the operator's requests in the cluster's counters."""

    sent = 0

    def _send_once(self, *args: Any, **kwargs: Any) -> Any:
        self.sent += 1
        return super()._send_once(*args, **kwargs)


def converge(kube: Kube, expected: dict[str, Expected], *, timeout: float, log: Log = _quiet) -> EndState:
    """Inspect until everything matches the plan, or ``timeout`` seconds passed; returns the last look."""
    started = time.monotonic()
    while True:
        try:
            state = inspect(kube, expected)
        except DevServerError as exc:  # retries ran out under faults: look again
            log(f"  inspect failed: {exc}")
            time.sleep(1.0)
            continue
        if not state.problems or time.monotonic() - started > timeout:
            state.converge_seconds = time.monotonic() - started
            return state
        time.sleep(1.0)


def read_markers(client: DevServerClient, expected: dict[str, Expected], state: EndState) -> None:
    """Read every marker back through exec, starting the stopped servers that hold some."""
    holders = [e for e in expected.values() if e.markers]
    for want in holders:
        if want.stopped:
            client.start(want.name)
    for want in holders:
        try:
            client.wait(want.name, timeout=MARK_TIMEOUT)
            found = client.exec(want.name, ["/bin/sh", "-c", 'cat "$HOME"/marker-* 2>/dev/null; true'],
                                timeout=30).stdout
        except DevServerError as exc:
            state.markers_lost.extend(f"{want.name}/{token} (cannot read: {exc})" for token in want.markers)
            continue
        tokens = set(str(found).split())
        for token in want.markers:
            if token in tokens:
                state.markers_kept += 1
            else:
                state.markers_lost.append(f"{want.name}/{token}")


def snapshot(platform: Platform, path: Path) -> None:
    """For a post-mortem: every object of the namespace (YAML), and the stacks of this process's threads and of
    the cluster's asyncio tasks (the kubelet runs here) in ``<path>.stacks``."""
    documents: dict[str, Any] = {}
    kube = platform.kube()
    for resource in (DEVSERVERS, STATEFULSETS, SERVICES, PVCS, PODS, EVENTS):
        with contextlib.suppress(DevServerError):
            documents[resource.plural] = kube.list(resource, namespace=NAMESPACE).get("items") or []
    path.write_text(yaml.safe_dump(documents, sort_keys=False))
    with path.with_suffix(".stacks").open("w") as stacks:
        faulthandler.dump_traceback(stacks, all_threads=True)
        stacks.flush()

        def tasks() -> str:
            lines = []
            for task in asyncio.all_tasks():
                lines.append(f"--- {task.get_name()}")
                lines.extend(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
                             for frame in task.get_stack())
            return "\n".join(lines)

        with contextlib.suppress(Exception):
            stacks.write("\n\nasyncio tasks of the cluster:\n" + platform.cluster.call(tasks))


# -- one scenario, start to finish ---------------------------------------------------------------------------

@dataclass
class Report:
    """Everything one scenario measured."""

    label: str
    ops: int
    done: Counter[str]
    kills: int
    end: EndState
    requests: int | None  # None on the real control plane, which keeps no per-request counters for us
    checker_requests: int
    request_kinds: dict[str, int]
    faults: dict[str, int]
    operator_starts: int
    operator_tracebacks: int
    retried_marks: int
    workload_seconds: float
    wall_seconds: float

    def line(self) -> str:
        kinds = " ".join(f"{kind} {self.done[kind]}" for kind in
                         ("create", "update", "extend", "stop", "start", "delete", "mark"))
        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        requests = "uncounted" if self.requests is None else str(self.requests)
        return (f"{self.label}: {self.ops} ops ({kinds}); {self.kills} kills; end: {self.end.running} Running, "
                f"{self.end.stopped} Stopped, {len(self.end.orphans)} orphans, {len(self.end.duplicates)} "
                f"duplicates, {len(self.end.mismatches)} mismatches; markers {self.end.markers_kept} kept, "
                f"{len(self.end.markers_lost)} lost; {requests} API requests; faults: {injected}; "
                f"{self.wall_seconds:.0f}s")


def run_scenario(workdir: Path, *, label: str, seed: int, ops: int, kills: int = 0,
                 faults: FaultSettings | None = None, max_live: int = 12, think: float = 0.05,
                 converge_timeout: float = 120.0, log: Log = _quiet,
                 control_plane: str = "emulator") -> Report:
    """A fresh platform, the seeded workload (with kills and/or faults), convergence, the check, the markers.

    API requests are counted by the cluster from the first operation until the end state is reached, less
    the checker's own polling (on the emulator: the real control plane keeps no such counters for us). Faults
    (the emulator's) are on from the operator's start (so that its watches are cut too) until the end state
    is reached, and off for reading the markers back.
    """
    started = time.monotonic()
    operations, expected = plan(seed, ops, max_live=max_live)
    emulated = control_plane == "emulator"
    with Platform(workdir, faults=faults, control_plane=control_plane) as platform:
        client = platform.client()
        chaos = Chaos(platform.operator, seed=seed, kills=kills, ops=ops)
        before_requests = platform.cluster.request_counts() if emulated else {}
        faults_before = platform.cluster.fault_counts() if emulated else {}
        try:
            stats = run_workload(client, operations, expected, before=chaos.before, think=think, seed=seed, log=log)
        except BaseException:
            snapshot(platform, workdir / "failed-state.yaml")
            log(f"  the workload failed; state in {workdir / 'failed-state.yaml'}")
            raise
        finally:
            chaos.finish()
        if platform.operator.process is None or platform.operator.process.poll() is not None:
            platform.operator.start()
        log(f"  workload done in {stats.seconds:.1f}s; converging")
        checker = platform.kube()
        end = converge(checker, expected, timeout=converge_timeout, log=log)
        after_requests = platform.cluster.request_counts() if emulated else {}
        request_kinds = {key: after_requests[key] - before_requests.get(key, 0) for key in after_requests
                         if key != "total" and after_requests[key] != before_requests.get(key, 0)}
        # The workload's and the operator's requests: the checker's polling depends on how long convergence
        # took, not on how the system behaved, and is left out (it is reported on its own).
        requests = (after_requests.get("total", 0) - before_requests.get("total", 0) - checker.sent
                    if emulated else None)
        injected = {key: value - faults_before.get(key, 0)
                    for key, value in platform.cluster.fault_counts().items()
                    if value - faults_before.get(key, 0)} if emulated else {}
        if emulated:
            platform.cluster.set_faults(FaultSettings())
        with contextlib.suppress(DevServerError):
            read_markers(client, expected, end)
        client.close()
        report = Report(label=label, ops=ops, done=stats.done, kills=platform.operator.kills, end=end,
                        requests=requests, checker_requests=checker.sent, request_kinds=request_kinds,
                        faults=injected, operator_starts=platform.operator.starts,
                        operator_tracebacks=platform.operator.tracebacks(), retried_marks=stats.retried_marks,
                        workload_seconds=stats.seconds, wall_seconds=time.monotonic() - started)
        if end.problems:
            snapshot(platform, workdir / "end-state.yaml")
            log(f"  {len(end.problems)} problems; state in {workdir / 'end-state.yaml'}, operator log in "
                f"{platform.operator.log_path}")
        return report
