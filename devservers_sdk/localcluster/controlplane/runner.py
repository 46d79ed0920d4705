"""Run etcd, kube-apiserver, kube-controller-manager and kube-scheduler as child processes on 127.0.0.1.

Everything lives in one state directory, so stopping and starting again on it keeps every object (etcd's data),
the credentials (``pki/``, so kubeconfigs handed out stay valid) and the URLs (the ports are chosen once and
written to ``ports.json``)::

    <state>/pki/              CAs, serving and client certificates, service-account keys (keys 0600)
    <state>/etcd/             etcd's data
    <state>/logs/<component>.log, <state>/logs/audit.log
    <state>/kubeconfigs/      one kubeconfig per minted identity; admin.kubeconfig is system:masters
    <state>/ports.json

The children never outlive this process: each asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``), which covers a SIGKILL of the parent that no ``atexit`` or ``finally`` can. The kernel
ties that signal to the *thread* that forked, not the process, so every child is started from one long-lived
thread of this module: a control plane started from a short-lived worker thread would otherwise be killed when
that thread ends.

The flags follow kubeadm's static pods and kwok's binary runtime, adapted to loopback; each one that is not a
default says why below. The API server's own endpoint reconciler is off (``--endpoint-reconciler-type=none``):
it would publish 127.0.0.1 as the ``kubernetes`` Service's endpoint, which Endpoints validation refuses (no
loopback addresses), and retry forever.
"""

from __future__ import annotations

import base64
import concurrent.futures
import ctypes
import json
import logging
import os
import queue
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .build import ControlPlaneBinaries
from .pki import APISERVER_KUBELET_CLIENT, FRONT_PROXY_CLIENT, CertificateFiles, ClusterPKI, write_private

log = logging.getLogger(__name__)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
FIRST_SERVICE_IP = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "kubernetes-admin"
DEFAULT_STORAGE_CLASS = "standard"
STORAGE_PROVISIONER = "devservers.io/local-path"
DEFAULT_USERS: tuple[tuple[str, tuple[str, ...]], ...] = (("alice", ()), ("carol", ("devservers:admins",)))
CONTEXT_NAME = "devservers-controlplane"

_PR_SET_PDEATHSIG = 1
_PORT_NAMES = ("etcd-client", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

# Requests the audit log would only drown in: our own readiness polling.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*"]},
        {"level": "Metadata"},
    ],
}


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become ready; the message names it and quotes its log."""


# -- child processes -------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def in_child() -> None:
        # Runs between fork and exec: no allocation-heavy Python here, only the syscall and a race check.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return in_child


class _Spawner:
    """One daemon thread that forks every child: it lives exactly as long as the process, so PR_SET_PDEATHSIG
    (tied to the forking thread) fires when the process dies, and never because some worker thread ended."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[concurrent.futures.Future[subprocess.Popen[bytes]], list[str], Path]] = (
            queue.Queue())
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="controlplane-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((future, command, log_path))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, command, log_path = self._requests.get()
            try:
                future.set_result(self._start(command, log_path))
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)

    @staticmethod
    def _start(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as sink:
            sink.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
            sink.flush()
            # A session of its own: a Ctrl-C in the terminal reaches us, and we stop the children in order.
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))


_spawner = _Spawner()


def spawn_child(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` (output appended to ``log_path``) as a child that dies with this process."""
    return _spawner.spawn(command, log_path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as source:
            source.seek(max(0, source.seek(0, os.SEEK_END) - 64 * 1024))
            text = source.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# -- the control plane -----------------------------------------------------------------------------------------

class KubernetesControlPlane:
    """etcd and the three Kubernetes control-plane components, on loopback, with their state in ``state_dir``.

    Args:
        state_dir: where data, credentials, logs and ports live; reuse it to restart the same cluster.
        binaries: from ``ensure_binaries()``.
        users: identities to mint kubeconfigs for at start (``user_kubeconfigs``); they get no rights here.
        ready_timeout: seconds each component gets to become ready.
        storage_volume_binding_mode: of the default StorageClass ``standard``.
        extra_args: more flags per component, e.g. ``{"kube-apiserver": ["--v=4"]}``.

    Use it as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, state_dir: Path, *, binaries: ControlPlaneBinaries,
                 users: Sequence[tuple[str, Sequence[str]]] = DEFAULT_USERS,
                 ready_timeout: float = 180.0, storage_volume_binding_mode: str = "Immediate",
                 extra_args: dict[str, Sequence[str]] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.binaries = binaries
        self.users = [(user, tuple(groups)) for user, groups in users]
        self.ready_timeout = ready_timeout
        self.storage_volume_binding_mode = storage_volume_binding_mode
        self.extra_args = {name: list(args) for name, args in (extra_args or {}).items()}
        self.logs_dir = self.state_dir / "logs"
        self.kubeconfigs_dir = self.state_dir / "kubeconfigs"
        self.user_kubeconfigs: dict[str, Path] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        # Components that should be running: a watchdog starts again one that exits on its own, as the kubelet
        # does for static pods (kube-scheduler, for one, exits by design when it finds its cache corrupted).
        self._wanted: set[str] = set()
        self._restarts: dict[str, tuple[int, float]] = {}
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self._lock = threading.RLock()
        self._pki: ClusterPKI | None = None
        self._ports: dict[str, int] = {}

    # -- public surface --------------------------------------------------------------------------------------

    @property
    def pki(self) -> ClusterPKI:
        if self._pki is None:
            self._pki = ClusterPKI(self.state_dir / "pki", first_service_ip=FIRST_SERVICE_IP)
        return self._pki

    @property
    def ports(self) -> dict[str, int]:
        """Ports by name (etcd-client, etcd-peer, kube-apiserver, ...), chosen once per state directory."""
        if not self._ports:
            path = self.state_dir / "ports.json"
            if path.exists():
                self._ports = json.loads(path.read_text())
            if set(self._ports) != set(_PORT_NAMES):
                self._ports = {name: self._ports.get(name) or _free_port() for name in _PORT_NAMES}
                self.state_dir.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".ports.{os.getpid()}.tmp")
                temporary.write_text(json.dumps(self._ports, indent=2) + "\n")
                os.replace(temporary, path)
        return self._ports

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def ca_file(self) -> Path:
        """The cluster CA: it signs the API server's serving certificate and every client certificate."""
        return self.pki.ca.files.cert

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig for ``kubernetes-admin`` in ``system:masters`` (no RBAC check applies)."""
        return self.kubeconfig_for(ADMIN_USER, ("system:masters",), name="admin")

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    @property
    def audit_log(self) -> Path:
        return self.logs_dir / "audit.log"

    def kubeconfig_for(self, user: str, groups: Sequence[str] = (), *, name: str | None = None) -> Path:
        """A kubeconfig (mode 0600, client certificate embedded) authenticating as ``user`` in ``groups``.

        Minting needs no running control plane: the certificate is signed by the cluster CA in the state dir.
        """
        files = self.pki.client_certificate(user, tuple(groups))
        path = self.kubeconfigs_dir / f"{name or files.cert.stem}.kubeconfig"
        document = self.kubeconfig_document(files, user=user)
        write_private(path, yaml.safe_dump(document, sort_keys=False).encode())
        return path

    def kubeconfig_document(self, files: CertificateFiles, *, user: str) -> dict[str, Any]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT_NAME, "cluster": {
                "server": self.server, "certificate-authority-data": b64(self.pki.ca.cert_pem())}}],
            "users": [{"name": user, "user": {
                "client-certificate-data": b64(files.cert_pem()), "client-key-data": b64(files.key_pem())}}],
            "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": user,
                                                           "namespace": "default"}}],
            "current-context": CONTEXT_NAME,
        }

    def start(self) -> None:
        """Start every component not running, wait until each is ready, then create the bootstrap objects."""
        with self._lock:
            self._prepare()
            try:
                for component in COMPONENTS:
                    self.start_component(component)
                self._bootstrap()
            except BaseException:
                self.stop()
                raise
            for user, groups in self.users:
                self.user_kubeconfigs[user] = self.kubeconfig_for(user, groups)
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog_stop.clear()
                self._watchdog = threading.Thread(target=self._watch_components, name="controlplane-watchdog",
                                                  daemon=True)
                self._watchdog.start()

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop every component, newest first (the scheduler first, etcd last)."""
        self._watchdog_stop.set()
        with self._lock:
            for component in reversed(COMPONENTS):
                self.stop_component(component, timeout=timeout)

    def _watch_components(self) -> None:
        """Start again, with a growing pause (1 s doubling to 30 s), any wanted component that exited."""
        while not self._watchdog_stop.wait(0.5):
            with self._lock:
                for component in COMPONENTS:
                    process = self._processes.get(component)
                    if component not in self._wanted or process is None or process.poll() is None:
                        continue
                    count, last = self._restarts.get(component, (0, 0.0))
                    if time.monotonic() - last > 120:
                        count = 0  # it ran for a while: start the back-off afresh
                    if time.monotonic() - last < min(30.0, 2.0 ** count) and count:
                        continue
                    log.warning("%s exited with code %s; starting it again (see %s)", component,
                                process.returncode, self.log_path(component))
                    command = [str(self.binaries.path(component)), *self._flags(component),
                               *self.extra_args.get(component, ())]
                    self._processes[component] = _spawner.spawn(command, self.log_path(component))
                    self._restarts[component] = (count + 1, time.monotonic())

    def __enter__(self) -> KubernetesControlPlane:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def is_running(self, component: str) -> bool:
        process = self._processes.get(component)
        return process is not None and process.poll() is None

    def pid(self, component: str) -> int | None:
        process = self._processes.get(component)
        return process.pid if process is not None and process.poll() is None else None

    def start_component(self, component: str) -> None:
        """Start one component (if it is not running) and wait until it is ready."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}: expected one of {', '.join(COMPONENTS)}")
        with self._lock:
            self._prepare()
            if not self.is_running(component):
                command = [str(self.binaries.path(component)), *self._flags(component),
                           *self.extra_args.get(component, ())]
                self._processes[component] = _spawner.spawn(command, self.log_path(component))
            self._wanted.add(component)
            self._wait_ready(component)

    def stop_component(self, component: str, *, timeout: float = 15.0, kill: bool = False) -> None:
        """Stop one component: SIGTERM, then SIGKILL after ``timeout`` seconds (at once with ``kill=True``)."""
        with self._lock:
            self._wanted.discard(component)
            process = self._processes.pop(component, None)
            if process is None:
                return
            if process.poll() is None:
                process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0fs of SIGTERM: killing it", component, timeout)
                    process.kill()
                    process.wait()

    # -- flags -----------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        _ = self.ports, self.pki
        policy = self.state_dir / "audit-policy.yaml"
        if not policy.exists():
            policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
        for identity, groups, name in (("system:kube-controller-manager", (), "kube-controller-manager"),
                                       ("system:kube-scheduler", (), "kube-scheduler")):
            self.kubeconfig_for(identity, groups, name=name)

    def _flags(self, component: str) -> list[str]:
        return {"etcd": self._etcd_flags, "kube-apiserver": self._apiserver_flags,
                "kube-controller-manager": self._controller_manager_flags,
                "kube-scheduler": self._scheduler_flags}[component]()

    def _etcd_flags(self) -> list[str]:
        pki, client, peer = self.pki, self.ports["etcd-client"], self.ports["etcd-peer"]
        return [
            "--name=localcluster",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls=https://127.0.0.1:{client}",
            f"--advertise-client-urls=https://127.0.0.1:{client}",
            # One member, never joined by another: the peer port is bound but carries no traffic.
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=localcluster=http://127.0.0.1:{peer}",
            f"--cert-file={pki.etcd_server.cert}", f"--key-file={pki.etcd_server.key}",
            f"--trusted-ca-file={pki.etcd_ca.files.cert}", "--client-cert-auth=true",
            # A throwaway cluster on a shared disk: durability against power loss is not worth an fsync per write.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_flags(self) -> list[str]:
        pki = self.pki
        return [
            "--advertise-address=127.0.0.1",  # without it, a machine with no default route cannot start
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['kube-apiserver']}",
            f"--etcd-servers=https://127.0.0.1:{self.ports['etcd-client']}",
            f"--etcd-cafile={pki.etcd_ca.files.cert}",
            f"--etcd-certfile={pki.apiserver_etcd_client.cert}",
            f"--etcd-keyfile={pki.apiserver_etcd_client.key}",
            f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.files.cert}",
            "--authorization-mode=Node,RBAC",
            # Added to the default plugins (ValidatingAdmissionPolicy, ServiceAccount, ... stay on).
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--endpoint-reconciler-type=none",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.apiserver_kubelet_client.cert}",
            f"--kubelet-client-key={pki.apiserver_kubelet_client.key}",
            f"--kubelet-certificate-authority={pki.ca.files.cert}",
            # The aggregation layer's request-header authentication, as kubeadm sets it up.
            f"--requestheader-client-ca-file={pki.front_proxy_ca.files.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
            f"--proxy-client-key-file={pki.front_proxy_client.key}",
            f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            f"--cert-dir={self.state_dir / 'pki' / 'generated'}",
        ]

    def _delegated_auth_flags(self, component: str) -> list[str]:
        """Flags shared by the controller manager and the scheduler: API credentials and health port."""
        kubeconfig = self.kubeconfigs_dir / f"{component}.kubeconfig"
        serving = self.pki.serving_certificate(component)
        return [
            # Their secure port authenticates callers through the API server (TokenReview, SubjectAccessReview).
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--client-ca-file={self.pki.ca.files.cert}",
            f"--requestheader-client-ca-file={self.pki.front_proxy_ca.files.cert}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports[component]}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
        ]

    def _controller_manager_flags(self) -> list[str]:
        pki = self.pki
        return [
            f"--kubeconfig={self.kubeconfigs_dir / 'kube-controller-manager.kubeconfig'}",
            *self._delegated_auth_flags("kube-controller-manager"),
            "--leader-elect=false",  # one instance; leader election only delays a restart by a lease period
            f"--root-ca-file={pki.ca.files.cert}",
            f"--service-account-private-key-file={pki.service_account_key}",
            "--use-service-account-credentials=true",
            # Lets CertificateSigningRequests for kubelets be approved and signed by the cluster CA.
            f"--cluster-signing-cert-file={pki.ca.files.cert}",
            f"--cluster-signing-key-file={pki.ca.files.key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # Its default is under /usr/libexec, which it creates: keep the host untouched.
            f"--flex-volume-plugin-dir={self.state_dir / 'flexvolume'}",
            # Pods here have loopback addresses, which Endpoints and EndpointSlice validation refuses: those
            # controllers would retry every Service's endpoints forever (a thousand refused writes a minute
            # with 500 DevServers). Names resolve through the node's hosts file instead, as on the emulator.
            "--controllers=*,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller",
        ]

    def _scheduler_flags(self) -> list[str]:
        # Since 1.3x the scheduler's --kubeconfig and --leader-elect flags are deprecated for its config file.
        config = self.state_dir / "kube-scheduler.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfigs_dir / "kube-scheduler.kubeconfig")},
            "leaderElection": {"leaderElect": False},
        }, sort_keys=False))
        return [f"--config={config}", *self._delegated_auth_flags("kube-scheduler")]

    # -- readiness -------------------------------------------------------------------------------------------

    def _admin_context(self) -> ssl.SSLContext:
        admin = self.pki.client_certificate(ADMIN_USER, ("system:masters",))
        context = ssl.create_default_context(cafile=str(self.pki.ca.files.cert))
        context.load_cert_chain(admin.cert, admin.key)
        return context

    def _probe(self, component: str) -> tuple[bool, str]:
        """(ready, what was seen) for one component's health endpoint."""
        if component == "etcd":
            client = self.pki.apiserver_etcd_client
            context = ssl.create_default_context(cafile=str(self.pki.etcd_ca.files.cert))
            context.load_cert_chain(client.cert, client.key)
            url = f"https://127.0.0.1:{self.ports['etcd-client']}/health"
        elif component == "kube-apiserver":
            context, url = self._admin_context(), f"{self.server}/readyz"
        else:
            context = ssl.create_default_context(cafile=str(self.pki.ca.files.cert))
            url = f"https://127.0.0.1:{self.ports[component]}/healthz"
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                body = response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code} from {url}: {exc.read().decode(errors='replace')[-300:]}"
        except (OSError, ssl.SSLError) as exc:
            return False, f"{url}: {exc}"
        if component == "etcd":
            return json.loads(body).get("health") == "true", body
        return body.strip() == "ok", body

    def _wait_ready(self, component: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        seen = "no answer yet"
        while True:
            process = self._processes[component]
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{component} exited with code {process.returncode} before it was ready; "
                    f"its log {self.log_path(component)} ends with:\n{_log_tail(self.log_path(component))}")
            ready, seen = self._probe(component)
            if ready:
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{component} was not ready within {self.ready_timeout:.0f}s (last probe: {seen}); "
                    f"its log {self.log_path(component)} ends with:\n{_log_tail(self.log_path(component))}")
            time.sleep(0.25)

    # -- bootstrap objects -----------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """One API request as the admin: (status, decoded JSON body). No exception for HTTP errors."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.server}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._admin_context(), timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return exc.code, json.loads(payload)
            except ValueError:
                return exc.code, {"message": payload.decode(errors="replace")}

    def _create(self, collection: str, manifest: dict[str, Any]) -> None:
        status, answer = self.request("POST", collection, manifest)
        if status not in (200, 201, 409):
            raise ControlPlaneError(f"creating {manifest['kind']} {manifest['metadata']['name']!r} failed with "
                                    f"HTTP {status}: {answer.get('message', answer)}")

    def _bootstrap(self) -> None:
        self._create("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": DEFAULT_STORAGE_CLASS,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": STORAGE_PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": self.storage_volume_binding_mode,
        })
        # The API server's client identity toward kubelets holds the kubelet API only (kubeadm's binding).
        self._create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "devservers:apiserver-kubelet-api-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:kubelet-api-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": APISERVER_KUBELET_CLIENT}],
        })
        # The controller manager is up when its service-account controller has given `default` its account:
        # until then, creating a pod there fails ("serviceaccount default not found").
        deadline = time.monotonic() + self.ready_timeout
        while True:
            status, _ = self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            if status == 200:
                return
            if not self.is_running("kube-controller-manager") or time.monotonic() > deadline:
                raise ControlPlaneError(
                    "kube-controller-manager did not create the default ServiceAccount in namespace 'default' "
                    f"within {self.ready_timeout:.0f}s; its log {self.log_path('kube-controller-manager')} ends "
                    f"with:\n{_log_tail(self.log_path('kube-controller-manager'))}")
            time.sleep(0.25)
