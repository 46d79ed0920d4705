"""Benchmark of the operator: N DevServers created at once, to Running, at rest, and deleted.

Run: ``.venv/bin/python bench/operator_scale.py [--sizes 100,500,1000] [--rest-seconds 300] [--flavor bench-tiny]``
or ``--quick`` (N=50, 30 s at rest) for a smoke run; ``--control-plane kubernetes`` runs the same on the real
control plane, ``--control-plane both`` on each in turn and prints their figures side by side.

Three processes, so that no figure is another's: the local cluster (``python -m devservers_sdk.localcluster
serve``, its kubelet running every pod as local processes), the operator (``python -m devservers_operator``)
and this script (the client: creates, deletes and watches over raw HTTPS with aiohttp).

For each N, in a namespace of its own: N DevServers are created concurrently (``--concurrency`` requests in
flight), and one watch per kind (DevServers, StatefulSets, Services, pods) timestamps every step, so the
create→Running latency of each DevServer splits into the operator's part (create → StatefulSet; pod Ready →
DevServer Running) and the emulator's (StatefulSet → pod created → pod Ready). Then all N are deleted and the
run waits until no DevServer, StatefulSet, Service or pod of the namespace remains. With the largest N
running, the operator's RSS and CPU time are sampled from ``/proc`` for ``--rest-seconds``.

API requests: the local cluster counts every HTTP request it serves by verb and resource
(``/debug/localcluster/requests``, itself not counted). Its controllers and kubelet call the API
in-process, not over HTTP, so the only HTTP clients are this script and the operator. This script counts
every request it sends by the same key; the operator's requests are the cluster's delta minus those,
counted from the first create (or delete) until the cluster has served no request for ``--settle`` seconds.

Defaults that keep the figures about the operator, and the run bounded on a small machine: the node gets a
large fake capacity (``--node-capacity``), the ``bench-tiny`` flavor requests 10m CPU and 16Mi, the
container command is ``sleep infinity`` (``DEVSERVERS_CONTAINER_COMMAND``; the default keep-alive loop is a
shell plus a sleep, one more process per pod), and the kubelet's pod sandbox is ``none``
(``LOCALCLUSTER_ISOLATION``): with the namespace sandbox each exec readiness probe (every pod, every 5 s)
starts a Python helper, more than 2 cores can run at a few hundred pods. Every pod is still a shim process
plus its command, and its probes are still run.

Where the limit is: per N, the same StatefulSets and Services are first created by this script alone
(``--emulator-alone``), which is what the local cluster manages without any operator; the cluster's request
counters, polled every 100 ms, say when the operator's requests arrived; and the CPU time of each process
(cluster, operator, pod processes, this script, the rest of the host) per DevServer bounds the rate.

On the real control plane (``--control-plane kubernetes``: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and our node agent as a process of its own, started in this script's process by
``LocalCluster``), the operator runs as the ServiceAccount ``operator/deploy/operator-rbac.yaml`` ships (its
ClusterRole, a bound token from the TokenRequest API), so it holds only what a platform team grants it. Its
requests are counted by the real API server: the audit log (Metadata level, one line per request stage; a
request counts once, by its ``auditID``) filtered to that ServiceAccount, and the same log gives every other
client's requests (the StatefulSet controller, the scheduler, the node agent...). CPU is read per process:
kube-apiserver, etcd, kube-controller-manager, kube-scheduler, the node agent and the pods below it; on the
emulator, the one emulator+node process and the pods below it. The emulator's run is unchanged.

Targets (issue 4): >= 50 DevServers/s and p99 create→Running < 2 s at N=500; <= 8 API requests per
standalone create; RSS < 250 MB and < 5 % of a core at rest with 1,000 DevServers.
"""

# ruff: noqa: E402  (the path fix below must come before the other imports)
from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``operator``, which collections, asyncio and dataclasses
# import: take its directory off the path before anything else is imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse
import asyncio
import base64
import collections
import contextlib
import ctypes
import ctypes.util
import json
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from devservers_sdk.contract import API_GROUP, API_VERSION, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
GROUP, VERSION = API_GROUP, API_VERSION
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

TARGET_RATE = 50.0
TARGET_P99 = 2.0
TARGET_REQUESTS = 8.0
TARGET_RSS_MB = 250.0
TARGET_CORE_PCT = 5.0
TARGET_N = 500
REST_TARGET_N = 1000
# Issue 17: the operator's own cost per DevServer.
TARGET_OPERATOR_CPU_MS = 8.0
TARGET_EVENTS = 8.0
# The kinds the operator watches itself, not through kopf (operator/devservers_operator/ownedwatch.py).
OWN_WATCH_KINDS = ("Pod", "StatefulSet", "Service")
TARGET_STATUS_WRITES = 2.0
TARGET_COST_REQUESTS = 4.0

PLANES = ("emulator", "kubernetes")
OPERATOR_NAMESPACE = "devservers-system"
OPERATOR_ACCOUNT = "devservers-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
# The real control plane's own processes, in the order the report lists them.
REAL_COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler")


# -- small helpers ---------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process itself (not of its reaped children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds(pid: int) -> float:
    """cutime + cstime: CPU seconds of the process's children that ended and were reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (``/proc/PID/task/*/schedstat``)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"{task.path}/schedstat") as f:
                total += int(f.read().split()[1])
    return total / 1e9


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def host_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores; ``/proc/stat``, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


def mem_available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the cluster's shims and container commands)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_rss_mb(pid: int) -> float:
    """Sum of the proportional set size of the cluster's descendants (shared pages counted once)."""
    total = 0.0
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{child}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child process: SIGTERM when this script dies, so no cluster or operator outlives the bench."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text (the operator's ``/metrics``) as {series with its labels: value}."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[series] = float(value)
    return values


def metric_sum(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the series of ``name`` whose labels include ``labels``."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for series, value in values.items()
        if series.split("{", 1)[0] == name and all(w in series for w in wanted)
    )


def metric_by(values: dict[str, float], name: str, label: str) -> dict[str, float]:
    """The series of ``name`` summed by one label's value."""
    found: collections.Counter[str] = collections.Counter()
    for series, value in values.items():
        if series.split("{", 1)[0] == name and f'{label}="' in series:
            found[series.split(f'{label}="', 1)[1].split('"', 1)[0]] += value
    return dict(found)


def metric_where(values: dict[str, float], name: str, label: str, value: str) -> dict[str, float]:
    """The series of ``name`` whose ``label`` is ``value``, as ``{series: value}``."""
    return {
        series: v
        for series, v in values.items()
        if series.split("{", 1)[0] == name and f'{label}="{value}"' in series
    }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


def minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = set(a) | set(b)
    return {k: a.get(k, 0) - b.get(k, 0) for k in keys if a.get(k, 0) - b.get(k, 0)}


# -- the client ------------------------------------------------------------------------------------------


class EmulatorRequests:
    """The emulator's request counters (``/debug/localcluster/requests``): every HTTP client's requests, the
    operator's and this script's, by "verb resource" (the node agent's are counted apart, and not here)."""

    includes_this_script = True

    def __init__(self, url: str) -> None:
        self.url = url

    async def snapshot(self, session: aiohttp.ClientSession) -> dict[str, int]:
        async with session.get(self.url + "/debug/localcluster/requests") as response:
            counts: dict[str, int] = await response.json()
            return counts

    async def answer(self, session: aiohttp.ClientSession) -> dict[str, int]:
        """One request through the API server (its answer time is the server's lag) and the counts."""
        return await self.snapshot(session)


def short_user(username: str) -> str:
    """``system:serviceaccount:kube-system:statefulset-controller`` → ``statefulset-controller``."""
    if username == OPERATOR_USER:
        return "operator"
    if username == "kubernetes-admin":
        return "this script"
    if username.startswith("system:serviceaccount:"):
        return username.rsplit(":", 1)[1]
    if username.startswith("system:node:"):
        return "node " + username.split(":", 2)[2]
    return username.removeprefix("system:")


class AuditRequests:
    """Requests as kube-apiserver's audit log records them, read incrementally from the file.

    Each request is written once per stage (``RequestReceived`` is omitted by the policy): ``ResponseComplete``
    for most, ``ResponseStarted`` then ``ResponseComplete`` for watches and exec. A request counts once, by its
    ``auditID``. The operator's requests are keyed "verb resource" (and "total"), like the emulator's counters;
    every other client's are keyed "@user verb resource" (and "@user total"), so a figure about the operator
    never includes them."""

    includes_this_script = False

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.counts: collections.Counter[str] = collections.Counter()
        self._offset = 0
        self._partial = b""
        self._started: set[str] = set()

    def read(self) -> dict[str, int]:
        with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as log:
            log.seek(self._offset)
            chunk = log.read()
            self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n") if chunk else [self._partial]
        self._partial = lines.pop()
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._add(json.loads(line))
        return dict(self.counts)

    def _add(self, event: dict[str, Any]) -> None:
        audit_id, stage = event["auditID"], event["stage"]
        if stage == "ResponseStarted":
            self._started.add(audit_id)
        elif audit_id in self._started:
            self._started.discard(audit_id)
            return
        ref = event.get("objectRef")
        if ref:
            what = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        else:
            what = event.get("requestURI", "").split("?", 1)[0]
        user = (event.get("user") or {}).get("username", "")
        refused = (event.get("responseStatus") or {}).get("code", 200) >= 400
        if user == OPERATOR_USER:
            # Every request, refused or not, as the emulator counts them; the refused ones also apart.
            self.counts[f"{event['verb']} {what}"] += 1
            self.counts["total"] += 1
            self.counts["refused"] += refused
            return
        # Another client: its successful requests by verb and resource (what the pace figures count), the
        # refused ones apart (a controller retrying a write the server refuses).
        prefix = f"@{short_user(user)} "
        self.counts[f"{prefix}{'refused ' if refused else ''}{event['verb']} {what}"] += 1
        self.counts[f"{prefix}total"] += 1
        self.counts[f"{prefix}refused"] += refused

    async def snapshot(self, session: aiohttp.ClientSession) -> dict[str, int]:
        return self.read()

    async def answer(self, session: aiohttp.ClientSession) -> dict[str, int]:
        """``/livez`` (not audited) for the server's lag, then the counts."""
        async with session.get(self.url + "/livez") as response:
            await response.read()
        return self.read()


def operator_only(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if not k.startswith("@")}


def by_client(counts: dict[str, int]) -> dict[str, int]:
    """Every other client's request totals, by user (from "@user total" keys), and how many of them the
    server refused ("user refused")."""
    found = {}
    for key, value in counts.items():
        if key.startswith("@") and key.endswith((" total", " refused")):
            user, what = key[1:].rsplit(" ", 1)
            found[user if what == "total" else f"{user} refused"] = value
    return found


class Api:
    """Raw HTTPS to the cluster from its kubeconfig (a bearer token or a client certificate); counts every
    request it sends like the server does."""

    def __init__(self, kubeconfig: str, concurrency: int, *, audit_log: Path | None = None) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.url = cluster["server"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.ssl = ssl.create_default_context(cadata=ca)
        self.headers = {"Accept": "application/json"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        else:
            # ssl loads a certificate chain from files only: a private directory for the admin's key.
            with tempfile.TemporaryDirectory(prefix="bench-client-") as directory:
                cert, key = Path(directory, "client.crt"), Path(directory, "client.key")
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                self.ssl.load_cert_chain(cert, key)
        self.requests: EmulatorRequests | AuditRequests = (
            AuditRequests(audit_log, self.url) if audit_log is not None else EmulatorRequests(self.url)
        )
        self.concurrency = concurrency
        self.sent: collections.Counter[str] = collections.Counter()
        self.session: aiohttp.ClientSession | None = None
        self.watch_session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=120)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=self.concurrency),
            headers=self.headers,
            timeout=timeout,
        )
        self.watch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=0),
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )

    async def close(self) -> None:
        for session in (self.session, self.watch_session):
            if session is not None:
                await session.close()

    def count(self, key: str) -> None:
        self.sent[key] += 1
        self.sent["total"] += 1

    async def request(
        self, verb: str, resource: str, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        assert self.session is not None
        self.count(f"{verb} {resource}")
        async with self.session.request(method, self.url + path, json=body) as response:
            payload = await response.read()
            return response.status, json.loads(payload) if payload else None

    async def server_counts(self) -> dict[str, int]:
        """The server's request counts: the emulator's counters (this endpoint is not counted), or the audit
        log's on the real control plane."""
        assert self.session is not None
        return await self.requests.snapshot(self.session)

    def operator_requests(
        self,
        after: dict[str, int],
        before: dict[str, int],
        sent_after: dict[str, int],
        sent_before: dict[str, int],
    ) -> dict[str, int]:
        """The operator's requests between two snapshots: the emulator counts this script's too (taken off
        here); the audit log names the operator's user."""
        if self.requests.includes_this_script:
            return minus(delta(after, before), delta(sent_after, sent_before))
        return operator_only(delta(after, before))

    async def quiet(self, settle: float, limit: float) -> dict[str, int]:
        """Wait until the cluster has served no request for ``settle`` seconds (at most ``limit``): on the
        real control plane, no request of the operator's (its controllers and node never rest)."""
        deadline = time.monotonic() + limit
        last = await self.server_counts()
        since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            now = await self.server_counts()
            if now.get("total") != last.get("total"):
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                break
        return last

    async def watch(
        self,
        resource: str,
        path: str,
        on_event: Callable[[str, dict[str, Any], float], None],
        opened: asyncio.Event,
    ) -> None:
        """A watch that resumes where its stream ended, until cancelled.

        The emulator keeps a stream open for at least 30 minutes; kube-apiserver ends one whenever it likes
        (its watch cache drops a watcher that falls behind, as this script does on a saturated machine). A
        resumed stream starts at the last resourceVersion seen, so no event is lost; after a 410 (history
        compacted) it starts from the current state, every object ADDED again (the trackers keep the first
        time they saw each step)."""
        assert self.watch_session is not None
        sep = "&" if "?" in path else "?"
        resource_version, resumed = "", 0
        while True:
            self.count(f"watch {resource}")
            query = "watch=true" + (f"&resourceVersion={resource_version}" if resource_version else "")
            try:
                async with self.watch_session.get(f"{self.url}{path}{sep}{query}") as response:
                    opened.set()
                    buffer = b""
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        while b"\n" in buffer:
                            line, buffer = buffer.split(b"\n", 1)
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                if obj.get("code") == 410:
                                    resource_version = ""
                                raise ValueError(f"watch error {obj.get('code')}: {obj.get('message')}")
                            resource_version = obj["metadata"].get("resourceVersion", resource_version)
                            on_event(event["type"], obj, time.perf_counter())
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if resumed < 3:
                    print(f"  watch {resource}: {type(exc).__name__}: {exc}; resuming", file=sys.stderr)
                await asyncio.sleep(0.2)
            resumed += 1
            if resumed <= 3:
                print(
                    f"  watch {resource} stream ended; resumed at {resource_version or 'now'}",
                    flush=True,
                )


# -- what the watches saw --------------------------------------------------------------------------------


@dataclass
class Tracker:
    sent: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    statefulset: dict[str, float] = field(default_factory=dict)
    pod_created: dict[str, float] = field(default_factory=dict)
    pod_ready: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    first_status: dict[str, float] = field(default_factory=dict)
    live: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    events: collections.Counter[str] = field(default_factory=collections.Counter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def handler(self, kind: str) -> Callable[[str, dict[str, Any], float], None]:
        def on_event(event_type: str, obj: dict[str, Any], at: float) -> None:
            meta = obj.get("metadata") or {}
            name = meta.get("name", "")
            self.events[kind] += 1
            if event_type == "DELETED":
                self.live[kind].discard(name)
            elif event_type in ("ADDED", "MODIFIED"):
                self.live[kind].add(name)
                owner = (meta.get("labels") or {}).get(NAME_LABEL, name)
                if kind == "devservers":
                    phase = (obj.get("status") or {}).get("phase")
                    if phase:
                        self.first_status.setdefault(name, at)
                    if phase == "Running":
                        self.running.setdefault(name, at)
                elif kind == "statefulsets":
                    self.statefulset.setdefault(owner, at)
                elif kind == "pods":
                    self.pod_created.setdefault(owner, at)
                    conditions = (obj.get("status") or {}).get("conditions") or []
                    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                        self.pod_ready.setdefault(owner, at)
            self.changed.set()

        return on_event

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not predicate():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self.changed.wait()
        return True


# -- one size --------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """The processes whose CPU is measured: the cluster's own (by name: the emulator+node process, or each
    control-plane component and the node agent), the node's (its pods are its descendants), the operator."""

    cluster: dict[str, int]
    node_pid: int
    operator: subprocess.Popen[bytes]
    operator_health: str
    operator_metrics: str

    async def metrics(self) -> dict[str, float]:
        """The operator's counters (its ``/metrics``)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.get(self.operator_metrics) as response,
        ):
            return parse_metrics(await response.text())

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds of the cluster (all its processes), the operator and this script."""
        return sum(self.parts().values()), cpu_seconds(self.operator.pid), cpu_seconds(os.getpid())

    def parts(self) -> dict[str, float]:
        """CPU seconds of each of the cluster's own processes (0 for one that is gone)."""
        sample = {}
        for name, pid in self.cluster.items():
            try:
                sample[name] = cpu_seconds(pid)
            except (OSError, ValueError, IndexError):
                sample[name] = 0.0
        return sample

    def pods_cpu(self) -> float:
        """CPU seconds of the processes below the node (shims and container commands; live, and ended)."""
        total = children_cpu_seconds(self.node_pid)
        for pid in descendants(self.node_pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_seconds(pid)
        return total

    def waits(self) -> tuple[float, float]:
        return sum(run_queue_wait(pid) for pid in self.cluster.values()), run_queue_wait(self.operator.pid)

    def rss(self) -> float:
        total = 0.0
        for pid in self.cluster.values():
            with contextlib.suppress(OSError, ValueError):
                total += rss_mb(pid)
        return total


class Responsiveness:
    """Every 100 ms: the cluster's request counters (``/debug/localcluster/requests``) and the operator's
    liveness endpoint. Their answer times are the lag of each event loop (is one saturated?); the counters
    say when the operator's requests reached the API server, which no watch delay can blur."""

    def __init__(self, api: Api, operator_health: str) -> None:
        self.api = api
        self.operator_health = operator_health
        self.cluster: list[float] = []
        self.operator: list[float] = []
        self.counts: list[tuple[float, dict[str, int]]] = []
        self._task: asyncio.Task[None] | None = None

    async def _counts(self) -> None:
        assert self.api.watch_session is not None
        started = time.perf_counter()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            counts = await self.api.requests.answer(self.api.watch_session)
            self.counts.append((time.perf_counter(), counts))
        self.cluster.append(time.perf_counter() - started)

    async def _health(self, session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(self.operator_health) as response:
                await response.read()
        self.operator.append(time.perf_counter() - started)

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as plain:
            while True:
                await asyncio.gather(self._counts(), self._health(plain))
                await asyncio.sleep(0.1)

    def start(self) -> None:
        self.cluster.clear()
        self.operator.clear()
        self.counts.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def reached(self, key: str, base: dict[str, int], target: int) -> float | None:
        """When the counter ``key`` first reached ``base[key] + target`` (perf_counter), if it did."""
        for at, counts in self.counts:
            if counts.get(key, 0) - base.get(key, 0) >= target:
                return at
        return None


def stage(values: dict[str, float], starts: dict[str, float]) -> list[float]:
    return [values[k] - starts[k] for k in values if k in starts]


async def delete_namespace(api: Api, namespace: str, timeout: float = 300) -> None:
    """Delete the namespace and wait until it is gone, so that no clean-up overlaps the next measurement."""
    await api.request("delete", "namespaces", "DELETE", f"/api/v1/namespaces/{namespace}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = await api.request("get", "namespaces", "GET", f"/api/v1/namespaces/{namespace}")
        if status == 404:
            return
        await asyncio.sleep(0.5)
    print(f"  namespace {namespace} still there {timeout:.0f} s after its deletion", file=sys.stderr)


async def create_namespace(api: Api, namespace: str) -> None:
    """Create the namespace and wait for its ``default`` ServiceAccount: until the service-account controller
    has made it, the real API server refuses every pod there, and the StatefulSet controller backs off."""
    await api.request("create", "namespaces", "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _ = await api.request(
            "get", "serviceaccounts", "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
        )
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"namespace {namespace!r} got no default ServiceAccount within 60 s")


async def run_size(
    api: Api, procs: Processes, args: argparse.Namespace, n: int, rest: bool
) -> dict[str, Any]:
    namespace = f"bench-n{n}"
    result: dict[str, Any] = {"n": n}
    await create_namespace(api, namespace)
    tracker = Tracker()
    watches = []
    paths = {
        "devservers": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/devservers",
        "statefulsets": f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        "services": f"/api/v1/namespaces/{namespace}/services",
        "pods": f"/api/v1/namespaces/{namespace}/pods?labelSelector={MANAGED_SELECTOR}",
        # Only counted (the watch events the operator's claim watch is sent too), not waited for.
        "persistentvolumeclaims": f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
        f"?labelSelector={MANAGED_SELECTOR}",
    }
    if not args.stage_watches:
        paths = {"devservers": paths["devservers"]}
    for kind, path in paths.items():
        opened = asyncio.Event()
        watches.append(asyncio.create_task(api.watch(kind, path, tracker.handler(kind), opened)))
        async with asyncio.timeout(30):
            await opened.wait()
    names = [f"ds-{n}-{i:05d}" for i in range(n)]
    body_for = lambda name: {  # noqa: E731
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DevServer",
        "metadata": {"name": name},
        "spec": {"owner": "bench", "flavor": args.flavor},
    }
    collection = paths["devservers"]
    memory_before = mem_available_gib()

    # -- create ----------------------------------------------------------------------------------------
    before, sent_before = await api.quiet(args.settle, 30), dict(api.sent)
    metrics_before, events_before = await procs.metrics(), dict(tracker.events)
    cpu_before, waits_before, pods_cpu_before = procs.cpu(), procs.waits(), procs.pods_cpu()
    parts_before = procs.parts()
    host_before = host_busy_seconds()
    lag = Responsiveness(api, procs.operator_health)
    lag.start()
    failures: collections.Counter[int] = collections.Counter()
    request_times: list[float] = []
    gate = asyncio.Semaphore(args.concurrency)

    async def create(name: str) -> None:
        async with gate:
            tracker.sent[name] = started = time.perf_counter()
            status, payload = await api.request("create", "devservers", "POST", collection, body_for(name))
            tracker.accepted[name] = done = time.perf_counter()
            request_times.append(done - started)
            if status != 201:
                failures[status] += 1
                if sum(failures.values()) <= 3:
                    print(f"  create {name}: {status} {str(payload)[:300]}", file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(create(name) for name in names))
    t_submitted = time.perf_counter()
    timeout = args.timeout or 60 + n * 0.8
    all_running = await tracker.until(lambda: len(tracker.running) >= n, timeout)
    t_running = max(tracker.running.values()) if all_running else time.perf_counter()
    cpu_running, waits_running, pods_cpu_running = procs.cpu(), procs.waits(), procs.pods_cpu()
    parts_running = procs.parts()
    host_running = host_busy_seconds()
    await lag.stop()
    sts_done = lag.reached("create statefulsets", before, n)
    services_done = lag.reached("create services", before, n)
    # On the real control plane, when its StatefulSet controller had created all N pods and the scheduler
    # had bound them (the audit log's counts; the emulator does both in-process, uncounted).
    pods_done = lag.reached("@statefulset-controller create pods", before, n)
    bound_done = lag.reached("@kube-scheduler create pods/binding", before, n)
    if args.dump:
        series = [
            (round(at - t0, 2), {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)})
            for at, counts in lag.counts
        ]
        Path(args.dump).with_suffix(f".n{n}.counts.json").write_text(json.dumps(series))
    after = await api.quiet(args.settle, 120)
    cpu_after, parts_after, pods_cpu_after = procs.cpu(), procs.parts(), procs.pods_cpu()
    host_after = host_busy_seconds()
    metrics_after = await procs.metrics()
    operator_metrics = {k: v - metrics_before.get(k, 0.0) for k, v in metrics_after.items()}
    operator_create = api.operator_requests(after, before, dict(api.sent), sent_before)
    latencies = stage(tracker.running, tracker.sent)
    elapsed = t_running - t0
    result.update(
        all_running=all_running,
        running=len(tracker.running),
        failures=dict(failures),
        submit_s=t_submitted - t0,
        submit_rate=n / (t_submitted - t0),
        request_p50=percentile(request_times, 50),
        request_p99=percentile(request_times, 99),
        elapsed=elapsed,
        rate=len(tracker.running) / elapsed,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        max=max(latencies, default=float("nan")),
        stages={
            "create → StatefulSet (operator)": stage(tracker.statefulset, tracker.sent),
            "→ pod (cluster's controller)": stage(tracker.pod_created, tracker.statefulset),
            "→ pod Ready (cluster's kubelet)": stage(tracker.pod_ready, tracker.pod_created),
            "→ DevServer Running (operator)": stage(tracker.running, tracker.pod_ready),
        },
        cluster_cpu_create=cpu_running[0] - cpu_before[0],
        cluster_parts_create={k: v - parts_before.get(k, 0.0) for k, v in parts_running.items()},
        operator_cpu_create=cpu_running[1] - cpu_before[1],
        cluster_cpu_settle=cpu_after[0] - cpu_running[0],
        bench_cpu_create=cpu_running[2] - cpu_before[2],
        pods_cpu_create=pods_cpu_running - pods_cpu_before,
        host_cpus=len(os.sched_getaffinity(0)),
        host_busy_create=host_running - host_before,
        cluster_wait_create=waits_running[0] - waits_before[0],
        operator_statefulsets_s=(sts_done - t0) if sts_done else None,
        operator_services_s=(services_done - t0) if services_done else None,
        controller_pods_s=(pods_done - t0) if pods_done else None,
        scheduler_bound_s=(bound_done - t0) if bound_done else None,
        operator_wait_create=waits_running[1] - waits_before[1],
        cluster_lag=(percentile(lag.cluster, 50), percentile(lag.cluster, 99), max(lag.cluster, default=0)),
        operator_lag=(
            percentile(lag.operator, 50),
            percentile(lag.operator, 99),
            max(lag.operator, default=0),
        ),
        operator_create=operator_create,
        operator_cpu_settled=cpu_after[1] - cpu_before[1],
        cluster_parts_settled={k: v - parts_before.get(k, 0.0) for k, v in parts_after.items()},
        pods_cpu_settled=pods_cpu_after - pods_cpu_before,
        bench_cpu_settled=cpu_after[2] - cpu_before[2],
        host_busy_settled=host_after - host_before,
        operator_metrics=operator_metrics,
        watch_events_seen={k: v - events_before.get(k, 0) for k, v in tracker.events.items()},
        others_create=by_client(delta(after, before)),
        create_requests=operator_create.get("total", 0) / n,
        memory_used_gib=memory_before - mem_available_gib(),
        processes=len(descendants(procs.node_pid)),
        cluster_rss=procs.rss(),
        pods_pss=tree_rss_mb(procs.node_pid),
        operator_rss_loaded=rss_mb(procs.operator.pid),
        load=os.getloadavg()[0],
    )
    print(
        f"  N={n}: {len(tracker.running)}/{n} Running in {elapsed:.1f} s; operator made "
        f"{operator_create.get('total', 0)} requests; settling took {time.perf_counter() - t_running:.1f} s",
        flush=True,
    )

    # -- rest ------------------------------------------------------------------------------------------
    if rest:
        print(f"  at rest with {n} DevServers for {args.rest_seconds:.0f} s...", flush=True)
        rest_before = await api.server_counts()
        sent_rest = dict(api.sent)
        pid = procs.operator.pid
        start_cpu, start = cpu_seconds(pid), time.perf_counter()
        cluster_cpu_start, parts_start = procs.cpu()[0], procs.parts()
        pods_cpu_start, host_start = procs.pods_cpu(), host_busy_seconds()
        samples = [rss_mb(pid)]
        while time.perf_counter() - start < args.rest_seconds:
            await asyncio.sleep(min(5.0, args.rest_seconds - (time.perf_counter() - start)))
            samples.append(rss_mb(pid))
        span = time.perf_counter() - start
        cpu = cpu_seconds(pid) - start_cpu
        rest_after = await api.server_counts()
        result["rest"] = {
            "n": n,
            "seconds": span,
            "cpu_s": cpu,
            "core_pct": 100 * cpu / span,
            "rss_start": samples[0],
            "rss_max": max(samples),
            "rss_end": samples[-1],
            "requests": api.operator_requests(rest_after, rest_before, dict(api.sent), sent_rest),
            "others": by_client(delta(rest_after, rest_before)),
            "cluster_core_pct": 100 * (procs.cpu()[0] - cluster_cpu_start) / span,
            "parts_core_pct": {
                k: 100 * (v - parts_start.get(k, 0.0)) / span for k, v in procs.parts().items()
            },
            "pods_core_pct": 100 * (procs.pods_cpu() - pods_cpu_start) / span,
            "host_core_pct": 100 * (host_busy_seconds() - host_start) / span,
            "running": len(tracker.running),
            "phases": collections.Counter(
                "Running" if name in tracker.running else "other" for name in names
            ),
        }

    # -- delete ----------------------------------------------------------------------------------------
    before, sent_before = await api.quiet(args.settle, 30), dict(api.sent)
    cpu_before = procs.cpu()

    async def delete(name: str) -> None:
        async with gate:
            status, payload = await api.request("delete", "devservers", "DELETE", f"{collection}/{name}")
            if status not in (200, 202):
                print(f"  delete {name}: {status} {str(payload)[:200]}", file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(delete(name) for name in names))
    kinds = [kind for kind in paths if kind != "persistentvolumeclaims"]
    gone = await tracker.until(lambda: not any(tracker.live[k] for k in kinds), timeout)
    t_gone = time.perf_counter()
    after = await api.quiet(args.settle, 120)
    cpu_after = procs.cpu()
    operator_delete = api.operator_requests(after, before, dict(api.sent), sent_before)
    result.update(
        all_gone=gone,
        left={k: len(tracker.live[k]) for k in kinds if tracker.live[k]},
        delete_s=t_gone - t0,
        operator_delete=operator_delete,
        delete_requests=operator_delete.get("total", 0) / n,
        cluster_cpu_delete=cpu_after[0] - cpu_before[0],
        operator_cpu_delete=cpu_after[1] - cpu_before[1],
    )
    for task in watches:
        task.cancel()
    await asyncio.gather(*watches, return_exceptions=True)
    if args.dump:
        wall = time.time() - time.perf_counter()
        timeline = {
            name: {
                step: round(wall + getattr(tracker, step)[name], 3)
                for step in (
                    "sent",
                    "accepted",
                    "statefulset",
                    "first_status",
                    "pod_created",
                    "pod_ready",
                    "running",
                )
                if name in getattr(tracker, step)
            }
            for name in names
        }
        Path(args.dump).with_suffix(f".n{n}.json").write_text(json.dumps(timeline, indent=1))
    await delete_namespace(api, namespace)
    print(
        f"  N={n}: deleted, all gone in {t_gone - t0:.1f} s; operator made "
        f"{operator_delete.get('total', 0)} requests",
        flush=True,
    )
    return result


# -- the emulator alone ------------------------------------------------------------------------------------


def baseline_objects(
    args: argparse.Namespace, namespace: str, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The StatefulSet and Service the operator would apply for a DevServer, built by the same code
    (``devservers_sdk.manifests``), without the owner reference and the operator's label (so it ignores them)."""
    sys.path.insert(0, str(ROOT))
    from devservers_sdk.manifests import OperatorConfig, build_objects
    from devservers_sdk.models import DevServer, DevServerFlavor

    devserver = DevServer.from_manifest(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DevServer",
            "metadata": {"name": name, "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000000"},
            "spec": {"owner": "bench", "flavor": args.flavor},
        }
    )
    flavor = DevServerFlavor.from_manifest(args.flavor_body)
    desired = build_objects(
        devserver, flavor, OperatorConfig(command=tuple(shlex.split(args.container_command)))
    )
    objects = []
    for obj in (desired.statefulset, desired.service):
        obj = json.loads(json.dumps(obj))
        obj["metadata"].pop("ownerReferences", None)
        for labels in (
            obj["metadata"].get("labels"),
            ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels"),
        ):
            if labels is not None:
                labels["app.kubernetes.io/managed-by"] = "bench"
        objects.append(obj)
    return objects[0], objects[1]


async def run_baseline(api: Api, procs: Processes, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """N StatefulSets and Services created by this script as the operator would: what the emulator alone does."""
    namespace = f"bench-emulator-n{n}"
    await create_namespace(api, namespace)
    tracker = Tracker()
    paths = {
        "statefulsets": f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        "pods": f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/managed-by=bench",
    }
    watches = []
    for kind, path in paths.items():
        opened = asyncio.Event()
        watches.append(asyncio.create_task(api.watch(kind, path, tracker.handler(kind), opened)))
        async with asyncio.timeout(30):
            await opened.wait()
    names = [f"em-{n}-{i:05d}" for i in range(n)]
    placeholder = "bench-placeholder-name"
    template = baseline_objects(args, namespace, placeholder)
    gate = asyncio.Semaphore(args.concurrency)
    failures: collections.Counter[int] = collections.Counter()
    await api.quiet(args.settle, 30)
    cpu_before, waits_before, host_before = procs.cpu(), procs.waits(), host_busy_seconds()
    pods_cpu_before = procs.pods_cpu()
    lag = Responsiveness(api, procs.operator_health)
    lag.start()

    async def create(name: str) -> None:
        statefulset, service = (json.loads(json.dumps(obj).replace(placeholder, name)) for obj in template)
        async with gate:
            tracker.sent[name] = time.perf_counter()
            for resource, path, body in (
                ("statefulsets", paths["statefulsets"], statefulset),
                ("services", f"/api/v1/namespaces/{namespace}/services", service),
            ):
                status, payload = await api.request("create", resource, "POST", path, body)
                if status != 201:
                    failures[status] += 1
                    if sum(failures.values()) <= 3:
                        print(f"  create {resource} {name}: {status} {str(payload)[:300]}", file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(create(name) for name in names))
    timeout = args.timeout or 60 + n * 0.8
    ready = await tracker.until(lambda: len(tracker.pod_ready) >= n, timeout)
    t_ready = max(tracker.pod_ready.values()) if ready else time.perf_counter()
    cpu_ready, waits_ready, host_ready = procs.cpu(), procs.waits(), host_busy_seconds()
    pods_cpu = procs.pods_cpu() - pods_cpu_before
    await lag.stop()
    latencies = stage(tracker.pod_ready, tracker.sent)
    result = {
        "n": n,
        "ready": len(tracker.pod_ready),
        "elapsed": t_ready - t0,
        "rate": len(tracker.pod_ready) / (t_ready - t0),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "cluster_cpu": cpu_ready[0] - cpu_before[0],
        "cluster_wait": waits_ready[0] - waits_before[0],
        "pods_cpu": pods_cpu,
        "host_busy": host_ready - host_before,
        "failures": dict(failures),
        "cluster_lag": (
            percentile(lag.cluster, 50),
            percentile(lag.cluster, 99),
            max(lag.cluster, default=0),
        ),
    }
    # The StatefulSets first: a namespace being deleted loses its pods before its StatefulSets, whose
    # controller would then try to recreate them (refused) while the next run is measured.
    for resource, collection in (
        ("statefulsets", paths["statefulsets"]),
        ("services", f"/api/v1/namespaces/{namespace}/services"),
    ):
        await api.request("deletecollection", resource, "DELETE", collection)
    await tracker.until(lambda: not tracker.live["pods"], timeout)
    await delete_namespace(api, namespace)
    for task in watches:
        task.cancel()
    await asyncio.gather(*watches, return_exceptions=True)
    alone = "emulator" if api.requests.includes_this_script else "control plane"
    print(
        f"  {alone} alone, N={n}: {result['ready']}/{n} pods Ready in {result['elapsed']:.1f} s", flush=True
    )
    return result


# -- set-up ----------------------------------------------------------------------------------------------


def kubectl(kubeconfig: str, *args: str, input_text: str | None = None) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        input=input_text,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def flavor_manifest(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DevServerFlavor",
        "metadata": {"name": args.flavor},
        "spec": {
            "description": "benchmark flavor: tiny requests so thousands fit the local node",
            "resources": {
                "requests": {"cpu": args.flavor_cpu, "memory": args.flavor_memory},
                "limits": {"memory": args.flavor_memory},
            },
        },
    }


def start_cluster(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = workdir / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "devservers_sdk.localcluster",
        "serve",
        "--kubeconfig",
        str(kubeconfig),
        "--state-dir",
        str(workdir / "state"),
    ]
    for item in args.node_capacity.split(","):
        command += ["--node-capacity", item.strip()]
    log = (workdir / "cluster.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.isolation != "auto":
        env["LOCALCLUSTER_ISOLATION"] = args.isolation
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
    )
    deadline = time.monotonic() + 60
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                f"the local cluster did not start:\n{(workdir / 'cluster.log').read_text()[-3000:]}"
            )
        time.sleep(0.05)
    return process, str(kubeconfig)


def start_real_cluster(args: argparse.Namespace, workdir: Path) -> Any:
    """The real control plane and our node agent (``LocalCluster(control_plane="kubernetes")``): etcd and the
    kube-* binaries (built once, cached) and the agent are child processes of this script."""
    sys.path.insert(0, str(ROOT))
    from devservers_sdk.localcluster import LocalCluster

    if args.isolation != "auto":
        os.environ["LOCALCLUSTER_ISOLATION"] = args.isolation  # the node agent inherits it
    capacity = dict(item.strip().split("=", 1) for item in args.node_capacity.split(","))
    for attempt in range(1, 4):
        cluster = LocalCluster(
            state_dir=workdir / f"state-{attempt}",
            control_plane="kubernetes",
            node_capacity=capacity,
            progress=lambda line: print(f"  {line}", flush=True),
        )
        try:
            cluster.start()
            return cluster
        except RuntimeError as exc:
            # The components' ports are picked free, then bound by the component moments later: on a busy
            # machine another process can take one in between. Fresh ports, in a fresh state dir.
            if "address already in use" not in str(exc) or attempt == 3:
                raise
            print(
                f"  the control plane lost a port race ({str(exc).splitlines()[0]}); starting again",
                flush=True,
            )
    raise AssertionError("unreachable")


def real_processes(cluster: Any) -> tuple[dict[str, int], int]:
    """The pids of the control plane's components and of the node agent, and the node agent's."""
    control_plane = cluster.real.control_plane
    pids = {name: control_plane.pid(name) for name in REAL_COMPONENTS}
    node = cluster.real.node_pid()
    missing = [name for name, pid in pids.items() if pid is None] + (["node agent"] if node is None else [])
    if missing:
        raise SystemExit(f"the real control plane is not running: {', '.join(missing)} stopped")
    return {**pids, "node agent": node}, node


def operator_identity(kubeconfig: str, workdir: Path) -> str:
    """A kubeconfig for the operator's own ServiceAccount, with only the RBAC ``operator/deploy`` ships: the
    namespace, the ServiceAccount and its ClusterRole and binding, then a token from the TokenRequest API."""
    deploy = ROOT / "operator" / "deploy"
    kubectl(
        kubeconfig, "apply", "-f", str(deploy / "namespace.yaml"), "-f", str(deploy / "operator-rbac.yaml")
    )
    token = kubectl(
        kubeconfig, "create", "token", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=24h"
    ).strip()
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": OPERATOR_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": OPERATOR_ACCOUNT}}],
        "current-context": "bench",
    }
    path = workdir / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return str(path)


PROFILED_OPERATOR = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.process_time)
path = sys.argv.pop(1)
profile.enable()
try:
    runpy.run_module("devservers_operator", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(path)
"""


def start_operator(
    args: argparse.Namespace, kubeconfig: str, workdir: Path, port: int, metrics_port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)]),
        "DEVSERVERS_LIVENESS": f"http://127.0.0.1:{port}/healthz",
        "DEVSERVERS_METRICS": f"http://127.0.0.1:{metrics_port}/metrics",
        "DEVSERVERS_CONTAINER_COMMAND": args.container_command,
    }
    env.pop("DEVSERVERS_NAMESPACES", None)
    log = (workdir / "operator.log").open("wb")
    command = ["-m", "devservers_operator"]
    if args.profile_operator:
        # cProfile on the process's CPU clock, not the wall clock: on a shared machine the wall clock
        # charges a function for the time other processes held the CPU.
        command = ["-c", PROFILED_OPERATOR, str(Path(args.profile_operator).resolve())]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the operator did not start:\n{(workdir / 'operator.log').read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response,
        ):
            if response.status == 200:
                return process
        time.sleep(0.1)


# -- report ----------------------------------------------------------------------------------------------


PLANE_TITLES = {
    "emulator": "emulator",
    "kubernetes": "real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, node agent)",
}


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def top(counts: dict[str, int], n: int) -> str:
    items = sorted(
        ((k, v) for k, v in counts.items() if k not in ("total", "refused")), key=lambda kv: -kv[1]
    )
    return ", ".join(f"{k} {v / n:.2f}" for k, v in items) or "none"


def clients(counts: dict[str, int], n: int) -> str:
    """Other clients' requests per DevServer, each with how many the server refused."""
    users = sorted((k for k in counts if not k.endswith(" refused")), key=lambda k: -counts[k])
    return (
        ", ".join(
            f"{user} {counts[user] / n:.2f}"
            + (f" ({counts[f'{user} refused'] / n:.2f} refused)" if counts.get(f"{user} refused") else "")
            for user in users
        )
        or "none"
    )


def cost(r: dict[str, Any]) -> dict[str, Any]:
    """Issue 17's figures for one N: the operator's own cost per DevServer, first create until settled."""
    n, m = r["n"], r["operator_metrics"]
    events = metric_by(m, "devservers_operator_watch_events_total", "kind")
    outcomes = metric_by(m, "devservers_operator_watch_events_total", "outcome")
    verbs = metric_by(m, "devservers_operator_api_requests_total", "verb")
    # Pods, StatefulSets and Services come from the operator's own watches (ownedwatch.py), which count every
    # event they receive and hand on only those that change what the operator reads; of those, "joined"
    # found a reconcile due already. The figure compared with the target: kopf's events (DevServers,
    # flavors, ConfigMaps) plus the owned kinds' events handed on that did not merely join a due reconcile
    # (an "echo" is counted too: it was handed on and examined, though it woke nothing).
    own_outcomes: dict[str, dict[str, float]] = {
        kind: metric_by(
            metric_where(m, "devservers_operator_watch_events_total", "kind", kind),
            "devservers_operator_watch_events_total",
            "outcome",
        )
        for kind in OWN_WATCH_KINDS
    }
    own_received = {kind: sum(o.values()) for kind, o in own_outcomes.items()}
    own_woke = {
        kind: sum(v for k, v in o.items() if k not in ("unchanged", "joined")) for kind, o in own_outcomes.items()
    }
    return {
        "cpu_ms": r["operator_cpu_settled"] / n * 1000,
        "events": (sum(events.values()) - sum(own_received.values()) + sum(own_woke.values())) / n,
        "events_received": sum(events.values()) / n,
        "own_events_received": sum(own_received.values()) / n,
        "own_events_woke": sum(own_woke.values()) / n,
        "own_events_reconciled": sum(
            v for o in own_outcomes.values() for k, v in o.items() if k in ("reconcile", "progress")
        ) / n,
        "own_events_by_kind": {
            kind: (own_received[kind] / n, own_woke[kind] / n, {k: v / n for k, v in sorted(
                own_outcomes[kind].items(), key=lambda kv: -kv[1])})
            for kind in OWN_WATCH_KINDS
        },
        "events_by_kind": {k: v / n for k, v in sorted(events.items(), key=lambda kv: -kv[1])},
        "events_by_outcome": {k: v / n for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])},
        "events_seen": sum(r["watch_events_seen"].values()) / n,
        "events_seen_by_kind": {k: v / n for k, v in r["watch_events_seen"].items()},
        "status_writes": metric_sum(m, "devservers_operator_status_writes_total") / n,
        "requests": r["create_requests"],
        "own_requests": metric_sum(m, "devservers_operator_api_requests_total") / n,
        "own_requests_by_verb": {k: v / n for k, v in sorted(verbs.items(), key=lambda kv: -kv[1])},
        "reconciles": metric_sum(m, "devservers_operator_reconciles_total") / n,
    }


def cost_report(results: list[dict[str, Any]], real: bool) -> None:
    """The four figures of issue 17 beside their targets, what they are made of, and every process's CPU."""
    print(
        "the operator's cost per DevServer (issue 17), first create until the operator was quiet; counters "
        "from its /metrics, requests counted by the server:"
    )
    rows = [
        ("operator CPU (ms)", "cpu_ms", TARGET_OPERATOR_CPU_MS),
        ("watch events processed (kopf's + own handed on)", "events", TARGET_EVENTS),
        ("status writes / create", "status_writes", TARGET_STATUS_WRITES),
        ("API requests / standalone create", "requests", TARGET_COST_REQUESTS),
    ]
    for r in results:
        c = cost(r)
        print(f"  N={r['n']}:")
        for label, key, target in rows:
            print(f"    {label:<40} {c[key]:>7.2f}   target <= {target:g}  {mark(c[key] <= target)}")
        print(
            f"    watch events received {c['events_received']:.2f}: through kopf (DevServers, flavors, ConfigMaps)"
            f" {c['events_received'] - c['own_events_received']:.2f}, the operator's own watches"
            f" {c['own_events_received']:.2f}, of which {c['own_events_woke']:.2f} were handed on and not joined: "
            + "; ".join(
                f"{kind} {received:.2f} received, {woke:.2f} handed on ("
                + ", ".join(f"{k} {v:.2f}" for k, v in outcomes.items())
                + ")"
                for kind, (received, woke, outcomes) in c["own_events_by_kind"].items()
            )
            + f"; {c['own_events_reconciled']:.2f} of them woke a reconcile (reconcile, progress), so kopf's and"
            f" those: {c['events'] - c['own_events_woke'] + c['own_events_reconciled']:.2f}"
        )
        print(
            "    watch events received, by kind: "
            + ", ".join(f"{k} {v:.2f}" for k, v in c["events_by_kind"].items())
            + "; by outcome: "
            + ", ".join(f"{k} {v:.2f}" for k, v in c["events_by_outcome"].items())
        )
        print(
            f"    watch events sent on the same kinds (this script's watches see the same): {c['events_seen']:.2f} ("
            + ", ".join(f"{k} {v:.2f}" for k, v in c["events_seen_by_kind"].items())
            + ")"
        )
        print(
            f"    reconciles {c['reconciles']:.2f}; the operator's own count of its requests {c['own_requests']:.2f} ("
            + ", ".join(f"{k} {v:.2f}" for k, v in c["own_requests_by_verb"].items())
            + ")"
        )
        parts = {"operator": r["operator_cpu_settled"]}
        if real:
            parts.update(r["cluster_parts_settled"])
        else:
            parts["emulator (API server, controllers) + node/kubelet, one process"] = sum(
                r["cluster_parts_settled"].values()
            )
        parts["pod processes"] = r["pods_cpu_settled"]
        parts["this script"] = r["bench_cpu_settled"]
        parts["rest of the host (other processes)"] = r["host_busy_settled"] - sum(parts.values())
        print(
            "    CPU ms per DevServer by process: "
            + ", ".join(f"{k} {v / r['n'] * 1000:.1f}" for k, v in parts.items())
            + f"; whole host {r['host_busy_settled'] / r['n'] * 1000:.1f} (load average {r['load']:.1f})"
        )
    print()


def report(results: list[dict[str, Any]], args: argparse.Namespace, plane: str = "emulator") -> None:
    flavor_requests = (args.flavor_body.get("spec", {}).get("resources") or {}).get("requests") or {}
    requests = ", ".join(f"{k} {v}" for k, v in flavor_requests.items()) or "none"
    real = plane == "kubernetes"
    print()
    print(
        f"operator benchmark on the {PLANE_TITLES[plane]}: flavor {args.flavor} (requests {requests}), container "
        f"command {args.container_command!r} (DEVSERVERS_CONTAINER_COMMAND), pod sandbox {args.isolation!r} "
        f"(LOCALCLUSTER_ISOLATION), node capacity {args.node_capacity}, {os.cpu_count()} host CPUs shared with "
        "whatever else runs (see 'by other processes')"
    )
    if real:
        print(
            f"requests = the operator's requests ({OPERATOR_USER}) counted by kube-apiserver's audit log, from "
            f"the first create/delete until {args.settle:g} s without any request of the operator's"
        )
    else:
        print(
            "requests = operator's HTTP requests counted by the local cluster, minus this script's own, from the "
            f"first create/delete until {args.settle:g} s without any request"
        )
    print()
    header = (
        f"{'N':>5} {'all Running':>11} {'DS/s':>6} {'p50':>6} {'p99':>6} {'max':>6} {'submit/s':>8} "
        f"{'req p99':>7} {'req/create':>10} {'req/delete':>10} {'delete':>7} {'cl CPU':>6} {'op CPU':>6} "
        f"{'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['n']:>5} {r['elapsed']:>10.1f}s {r['rate']:>6.1f} {r['p50']:>5.2f}s {r['p99']:>5.2f}s "
            f"{r['max']:>5.2f}s {r['submit_rate']:>8.0f} {r['request_p99'] * 1000:>5.0f}ms "
            f"{r['create_requests']:>10.2f} {r['delete_requests']:>10.2f} {r['delete_s']:>6.1f}s "
            f"{r['cluster_cpu_create']:>5.1f}s {r['operator_cpu_create']:>5.1f}s {r['load']:>5.1f}"
        )
    print(
        "  (all Running: first create sent → last DevServer Running; DS/s: N / that; p50/p99/max: create sent → "
        "Running per DevServer;\n   submit/s: the client's own create rate; req p99: create request latency; "
        "cl/op CPU: cluster/operator CPU seconds from first create to all Running; load: 1-min load average)"
    )
    for r in results:
        if not r["all_running"] or r["failures"] or not r["all_gone"]:
            print(
                f"  N={r['n']}: {r['running']} Running, create failures {r['failures']}, left after delete "
                f"{r['left']}"
            )
    print()
    if any(r["stages"] for r in results) and args.stage_watches:
        print(
            "where the create→Running time goes, as this script's watches saw it (p50 / p99 seconds; the watches "
            "lag when the cluster is saturated):"
        )
        for r in results:
            parts = [
                f"{label} {percentile(v, 50):.2f}/{percentile(v, 99):.2f}" for label, v in r["stages"].items()
            ]
            print(f"  N={r['n']}: " + "; ".join(parts))
        print()
    print(
        "the operator's own pace, from the cluster's request counters (no watch delay): seconds from the first "
        "create until the operator had sent all N StatefulSets / all N Services:"
    )
    for r in results:
        sts, services = r["operator_statefulsets_s"], r["operator_services_s"]
        print(
            f"  N={r['n']}: "
            + (f"{sts:.1f} s ({r['n'] / max(sts, 1e-9):.0f} StatefulSets/s)" if sts else "never")
            + " / "
            + (f"{services:.1f} s" if services else "never")
        )
    if real:
        print(
            "the control plane's pace, from the audit log: seconds from the first create until the StatefulSet "
            "controller had created all N pods / the scheduler had bound all N:"
        )
        for r in results:
            pods, bound = r.get("controller_pods_s"), r.get("scheduler_bound_s")
            print(
                f"  N={r['n']}: "
                + (f"{pods:.1f} s ({r['n'] / max(pods, 1e-9):.0f} pods/s)" if pods else "never")
                + " / "
                + (f"{bound:.1f} s ({r['n'] / max(bound, 1e-9):.0f} bindings/s)" if bound else "never")
            )
        print(
            "every other client's requests per DevServer, first create until the operator was quiet (audit log):"
        )
        for r in results:
            print(f"  N={r['n']}: {clients(r.get('others_create') or {}, r['n'])}")
    print()
    print(
        "saturation from first create to all Running (CPU s / run-queue wait s / answer time p50, p99, max ms):"
    )
    for r in results:
        cl, op = r["cluster_lag"], r["operator_lag"]
        print(
            f"  N={r['n']}: cluster {r['cluster_cpu_create']:.1f} / {r['cluster_wait_create']:.1f} / "
            f"{cl[0] * 1000:.0f}, {cl[1] * 1000:.0f}, {cl[2] * 1000:.0f}; operator {r['operator_cpu_create']:.1f} / "
            f"{r['operator_wait_create']:.1f} / {op[0] * 1000:.0f}, {op[1] * 1000:.0f}, {op[2] * 1000:.0f}"
            f" (wall {r['elapsed']:.1f} s)"
        )
    print()
    print(
        "CPU per DevServer created, first create to all Running (ms): the ceiling on 2 cores is "
        "cores / sum, with nothing else running"
    )
    for r in results:
        if real:
            cpu_parts: dict[str, float] = {"operator": r["operator_cpu_create"], **r["cluster_parts_create"]}
        else:
            cpu_parts = {
                "operator": r["operator_cpu_create"],
                "cluster (API, controllers, kubelet)": r["cluster_cpu_create"],
            }
        cpu_parts.update({"pod processes": r["pods_cpu_create"], "this script": r["bench_cpu_create"]})
        total = sum(cpu_parts.values())
        print(
            f"  N={r['n']}: "
            + ", ".join(f"{k} {v / r['n'] * 1000:.1f}" for k, v in cpu_parts.items())
            + f"; sum {total / r['n'] * 1000:.1f} → at most {r['host_cpus'] * r['n'] / total:.0f} DevServers/s on "
            f"{r['host_cpus']} cores; operator alone at most {r['n'] / max(r['operator_cpu_create'], 1e-9):.0f}/s "
            f"on one core; whole host busy {r['host_busy_create']:.1f} CPU s of {r['host_cpus'] * r['elapsed']:.1f} "
            f"({r['host_busy_create'] - total:.1f} s by other processes)"
        )
    print()
    baselines = [r["baseline"] for r in results if r.get("baseline")]
    if baselines:
        print(
            f"the {'control plane' if real else 'local cluster'} alone: the same StatefulSets + Services created "
            "by this script, no operator:"
        )
        for b in baselines:
            cl = b["cluster_lag"]
            print(
                f"  N={b['n']}: {b['ready']}/{b['n']} pods Ready in {b['elapsed']:.1f} s = {b['rate']:.1f}/s, "
                f"create→pod Ready p50 {b['p50']:.2f} s p99 {b['p99']:.2f} s; cluster CPU {b['cluster_cpu']:.1f} s, "
                f"run-queue wait {b['cluster_wait']:.1f} s, pod processes {b['pods_cpu']:.1f} s, whole host busy "
                f"{b['host_busy']:.1f} CPU s; cluster answer time p50/p99/max {cl[0] * 1000:.0f}/"
                f"{cl[1] * 1000:.0f}/{cl[2] * 1000:.0f} ms"
            )
        print()
    print("operator requests per DevServer, by verb and resource:")
    for r in results:
        for phase in ("create", "delete"):
            counts = r[f"operator_{phase}"]
            refused = (
                f" ({counts['refused'] / r['n']:.2f} refused by the server)" if counts.get("refused") else ""
            )
            print(f"  N={r['n']} {phase}: {top(counts, r['n'])}{refused}")
    print()
    print(
        "memory: "
        + "; ".join(
            f"N={r['n']}: {r['processes']} cluster processes, pods {r['pods_pss'] / 1024:.1f} GiB PSS, cluster "
            f"{r['cluster_rss']:.0f} MB, operator {r['operator_rss_loaded']:.0f} MB, host used +{r['memory_used_gib']:.1f} GiB"
            for r in results
        )
    )
    rest = next((r["rest"] for r in results if "rest" in r), None)
    if rest is not None:
        print()
        print(
            f"at rest with {rest['n']} DevServers ({rest['running']} Running) over {rest['seconds']:.0f} s: operator "
            f"CPU {rest['cpu_s']:.2f} s ({rest['core_pct']:.2f} % of a core), RSS {rest['rss_start']:.0f} → "
            f"{rest['rss_end']:.0f} MB (max {rest['rss_max']:.0f}); operator requests "
            f"{rest['requests'].get('total', 0)} ({top(rest['requests'], 1)}); meanwhile the cluster used "
            f"{rest['cluster_core_pct']:.1f} % of a core, its pod processes (readiness probes) "
            f"{rest['pods_core_pct']:.1f} %, the whole host {rest['host_core_pct']:.0f} %"
        )
        if real:
            print(
                "  the cluster's processes at rest (% of a core): "
                + ", ".join(f"{k} {v:.1f}" for k, v in rest["parts_core_pct"].items())
                + f"; other clients' requests over {rest['seconds']:.0f} s: "
                + clients(rest["others"], 1)
            )
    print()
    cost_report(results, real)
    print("targets:")
    at = next((r for r in results if r["n"] == TARGET_N), None)
    if at is None and results:
        at = max(results, key=lambda r: r["n"])
    if at is not None:
        scale = "" if at["n"] == TARGET_N else f" (measured at N={at['n']}, not {TARGET_N})"
        print(
            f"  >= {TARGET_RATE:g} DevServers/s at N={TARGET_N}: {at['rate']:.1f}{scale}  {mark(at['rate'] >= TARGET_RATE)}"
        )
        print(
            f"  p99 create→Running < {TARGET_P99:g} s at N={TARGET_N}: {at['p99']:.2f} s{scale}  "
            f"{mark(at['p99'] < TARGET_P99)}"
        )
    worst = max((r["create_requests"] for r in results), default=float("nan"))
    print(
        f"  <= {TARGET_REQUESTS:g} API requests per standalone create: {worst:.2f} (worst N)  "
        f"{mark(worst <= TARGET_REQUESTS)}"
    )
    if rest is not None:
        scale = "" if rest["n"] >= REST_TARGET_N else f" (measured with {rest['n']}, not {REST_TARGET_N})"
        print(
            f"  RSS < {TARGET_RSS_MB:g} MB at rest{scale}: max {rest['rss_max']:.0f} MB  "
            f"{mark(rest['rss_max'] < TARGET_RSS_MB)}"
        )
        print(
            f"  < {TARGET_CORE_PCT:g} % of a core at rest{scale}: {rest['core_pct']:.2f} %  "
            f"{mark(rest['core_pct'] < TARGET_CORE_PCT)}"
        )


def side_by_side(by_plane: dict[str, list[dict[str, Any]]]) -> None:
    """One table: a column per (N, control plane), a row per figure, the target beside it where issue 4 sets
    one (``ok``/``MISSED`` in the cell where it applies)."""
    sizes = sorted({r["n"] for results in by_plane.values() for r in results})
    columns = [
        (
            f"{'real' if plane == 'kubernetes' else 'emulator'} N={n}",
            next((r for r in results if r["n"] == n), None),
        )
        for n in sizes
        for plane, results in by_plane.items()
    ]

    def per_ds(seconds: float | None, r: dict[str, Any]) -> str:
        return "-" if seconds is None else f"{seconds / r['n'] * 1000:.1f}"

    def part(name: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: per_ds(r["cluster_parts_create"].get(name), r)

    def others(r: dict[str, Any]) -> str:
        return per_ds(
            r["host_busy_create"]
            - r["operator_cpu_create"]
            - r["cluster_cpu_create"]
            - r["pods_cpu_create"]
            - r["bench_cpu_create"],
            r,
        )

    def rest(key: str, fmt: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: format(r["rest"][key], fmt) if "rest" in r else "-"

    def control_plane_requests(r: dict[str, Any]) -> str:
        """The controllers', the scheduler's and the node's requests (the audit log; not this script's)."""
        others = {k: v for k, v in (r.get("others_create") or {}).items() if not k.startswith("this script")}
        totals = [v for k, v in others.items() if not k.endswith(" refused")]
        return f"{sum(totals) / r['n']:.1f}" if totals else "-"

    def control_plane_refused(r: dict[str, Any]) -> str:
        others = r.get("others_create") or {}
        refused = [v for k, v in others.items() if k.endswith(" refused") and not k.startswith("this script")]
        return f"{sum(refused) / r['n']:.1f}" if others else "-"

    def baseline(r: dict[str, Any]) -> str:
        b = r.get("baseline")
        return f"{b['rate']:.1f}" if b else "-"

    # label, cell, target text, whether the cell meets the target (None: the target is not about this cell)
    rows: list[tuple[str, Callable[[dict[str, Any]], str], str, Callable[[dict[str, Any]], bool | None]]] = [
        ("all Running (s)", lambda r: f"{r['elapsed']:.1f}", "", lambda r: None),
        (
            "DevServers/s",
            lambda r: f"{r['rate']:.1f}",
            f">= {TARGET_RATE:g} at N={TARGET_N}",
            lambda r: r["rate"] >= TARGET_RATE if r["n"] == TARGET_N else None,
        ),
        ("p50 create→Running (s)", lambda r: f"{r['p50']:.2f}", "", lambda r: None),
        (
            "p99 create→Running (s)",
            lambda r: f"{r['p99']:.2f}",
            f"< {TARGET_P99:g} at N={TARGET_N}",
            lambda r: r["p99"] < TARGET_P99 if r["n"] == TARGET_N else None,
        ),
        (
            "operator API requests / create",
            lambda r: f"{r['create_requests']:.2f}",
            f"<= {TARGET_COST_REQUESTS:g} (issue 17; 8 in issue 4)",
            lambda r: r["create_requests"] <= TARGET_COST_REQUESTS,
        ),
        ("operator API requests / delete", lambda r: f"{r['delete_requests']:.2f}", "", lambda r: None),
        (
            "operator CPU ms / DevServer (to quiet)",
            lambda r: f"{cost(r)['cpu_ms']:.1f}",
            f"<= {TARGET_OPERATOR_CPU_MS:g}",
            lambda r: cost(r)["cpu_ms"] <= TARGET_OPERATOR_CPU_MS,
        ),
        (
            "watch events processed / DevServer",
            lambda r: f"{cost(r)['events']:.2f}",
            f"<= {TARGET_EVENTS:g}",
            lambda r: cost(r)["events"] <= TARGET_EVENTS,
        ),
        (
            "status writes / create",
            lambda r: f"{cost(r)['status_writes']:.2f}",
            f"<= {TARGET_STATUS_WRITES:g}",
            lambda r: cost(r)["status_writes"] <= TARGET_STATUS_WRITES,
        ),
        ("other clients' API requests / create", control_plane_requests, "", lambda r: None),
        ("  of which refused by the server", control_plane_refused, "", lambda r: None),
        ("create failures", lambda r: str(sum(r["failures"].values())), "0", lambda r: not r["failures"]),
        ("CPU ms / DevServer, first create → all Running:", lambda r: "", "", lambda r: None),
        ("  operator", lambda r: per_ds(r["operator_cpu_create"], r), "", lambda r: None),
        ("  emulator + node (one process)", part("emulator + node"), "", lambda r: None),
        *[(f"  {name}", part(name), "", lambda r: None) for name in (*REAL_COMPONENTS, "node agent")],
        ("  pod processes", lambda r: per_ds(r["pods_cpu_create"], r), "", lambda r: None),
        ("  this script (client, watches)", lambda r: per_ds(r["bench_cpu_create"], r), "", lambda r: None),
        ("  rest of the host (others' tests)", others, "", lambda r: None),
        ("  whole host busy", lambda r: per_ds(r["host_busy_create"], r), "", lambda r: None),
        (
            "run-queue wait, cluster processes (s)",
            lambda r: f"{r['cluster_wait_create']:.1f}",
            "",
            lambda r: None,
        ),
        ("run-queue wait, operator (s)", lambda r: f"{r['operator_wait_create']:.1f}", "", lambda r: None),
        ("cluster alone: pods Ready/s", baseline, "", lambda r: None),
        ("1-min load average", lambda r: f"{r['load']:.1f}", "", lambda r: None),
        (
            "at rest: operator RSS max (MB)",
            rest("rss_max", ".0f"),
            f"< {TARGET_RSS_MB:g} with {REST_TARGET_N}",
            lambda r: (
                r["rest"]["rss_max"] < TARGET_RSS_MB
                if r.get("rest", {}).get("n", 0) >= REST_TARGET_N
                else None
            ),
        ),
        (
            "at rest: operator % of a core",
            rest("core_pct", ".2f"),
            f"< {TARGET_CORE_PCT:g} with {REST_TARGET_N}",
            lambda r: (
                r["rest"]["core_pct"] < TARGET_CORE_PCT
                if r.get("rest", {}).get("n", 0) >= REST_TARGET_N
                else None
            ),
        ),
        ("at rest: cluster % of a core", rest("cluster_core_pct", ".1f"), "", lambda r: None),
        ("at rest: pod processes % of a core", rest("pods_core_pct", ".1f"), "", lambda r: None),
    ]
    table = [["", *(title for title, _ in columns), "target"]]
    for label, cell, target, meets in rows:
        values = []
        for _, r in columns:
            if r is None:
                values.append("-")
                continue
            text = cell(r)
            verdict = meets(r) if text not in ("", "-") else None
            values.append(text if verdict is None else f"{text} {mark(verdict)}")
        if label.startswith("  ") and all(v in ("-", "") for v in values):
            continue  # a process the runs did not have
        table.append([label, *values, target])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print()
    print(
        "side by side (emulator: one process serves the API, runs the controllers and the node; real: etcd, "
        "kube-apiserver, kube-controller-manager, kube-scheduler and our node agent, each a process):"
    )
    for i, row in enumerate(table):
        print(
            "  " + "  ".join(v.ljust(widths[0]) if j == 0 else v.rjust(widths[j]) for j, v in enumerate(row))
        )
        if i == 0:
            print("  " + "-" * (sum(widths) + 2 * (len(widths) - 1)))


# -- main ------------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path, plane: str) -> list[dict[str, Any]]:
    cluster, real, operator = None, None, None
    results: list[dict[str, Any]] = []
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if plane == "kubernetes":
            started = time.perf_counter()
            real = await asyncio.to_thread(start_real_cluster, args, workdir)
            kubeconfig = real.kubeconfig
            print(
                f"  real control plane (Kubernetes {real.version}) ready in {time.perf_counter() - started:.0f} s"
            )
        else:
            cluster, kubeconfig = start_cluster(args, workdir)
        kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
        sys.path.insert(0, str(ROOT))
        from devservers_sdk.localcluster.pytest_plugin import wait_established

        wait_established(kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io", timeout=30)
        example = ROOT / "examples" / "flavors" / f"{args.flavor}.yaml"
        if args.flavor == "bench-tiny" or not example.exists():
            args.flavor_body = flavor_manifest(args)
        else:
            args.flavor_body = yaml.safe_load(example.read_text())
        kubectl(kubeconfig, "apply", "-f", "-", input_text=json.dumps(args.flavor_body))
        port, metrics_port = free_port(), free_port()
        if real is not None:
            operator = start_operator(args, operator_identity(kubeconfig, workdir), workdir, port, metrics_port)
            parts, node_pid = real_processes(real)
            audit_log = real.real.control_plane.audit_log
        else:
            assert cluster is not None
            operator = start_operator(args, kubeconfig, workdir, port, metrics_port)
            parts, node_pid, audit_log = {"emulator + node": cluster.pid}, cluster.pid, None
        procs = Processes(
            parts,
            node_pid,
            operator,
            f"http://127.0.0.1:{port}/healthz",
            f"http://127.0.0.1:{metrics_port}/metrics",
        )
        api = Api(kubeconfig, args.concurrency, audit_log=audit_log)
        await api.open()
        try:
            await api.quiet(args.settle, 30)
            largest = max(args.sizes)
            for n in args.sizes:
                free = mem_available_gib()
                if results:
                    prev = results[-1]
                    per_pod = max(prev["memory_used_gib"], prev["pods_pss"] / 1024) / prev["n"]
                    need = per_pod * n * 1.5 + args.min_free_gib
                    if need > free:
                        print(
                            f"  skipping N={n}: {free:.1f} GiB available, about {per_pod * 1024:.1f} MiB per "
                            f"DevServer measured at N={prev['n']} → {per_pod * n:.1f} GiB needed "
                            f"(+{args.min_free_gib:g} GiB kept free)",
                            flush=True,
                        )
                        continue
                print(f"N={n}: creating ({free:.1f} GiB available)...", flush=True)
                baseline = await run_baseline(api, procs, args, n) if n in args.emulator_alone else None
                results.append(
                    await run_size(api, procs, args, n, rest=n == largest and args.rest_seconds > 0)
                )
                results[-1]["baseline"] = baseline
                if operator.poll() is not None:
                    print(f"the operator exited with {operator.returncode}", file=sys.stderr)
                    break
        finally:
            await api.close()
    finally:
        stop_process(operator)
        stop_process(cluster, timeout=120)
        if real is not None:
            await asyncio.to_thread(real.stop)
    log = (
        (workdir / "operator.log").read_text(errors="replace") if (workdir / "operator.log").exists() else ""
    )
    problems = [line for line in log.splitlines() if "Traceback" in line or "[ERROR" in line]
    if problems:
        print(f"\nthe operator logged {len(problems)} errors, e.g.: {problems[0][:300]}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated N, run in this order")
    parser.add_argument(
        "--rest-seconds",
        type=float,
        default=300.0,
        help="operator RSS/CPU sampling window with the largest N running (0: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --sizes 50 --rest-seconds 30")
    parser.add_argument(
        "--control-plane",
        default="emulator",
        choices=[*PLANES, "both"],
        help="emulator (ours, the default), kubernetes (etcd and the kube-* binaries, built once and cached, "
        "with our node agent), or both, one after the other, with their figures side by side",
    )
    parser.add_argument(
        "--flavor", default="bench-tiny", help="bench-tiny (created here) or a flavor of examples/flavors/"
    )
    parser.add_argument("--flavor-cpu", default="10m", help="bench-tiny's CPU request")
    parser.add_argument("--flavor-memory", default="16Mi", help="bench-tiny's memory request and limit")
    parser.add_argument(
        "--container-command",
        default="sleep infinity",
        help="DEVSERVERS_CONTAINER_COMMAND for the operator (shell-quoted)",
    )
    parser.add_argument(
        "--node-capacity",
        default="cpu=4000,memory=16Ti,pods=5000",
        help="the local node's fake capacity, RESOURCE=QUANTITY,...",
    )
    parser.add_argument(
        "--isolation",
        default="none",
        choices=["auto", "namespaces", "user-namespaces", "none"],
        help="the kubelet's pod sandbox (LOCALCLUSTER_ISOLATION). Default none: plain processes. "
        "With namespaces (the cluster's own default as root) every exec readiness probe of "
        "every pod (one per pod per 5 s) starts a Python helper, which alone needs more than "
        "2 cores at a few hundred pods",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="create/delete requests in flight")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds without any API request that end a request count"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="seconds to wait for all Running / all gone (default 60 + 0.8 N)",
    )
    parser.add_argument(
        "--no-stage-watches",
        dest="stage_watches",
        action="store_false",
        help="watch only DevServers (no StatefulSet/Service/pod watches, no stage breakdown)",
    )
    parser.add_argument(
        "--emulator-alone",
        default="auto",
        help="sizes (or all, none; auto: those up to 500, to keep the run under 25 minutes) for "
        "which the same StatefulSets and Services are first created by this script, without "
        "the operator: what the local cluster alone manages",
    )
    parser.add_argument(
        "--min-free-gib",
        type=float,
        default=3.0,
        help="skip an N whose projected memory would leave less than this available",
    )
    parser.add_argument(
        "--dump", default="", help="write each DevServer's timeline (wall clock) to PATH.nN.json"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--profile-operator",
        default="",
        help="run the operator under cProfile and write its profile (pstats) to PATH when it stops",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.rest_seconds = "50", min(args.rest_seconds, 30.0)
    args.flavor_body = flavor_manifest(args)
    args.sizes = [int(part) for part in str(args.sizes).split(",") if part.strip()]
    if args.emulator_alone == "auto":
        args.emulator_alone = {n for n in args.sizes if n <= TARGET_N}
    elif args.emulator_alone == "all":
        args.emulator_alone = set(args.sizes)
    elif args.emulator_alone == "none":
        args.emulator_alone = set()
    else:
        args.emulator_alone = {int(part) for part in args.emulator_alone.split(",") if part.strip()}
    shlex.split(args.container_command)  # fail early on bad quoting
    workdir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    started = time.perf_counter()

    def terminated(signum: int, _frame: Any) -> None:
        # Stop the operator and the cluster (the finally blocks) rather than leave them to PR_SET_PDEATHSIG.
        raise SystemExit(f"bench: stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, terminated)
    planes = list(PLANES) if args.control_plane == "both" else [args.control_plane]
    dump = args.dump
    by_plane: dict[str, list[dict[str, Any]]] = {}
    try:
        for plane in planes:
            if dump and len(planes) > 1:
                args.dump = f"{dump}-{plane}"
            print(f"== {PLANE_TITLES[plane]}", flush=True)
            by_plane[plane] = asyncio.run(bench(args, workdir / plane, plane))
            report(by_plane[plane], args, plane)
            print(flush=True)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(by_plane) > 1:
        side_by_side(by_plane)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
