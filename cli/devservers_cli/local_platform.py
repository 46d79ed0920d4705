"""``devctl local``: the local cluster and the operator as background processes, kept in a state directory.

``up`` starts ``python -m devservers_sdk.localcluster serve`` and, once the cluster answers, installs the
CRDs and the sample flavors, starts ``python -m devservers_operator`` against it and waits for its liveness
endpoint, then merges a ``devservers-local`` context into the user's kubeconfig and selects it. ``down``
undoes all of it, restoring the context that was selected before. Both are idempotent.

Two control planes (``up --kubernetes`` picks the second):

* **the emulator** (the default): starts in a second; with ``--keep-objects`` it saves its objects to
  ``cluster/objects.json`` every few seconds and at shutdown, and loads them at the next start, so ``down``
  keeps them with the volumes of ``cluster/`` and the next ``up`` finds every DevServer and home again;
* **the real one** (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built from their Go modules
  on first use, plus our node agent): etcd's data, the PKI, the remembered ports and the home volumes live in
  ``kubernetes/`` of the state directory, which ``down`` keeps, so the next ``up --kubernetes`` finds every
  DevServer and home again at the same URL. ``down --purge`` deletes the whole state directory. The build
  runs in ``up`` itself, before anything starts and outside ``--timeout``, so its progress reaches the
  terminal.

Decisions, and why:

* **State directory**: ``DEVSERVERS_STATE_DIR``, else ``$XDG_STATE_HOME/devservers/local``, else
  ``~/.local/state/devservers/local`` (the XDG home of "state that should persist between restarts but is
  not important enough for data": pids, logs). It holds ``local.json`` (what ``up`` started and changed,
  read by ``down`` and ``status``), the cluster's own kubeconfig, both logs, ``cluster/`` (the emulator's
  objects, volumes and pod sandboxes, kept) and ``kubernetes/`` (the real control plane's data, kept).
  Only ``down --purge`` deletes them, after asking on a terminal; both say which they did.
* **Processes** run in sessions of their own (``start_new_session``), detached from the terminal, so
  closing it or pressing Ctrl-C in it does not stop them. A pid is only trusted while ``/proc/<pid>/
  cmdline`` still names the module that was started, so a recycled pid is never signalled.
* **CRDs** are generated in-process from the SDK's models (``devservers_sdk.crds``): always the ones this
  SDK speaks, whether or not the repository's ``crds/`` is at hand.
* **Sample flavors** are read from the YAML of ``examples/flavors`` and not copied into this package: one
  source, so the samples cannot drift. A wheel carries them as ``devservers_cli/sample_flavors`` (a
  ``force-include`` of that folder); a source checkout or editable install reads the folder itself.
* **Operator readiness** is kopf's liveness endpoint (``DEVSERVERS_LIVENESS``) on a free local port: it
  answers once kopf has started its watches, which is the moment DevServers get pods.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import kubeconfig

CONTEXT = "devservers-local"
STATE_DIR_ENV = "DEVSERVERS_STATE_DIR"
CLUSTER_MODULE = "devservers_sdk.localcluster"
OPERATOR_MODULE = "devservers_operator"
EMULATOR, KUBERNETES = "emulator", "kubernetes"
NODE_CAPACITY = {"cpu": "64", "memory": "256Gi"}
"""What the local node advertises over the host's figures: every CPU sample flavor fits, twice over.

Pods are local processes without cgroups, so nothing is reserved; a 2-CPU laptop would otherwise refuse
the main job (one ``cpu-small`` server and a 2-rank group need 3 CPUs of requests)."""
_POLL = 0.05

Report = Callable[[str], None]


class LocalPlatformError(Exception):
    """``up`` or ``down`` could not finish; the message says why and where the logs are."""


def default_state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "devservers" / "local"


@dataclass
class Record:
    """What ``up`` started and changed, so that ``down`` and ``status`` can find it (``local.json``)."""

    cluster_pid: int | None = None
    operator_pid: int | None = None
    url: str | None = None
    health: str | None = None
    kubeconfig: str | None = None
    entries: dict[str, str] | None = None
    previous_context: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    control_plane: str = EMULATOR
    version: str | None = None  # of Kubernetes, for the real control plane


@dataclass
class Status:
    """What ``devctl local status`` shows."""

    state_dir: str
    cluster_pid: int | None
    cluster_alive: bool
    operator_pid: int | None
    operator_alive: bool
    url: str | None
    kubeconfig: str | None
    context: str | None
    selected: bool
    started_at: str | None
    control_plane: str | None  # emulator or kubernetes; None when nothing was started
    version: str | None
    kept_data: str | None  # the data directory (objects and volumes) `up` finds again, running or not
    kept_control_plane: str | None = None  # whose data that is: emulator or kubernetes

    @property
    def running(self) -> bool:
        return self.cluster_alive and self.operator_alive

    @property
    def label(self) -> str:
        """``Kubernetes v1.37.2`` or ``emulator``: which control plane, in a word or two."""
        if self.control_plane == KUBERNETES:
            return f"Kubernetes {self.version}" if self.version else "Kubernetes"
        return self.control_plane or "-"

    def describe_control_plane(self) -> str:
        if self.control_plane == KUBERNETES:
            return f"{self.label}: etcd and the kube-* binaries, with our node agent"
        if self.control_plane == EMULATOR:
            return "emulator: ours, objects in memory"
        return "-"


# -- processes -------------------------------------------------------------------------------------------

def _is_ours(pid: int, module: str) -> bool:
    """Is ``pid`` alive, not a zombie, and still running ``module``?"""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (up and down in one process)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust the pid
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and module in cmdline


def _wait_gone(pid: int, module: str, deadline: float) -> bool:
    while _is_ours(pid, module):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _terminate(pid: int | None, module: str, timeout: float) -> str:
    """SIGTERM, then SIGKILL of its whole process group after ``timeout``; says what it took."""
    if pid is None or not _is_ours(pid, module):
        return "was not running"
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, module, time.monotonic() + timeout):
        return f"stopped (pid {pid})"
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _wait_gone(pid, module, time.monotonic() + 5)
    return f"killed after {timeout:g}s (pid {pid})"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(f"  | {line}" for line in text[-lines:]) or "  | (empty)"


def _import_root(module: str, fallback: Path | None = None) -> Path | None:
    """The sys.path entry that makes ``module`` importable, so a child process can import it too."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parents[1]
    if fallback is not None and (fallback / module / "__init__.py").is_file():
        return fallback
    return None


# -- sample flavors --------------------------------------------------------------------------------------

def _flavor_dirs() -> Iterator[Path]:
    here = Path(__file__).resolve().parent
    yield here / "sample_flavors"  # in a wheel: examples/flavors, force-included
    yield here.parents[1] / "examples" / "flavors"  # in a source checkout or an editable install


def sample_flavors() -> list[dict[str, Any]]:
    """The sample DevServerFlavor manifests (``examples/flavors/*.yaml``), or none if not shipped."""
    import yaml

    for directory in _flavor_dirs():
        manifests = [document for path in sorted(directory.glob("*.yaml"))
                     for document in yaml.safe_load_all(path.read_text())
                     if isinstance(document, dict) and document.get("kind") == "DevServerFlavor"]
        if manifests:
            return manifests
    return []


# -- the platform ----------------------------------------------------------------------------------------

class LocalPlatform:
    """The local cluster and operator of one state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.root = (state_dir or default_state_dir()).expanduser().resolve()
        self.record_path = self.root / "local.json"
        self.cluster_kubeconfig = self.root / "kubeconfig"
        self.cluster_log = self.root / "cluster.log"
        self.operator_log = self.root / "operator.log"
        self.data = self.root / "cluster"
        self.kubernetes_data = self.root / KUBERNETES

    # -- record ----------------------------------------------------------------------------------------

    def _load(self) -> Record | None:
        try:
            return Record(**json.loads(self.record_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, record: Record) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        os.replace(tmp, self.record_path)

    def status(self) -> Status:
        record = self._load() or Record(started_at="")
        entries = kubeconfig.Entries(**record.entries) if record.entries else None
        path = Path(record.kubeconfig) if record.kubeconfig else None
        return Status(
            state_dir=str(self.root),
            cluster_pid=record.cluster_pid,
            cluster_alive=record.cluster_pid is not None and _is_ours(record.cluster_pid, CLUSTER_MODULE),
            operator_pid=record.operator_pid,
            operator_alive=record.operator_pid is not None and _is_ours(record.operator_pid, OPERATOR_MODULE),
            url=record.url, kubeconfig=record.kubeconfig, context=entries.context if entries else None,
            selected=bool(entries and path and kubeconfig.selected(path) == entries.context),
            started_at=record.started_at or None,
            control_plane=record.control_plane if record.cluster_pid is not None else None,
            version=record.version,
            **self.kept(record.control_plane if record.cluster_pid is not None else None))

    def kept(self, running: str | None) -> dict[str, str | None]:
        """The data directory that ``up`` would find again, and whose: the running plane's, else any."""
        candidates = {KUBERNETES: self.kubernetes_data, EMULATOR: self.data}
        for plane in [running] if running else [EMULATOR, KUBERNETES]:
            path = candidates.get(plane or "")
            if path is not None and path.is_dir() and any(path.iterdir()):
                return {"kept_data": str(path), "kept_control_plane": plane}
        return {"kept_data": None, "kept_control_plane": None}

    # -- up --------------------------------------------------------------------------------------------

    def up(self, user_kubeconfig: Path, *, report: Report, timeout: float = 120.0,
           node_capacity: dict[str, str] | None = None, control_plane: str = EMULATOR) -> tuple[Status, bool]:
        """Start everything, unless it already runs.

        Args:
            control_plane: ``emulator``, or ``kubernetes`` (built first if this machine has no binaries yet;
                its data is kept by ``down`` and found again here).

        Returns:
            The status, and whether this call started it (``False``: it was already running).

        Raises:
            LocalPlatformError: a part did not start, or the other control plane runs; what this call
                started is stopped again.
        """
        if control_plane not in (EMULATOR, KUBERNETES):
            raise ValueError(f"control_plane must be {EMULATOR!r} or {KUBERNETES!r}, not {control_plane!r}")
        current = self.status()
        if current.running:
            if current.control_plane != control_plane:
                flag = " --kubernetes" if control_plane == KUBERNETES else ""
                raise LocalPlatformError(
                    f"The local cluster in {self.root} already runs the {current.control_plane} control "
                    f"plane; stop it with `devctl local down`, then run `devctl local up{flag}` again.")
            # Running, but the user's kubeconfig may have lost its context since (edited, overwritten,
            # corrupted): put it back, so "already running" never leaves devctl unable to reach it.
            record = self._load() or Record()
            entries, previous = self._merge_context(user_kubeconfig, report)
            if record.kubeconfig != str(user_kubeconfig) or record.previous_context is None:
                record.previous_context = record.previous_context or previous
            record.kubeconfig, record.entries = str(user_kubeconfig), asdict(entries)
            self._save(record)
            if previous is not None:
                report(f"Context '{entries.context}' selected again in {user_kubeconfig}.")
            return self.status(), False
        if current.cluster_pid or current.operator_pid:
            report("Cleaning up a local cluster that is no longer complete...")
            self._stop_processes(self._load() or Record(), report=lambda _: None)
        self.root.mkdir(parents=True, exist_ok=True)
        record = Record(control_plane=control_plane)
        if control_plane == KUBERNETES:
            record.version = self._build(report)
        elif self.kubernetes_data.is_dir():
            report(f"(The data of a stopped Kubernetes control plane stays in {self.kubernetes_data}; "
                   "`devctl local up --kubernetes` would start it again.)")
        try:
            self._start_cluster(record, report, timeout, {**NODE_CAPACITY, **(node_capacity or {})})
            self._install(report)
            self._start_operator(record, report, timeout)
            entries, previous = self._merge_context(user_kubeconfig, report)
            record.kubeconfig, record.entries = str(user_kubeconfig), asdict(entries)
            record.previous_context = previous
            self._save(record)
        except BaseException:
            report("Stopping what was started:")
            self._stop_processes(record, report=report)
            self.record_path.unlink(missing_ok=True)
            raise
        before = f" (it was '{previous}'; `devctl local down` selects it again)" if previous else ""
        report(f"Context '{entries.context}' added to {user_kubeconfig} and selected{before}.")
        return self.status(), True

    def _merge_context(self, user_kubeconfig: Path, report: Report) -> tuple[kubeconfig.Entries, str | None]:
        """Add and select the local cluster's context in the user's kubeconfig, repairing an unusable file:
        it is moved aside (never deleted: it may hold other clusters' credentials) and a new one written."""
        from devservers_sdk.errors import KubeconfigUnreadableError

        source = kubeconfig.read(self.cluster_kubeconfig)
        try:
            return kubeconfig.merge(user_kubeconfig, source)
        except KubeconfigUnreadableError as exc:
            aside = kubeconfig.move_aside(user_kubeconfig)
            report(f"{exc.problem.rstrip(',. ')}. Moved it to {aside} and wrote a new {user_kubeconfig} "
                   f"with the local cluster's context.")
            return kubeconfig.merge(user_kubeconfig, source)

    def _spawn(self, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            out.write(f"\n--- {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {' '.join(argv)}\n".encode())
            out.flush()
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=self.root, start_new_session=True, close_fds=True)

    def _child_env(self, *roots: Path | None, **extra: str) -> dict[str, str]:
        env = dict(os.environ, **extra)
        paths = [str(root) for root in roots if root is not None]
        # The children run in the state directory: keep the caller's relative entries meaning the same.
        paths += [os.path.abspath(entry) for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def _build(self, report: Report) -> str:
        """The real control plane's binaries, built now if none are cached; returns Kubernetes' version."""
        from devservers_sdk.localcluster.controlplane.build import ControlPlaneBuildError, ensure_binaries

        report("Checking the Kubernetes control plane's binaries (the first build takes many minutes)...")
        started = time.monotonic()
        try:
            binaries = ensure_binaries(progress=lambda line: report(f"  {line}"))
        except ControlPlaneBuildError as exc:
            raise LocalPlatformError(f"The Kubernetes control plane could not be built: {exc}") from exc
        report(f"  Kubernetes {binaries.kubernetes_version} and etcd {binaries.etcd_version} ready in "
               f"{binaries.kube_apiserver.parent.parent} ({time.monotonic() - started:.1f}s)")
        return str(binaries.kubernetes_version)

    def _start_cluster(self, record: Record, report: Report, timeout: float, capacity: dict[str, str]) -> None:
        self.cluster_kubeconfig.unlink(missing_ok=True)
        real = record.control_plane == KUBERNETES
        if not real and (self.data / "objects.json").is_file():
            report(f"Starting the local cluster again, with the objects and volumes kept in {self.data} "
                   f"(log: {self.cluster_log})...")
        elif not real:
            report(f"Starting the local cluster (log: {self.cluster_log})...")
        elif (self.kubernetes_data / "control-plane" / "etcd").is_dir():
            report(f"Starting the Kubernetes control plane and the node again, with the data kept in "
                   f"{self.kubernetes_data} (log: {self.cluster_log})...")
        else:
            report(f"Starting the Kubernetes control plane and the node, data in {self.kubernetes_data} "
                   f"(log: {self.cluster_log})...")
        started = time.monotonic()
        argv = [sys.executable, "-m", CLUSTER_MODULE, "serve", "--kubeconfig", str(self.cluster_kubeconfig),
                "--state-dir", str(self.kubernetes_data if real else self.data)]
        if real:
            argv += ["--control-plane", KUBERNETES]
        else:
            argv += ["--keep-objects"]
        argv += [f"--node-capacity={resource}={amount}" for resource, amount in capacity.items()]
        # Pods are processes of the cluster: this Python environment is their "image" (python, torch...).
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
        process = self._spawn(argv, self.cluster_log, self._child_env(_import_root("devservers_sdk"), PATH=path))
        record.cluster_pid = process.pid
        self._save(record)
        deadline = started + timeout
        while not self.cluster_kubeconfig.is_file():
            if process.poll() is not None:
                raise LocalPlatformError(f"The local cluster exited with code {process.returncode} while "
                                         f"starting. Its log ({self.cluster_log}) ends with:\n"
                                         f"{_tail(self.cluster_log)}")
            if time.monotonic() > deadline:
                raise LocalPlatformError(f"The local cluster did not become ready within {timeout:g}s; see "
                                         f"its log: {self.cluster_log}")
            time.sleep(_POLL)
        source = kubeconfig.read(self.cluster_kubeconfig)
        record.url = source["clusters"][0]["cluster"]["server"]
        self._save(record)
        report(f"  cluster ready at {record.url} ({time.monotonic() - started:.1f}s, pid {process.pid})")

    def _install(self, report: Report) -> None:
        from devservers_sdk.crds import devserver_crd, flavor_crd, ignored_fields_policy
        from devservers_sdk.errors import NotFoundError
        from devservers_sdk.kube import FLAVORS, Kube, Resource
        from devservers_sdk.settings import load_kubeconfig

        crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                        namespaced=False)
        kube = Kube(load_kubeconfig(self.cluster_kubeconfig))
        try:
            for crd in (devserver_crd(), flavor_crd()):
                _apply(kube, crds, crd)
            deadline = time.monotonic() + 30
            while True:  # a new CRD is served a moment after it is created
                try:
                    kube.list(FLAVORS)
                    break
                except NotFoundError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(_POLL)
            policy, binding = ignored_fields_policy()
            _apply(kube, Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                                  "ValidatingAdmissionPolicy", namespaced=False), policy)
            _apply(kube, Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                                  "ValidatingAdmissionPolicyBinding", namespaced=False), binding)
            report("  CRDs installed: devservers.devservers.io, devserverflavors.devservers.io (and the "
                   f"policy {policy['metadata']['name']}, which warns about fields without effect)")
            flavors = sample_flavors()
            for flavor in flavors:
                _apply(kube, FLAVORS, flavor)
            names = ", ".join(f["metadata"]["name"] for f in flavors)
            report(f"  sample flavors installed: {names}" if flavors else
                   "  no sample flavors found in this installation; add your own with kubectl apply -f")
        finally:
            kube.close()

    def _start_operator(self, record: Record, report: Report, timeout: float) -> None:
        root = _import_root(OPERATOR_MODULE, Path(__file__).resolve().parents[2] / "operator")
        if root is None:
            raise LocalPlatformError("The devservers operator (package devservers_operator) is not installed "
                                     "in this environment; install devservers with it, then run devctl local "
                                     "up again.")
        record.health = f"http://127.0.0.1:{_free_port()}/healthz"
        env = self._child_env(root, _import_root("devservers_sdk"), KUBECONFIG=str(self.cluster_kubeconfig),
                              DEVSERVERS_LIVENESS=record.health)
        env.pop("DEVSERVERS_CONTEXT", None)
        env.pop("DEVSERVERS_NAMESPACE", None)
        report(f"Starting the operator (log: {self.operator_log})...")
        started = time.monotonic()
        process = self._spawn([sys.executable, "-m", OPERATOR_MODULE], self.operator_log, env)
        record.operator_pid = process.pid
        self._save(record)
        deadline = started + timeout
        while not _healthy(record.health):
            if process.poll() is not None:
                raise LocalPlatformError(f"The operator exited with code {process.returncode} while starting. "
                                         f"Its log ({self.operator_log}) ends with:\n{_tail(self.operator_log)}")
            if time.monotonic() > deadline:
                raise LocalPlatformError(f"The operator did not report ready at {record.health} within "
                                         f"{timeout:g}s; see its log: {self.operator_log}")
            time.sleep(_POLL)
        report(f"  operator ready ({time.monotonic() - started:.1f}s, pid {process.pid})")

    # -- down ------------------------------------------------------------------------------------------

    def down(self, *, report: Report, timeout: float = 15.0) -> bool:
        """Stop everything ``up`` started and undo its kubeconfig change; ``False`` if nothing was up.

        The emulator's volumes are removed (its objects were in memory); a real control plane's data is kept.
        """
        record = self._load()
        if record is None:
            return False
        self._stop_processes(record, report=report, timeout=timeout)
        if record.kubeconfig and record.entries:
            from devservers_sdk.errors import KubeconfigUnreadableError

            entries = kubeconfig.Entries(**record.entries)
            try:
                now = kubeconfig.remove(Path(record.kubeconfig), entries, record.previous_context)
            except KubeconfigUnreadableError as exc:
                report(f"{exc.problem.rstrip(',. ')}; left it as it is.")
            else:
                selected = f"; current context: {now}" if now else "; no context is selected now"
                report(f"Context '{entries.context}' removed from {record.kubeconfig}{selected}.")
        self.cluster_kubeconfig.unlink(missing_ok=True)
        self.record_path.unlink(missing_ok=True)
        return True

    def purge(self) -> bool:
        """Delete the state directory (call after ``down``); ``False`` if there was none."""
        import shutil

        if self._load() is not None and self.status().cluster_alive:
            raise LocalPlatformError(f"The local cluster of {self.root} still runs; stop it first.")
        if not self.root.exists():
            return False
        shutil.rmtree(self.root)
        return True

    def _stop_processes(self, record: Record, *, report: Report, timeout: float = 15.0) -> None:
        report(f"Operator {_terminate(record.operator_pid, OPERATOR_MODULE, timeout)}.")
        report(f"Local cluster {_terminate(record.cluster_pid, CLUSTER_MODULE, timeout)}.")


def _apply(kube: Any, resource: Any, manifest: dict[str, Any]) -> None:
    """Create, or replace what is there (``kubectl apply`` for objects this tool owns)."""
    from devservers_sdk.errors import AlreadyExistsError

    name = manifest["metadata"]["name"]
    try:
        kube.create(resource, manifest)
    except AlreadyExistsError:
        current = kube.get(resource, name)
        body = {**manifest, "metadata": {**manifest["metadata"],
                                         "resourceVersion": current["metadata"]["resourceVersion"]}}
        kube.request("PUT", resource.path(None, name), body=body, kind=resource.kind, name=name)


def _healthy(url: str) -> bool:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
    try:
        with opener.open(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
