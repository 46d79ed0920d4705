"""Running the emulator: in a background thread for tests and scripts, or in the foreground as a server.

The API server runs on its own event loop in its own thread, because the synchronous ``kubernetes``
client (and ``kubectl`` subprocesses a test waits on) would deadlock against a server sharing the caller's
loop. It binds 127.0.0.1 only, and writes a kubeconfig (mode 0600) holding a random bearer token once it
answers requests, so "the kubeconfig exists" means "the cluster is ready".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from . import tls
from .apiserver.api import ClusterAPI
from .apiserver.faults import FaultSettings
from .apiserver.server import ApiServer
from .controllers.events import EventRecorder
from .controllers.manager import Controllers
from .controllers.scheduler import Scheduler

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTEXT_NAME = "devservers-local"
ADMIN_USER = "localcluster-admin"
NODE_NAME = "localcluster"
OBJECTS_FILE = "objects.json"
OBJECTS_SAVE_PERIOD = 5.0
"""Where a serve with --keep-objects saves the objects at shutdown, in its state dir."""


def kubeconfig_document(server: str, token: str, *, ca_pem: bytes, name: str = CONTEXT_NAME,
                        namespace: str = "default", user: str = ADMIN_USER) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server,
                                                "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": f"{name}-{user}", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}", "namespace": namespace}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, document: dict[str, Any]) -> None:
    """Write atomically with mode 0600: the file holds a credential, and readers poll for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    os.replace(tmp, path)


class ClusterRuntime:
    """Everything that lives on the cluster's event loop: API, controllers, kubelet and HTTP server."""

    def __init__(self, *, state_dir: Path, port: int = 0, node_capacity: dict[str, str] | None = None,
                 kubelet: bool = True, kubelet_options: dict[str, Any] | None = None,
                 controllers: bool = True, nodes: int = 1,
                 keep_objects: bool = False) -> None:
        if nodes < 1:
            raise ValueError(f"nodes={nodes}: a cluster needs at least one node")
        # Node 1 keeps the historical name and directories; node N is "<name>-N" with its state in node-N/,
        # as on the real control plane.
        self.node_names = [NODE_NAME] + [f"{NODE_NAME}-{n}" for n in range(2, nodes + 1)]
        self.state_dir = state_dir
        # With keep_objects the objects outlive the process: saved to the state dir at stop, loaded at start
        # (with the volumes, which live there too), as a real control plane's etcd would keep them.
        self.keep_objects = keep_objects
        self.objects_file = state_dir / OBJECTS_FILE
        self.restored = 0
        self.port = port
        self.token = secrets.token_urlsafe(32)
        self.certificate = tls.generate()
        self.api = ClusterAPI(user=ADMIN_USER)
        self.controllers = Controllers(self.api, state_dir=state_dir, root_ca_pem=self.certificate.ca_pem)
        self.events = EventRecorder(self.api, NODE_NAME)
        self.scheduler = Scheduler(self.api, record_event=self._scheduler_event)
        self._with_kubelet = kubelet
        self._node_capacity = node_capacity
        self._kubelet_options = kubelet_options or {}
        self._with_controllers = controllers
        self.kubelet: Any = None
        # The node agent reaches this API server as a real kubelet would: over HTTPS, as system:node:<name>.
        self.node_tokens = {name: secrets.token_urlsafe(32) for name in self.node_names}
        self.node_token = self.node_tokens[NODE_NAME]
        tokens = {
            self.token: {"username": ADMIN_USER, "groups": ["system:masters", "system:authenticated"]},
            **{token: {"username": f"system:node:{name}", "groups": ["system:nodes", "system:authenticated"]}
               for name, token in self.node_tokens.items()},
        }
        # Between the API server and the node's kubelet API, what a real cluster has: the kubelet serves a
        # certificate of the cluster CA, and takes only the API server's kubelet client certificate.
        pki = state_dir / "pki"
        self._kubelet_serving = self.certificate.issue("localcluster-kubelet", hosts=("127.0.0.1",))
        kubelet_client = self.certificate.issue(tls.APISERVER_KUBELET_CLIENT, client=True)
        self.server = ApiServer(self.api, tokens=tokens,
                                kubelet_client_ssl=kubelet_client.client_context(pki, name="apiserver-kubelet-client"))
        self.kubelet_api: Any = None
        self.kubelets: list[Any] = []  # one per node, node 1 first (also ``kubelet``)
        self._kubelet_apis: list[Any] = []
        self._runner: web.AppRunner | None = None
        self._compactor: asyncio.Task[None] | None = None
        self.url = ""

    def add_user(self, username: str, groups: list[str] | None = None) -> str:
        """Register a bearer token for another identity (RBAC is not enforced; admission sees the user)."""
        token = secrets.token_urlsafe(32)
        self.server.tokens[token] = {"username": username, "groups": [*(groups or []), "system:authenticated"]}
        return token

    async def _compact_history(self) -> None:
        """Compact the watch history on the configured period, as etcd compaction would; with keep_objects,
        save the objects every few seconds when they changed, so a killed cluster loses seconds, not all."""
        last = asyncio.get_running_loop().time()
        saved_at, saved_revision = last, self.api.store.revision
        while True:
            await asyncio.sleep(0.5)
            if self.keep_objects and self.api.store.revision != saved_revision \
                    and asyncio.get_running_loop().time() - saved_at >= OBJECTS_SAVE_PERIOD:
                saved_at, saved_revision = asyncio.get_running_loop().time(), self.api.store.revision
                self._save_objects()
            period = self.server.faults.settings.compact_every
            now = asyncio.get_running_loop().time()
            if period and now - last >= period:
                self.api.store.compact()
                self.server.faults.injected["compaction"] += 1
                last = now

    def _scheduler_event(self, pod: dict[str, Any], type_: str, reason: str, message: str, *,
                         component: str) -> None:
        self.events.record(pod, type_, reason, message, component=component)

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.keep_objects and self.objects_file.is_file():
            self.restored = self.api.restore(json.loads(self.objects_file.read_text()))
        self._compactor = asyncio.create_task(self._compact_history(), name="localcluster-compactor")
        if self._with_controllers:
            await self.controllers.start()
        await self.scheduler.start()
        self._runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        ssl_context = self.certificate.server_context(self.state_dir / "pki")
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.server.server_url = f"127.0.0.1:{self.port}"
        if self._with_kubelet:
            for name in self.node_names:
                await self._start_node(name)
            self.kubelet, self.kubelet_api = self.kubelets[0], self._kubelet_apis[0]

    async def _start_node(self, name: str) -> None:
        from .node.apiclient import ApiClient, Credentials
        from .node.kubelet import Kubelet
        from .node.kubelet_api import KubeletAPIServer

        token = self.node_tokens[name]
        client = ApiClient(Credentials(server=self.url, ca_pem=self.certificate.ca_pem, token=token))
        options = {"capacity": self._node_capacity, **self._kubelet_options}
        if name != NODE_NAME:
            # Pod addresses from a /16 of its own, as a real node's podCIDR: never one another node hands out.
            taken = {kubelet.ips.cidr for kubelet in self.kubelets}
            options["pod_cidr"] = next(cidr for octet in range(2, 255)
                                       if (cidr := f"127.{octet}.0.0/16") not in taken)
        state_dir = self.state_dir if name == NODE_NAME else self.state_dir / name.replace(NODE_NAME, "node", 1)
        kubelet = Kubelet(client, state_dir=state_dir, node_name=name, names_client=client, **options)
        # The API server reaches pods only through the kubelet API, at the port the Node advertises: it
        # must listen before the Node is registered.
        serving = self._kubelet_serving.server_context(self.state_dir / "pki", name="kubelet",
                                                       verify_clients=True)
        kubelet_api = KubeletAPIServer(kubelet, ssl_context=serving)
        await kubelet_api.start()
        kubelet.kubelet_port = kubelet_api.port
        await kubelet.start()
        self.kubelets.append(kubelet)
        self._kubelet_apis.append(kubelet_api)

    async def stop(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
        for kubelet in self.kubelets:
            await kubelet.stop()
            await kubelet.client.close()
        for kubelet_api in self._kubelet_apis:
            await kubelet_api.stop()
        await self.server.kubelet_proxy.close()
        self.server.stop_watches()
        await self.scheduler.stop()
        await self.controllers.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.keep_objects:
            self._save_objects()

    def _save_objects(self) -> None:
        tmp = self.objects_file.with_name(f".{self.objects_file.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds Secrets
        with os.fdopen(fd, "w") as handle:
            json.dump(self.api.snapshot(), handle, separators=(",", ":"))
        os.replace(tmp, self.objects_file)

    def kubeconfig(self, *, namespace: str = "default", token: str | None = None) -> dict[str, Any]:
        return kubeconfig_document(self.url, token or self.token, ca_pem=self.certificate.ca_pem,
                                   namespace=namespace)


class LocalCluster:
    """A local cluster: our emulator in a background thread, or the real control plane with our node agent.

    ``control_plane="emulator"`` (the default) starts in a fraction of a second and can inject faults;
    ``"kubernetes"`` runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from Go
    modules on first use, see ``controlplane/``) with our node agent as the node, and mints a client
    certificate for each of ``users`` (``[("alice", []), ("carol", ["devservers:admins"])]``). ``gpus=N`` gives
    every node N fake NVIDIA GPUs (``node/fake_gpus.py``; ``set_gpu_utilization`` says what they report).

    Example::

        with LocalCluster() as cluster:
            subprocess.run(["kubectl", "--kubeconfig", cluster.kubeconfig, "get", "nodes"], check=True)
    """

    def __init__(self, *, state_dir: Path | str | None = None, port: int = 0,
                 node_capacity: dict[str, str] | None = None, kubelet: bool = True,
                 control_plane: str = "emulator", users: list[tuple[str, list[str]]] | None = None,
                 progress: Callable[[str], None] | None = None, nodes: int = 1, gpus: int = 0) -> None:
        if control_plane not in ("emulator", "kubernetes"):
            raise ValueError(f"control_plane must be 'emulator' or 'kubernetes', not {control_plane!r}")
        self.control_plane = control_plane
        self._users = list(users or [])
        self._progress = progress
        self._nodes = nodes
        if nodes < 1:
            raise ValueError(f"nodes={nodes}: a cluster needs at least one node")
        self.real: Any = None
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="localcluster-"))
        self._port = port
        self._node_capacity = with_gpus(node_capacity, gpus)
        self._with_kubelet = kubelet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.runtime: ClusterRuntime | None = None
        self.kubeconfig = str(self.state_dir / "kubeconfig")

    @property
    def url(self) -> str:
        if self.real is not None:
            return str(self.real.control_plane.server)
        assert self.runtime is not None
        return self.runtime.url

    @property
    def version(self) -> str:
        if self.real is not None:
            return str(self.real.control_plane.binaries.kubernetes_version)
        from .apiserver.discovery import GIT_VERSION

        return GIT_VERSION

    def write_kubeconfig(self, path: Path | str) -> None:
        """Write the admin kubeconfig (mode 0600) to ``path``, with its context named ``devservers-local``."""
        write_kubeconfig(Path(path), yaml.safe_load(Path(self.kubeconfig).read_text()))

    def user_kubeconfig(self, user: str, groups: list[str] | None = None, *, path: Path | str | None = None,
                        namespace: str = "default") -> str:
        """A kubeconfig that authenticates as ``user`` in ``groups`` (a client certificate of the cluster CA on
        the real control plane, a bearer token on the emulator, which does not enforce RBAC)."""
        target = Path(path) if path else self.state_dir / "users" / f"{user}.kubeconfig"
        if self.real is not None:
            source = self.real.control_plane.kubeconfig_for(user, tuple(groups or ()))
            document = _renamed_context(yaml.safe_load(source.read_text()), namespace)
            write_kubeconfig(target, document)
            return str(target)
        return self.kubeconfig_for(target, namespace=namespace, token=self.add_user(user, groups))

    @property
    def token(self) -> str:
        assert self.runtime is not None
        return self.runtime.token

    def start(self) -> LocalCluster:
        if self.control_plane == "kubernetes":
            return self._start_kubernetes()
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.runtime = ClusterRuntime(state_dir=self.state_dir, port=self._port,
                                              node_capacity=self._node_capacity, kubelet=self._with_kubelet,
                                              nodes=self._nodes)
                loop.run_until_complete(self.runtime.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.runtime.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=main, name="localcluster", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError(f"the local cluster failed to start: {failure[0]}") from failure[0]
        assert self.runtime is not None
        write_kubeconfig(Path(self.kubeconfig), self.runtime.kubeconfig())
        return self

    def _start_kubernetes(self) -> LocalCluster:
        from .controlplane.local import KubernetesRuntime

        self.real = KubernetesRuntime(self.state_dir, node_capacity=self._node_capacity, users=self._users,
                                      progress=self._progress, nodes=self._nodes)
        try:
            self.real.start()
        except BaseException:
            self.real.stop()
            raise
        admin = yaml.safe_load(self.real.control_plane.admin_kubeconfig.read_text())
        write_kubeconfig(Path(self.kubeconfig), _renamed_context(admin, "default"))
        return self

    def stop(self) -> None:
        if self.real is not None:
            self.real.stop()
            if self._own_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            return
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run ``fn`` on the cluster's loop (e.g. to inspect the store or toggle a fault) and return its result."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def add_user(self, username: str, groups: list[str] | None = None) -> str:
        assert self.runtime is not None
        runtime = self.runtime
        return self.call(lambda: runtime.add_user(username, groups))

    def set_faults(self, settings: FaultSettings | str) -> None:
        """Make the API server flaky (see ``faults.py``); ``FaultSettings()`` or ``""`` turns it off."""
        assert self.runtime is not None
        runtime = self.runtime
        parsed = FaultSettings.parse(settings) if isinstance(settings, str) else settings
        self.call(lambda: runtime.server.faults.configure(parsed))

    def fault_counts(self) -> dict[str, int]:
        assert self.runtime is not None
        runtime = self.runtime
        return self.call(lambda: dict(runtime.server.faults.injected))

    def request_counts(self) -> dict[str, int]:
        """Requests served so far, by verb and resource (and "total")."""
        assert self.runtime is not None
        runtime = self.runtime
        return self.call(runtime.server.requests.snapshot)

    def node_state_dirs(self) -> list[Path]:
        """The state directory of every node (pods, volumes, fake GPU readings)."""
        if self.real is not None:
            return [Path(self.real.node_dir(name)) for name in self.real.node_names]
        return [self.state_dir]

    def set_gpu_utilization(self, percent: float, *, memory_used_mib: float = 0,
                            pod: tuple[str, str] | None = None) -> None:
        """What the fake GPUs' ``nvidia-smi`` reports from now on: for one pod ``(namespace, name)``, or for
        every GPU without a reading of its own."""
        from .node.fake_gpus import write_reading

        for directory in self.node_state_dirs():
            write_reading(directory, percent, memory_used_mib=memory_used_mib, pod=pod)

    def kubeconfig_for(self, path: Path | str, *, namespace: str = "default", token: str | None = None) -> str:
        """Write another kubeconfig for this cluster (a namespace or identity of its own) and return its path."""
        if self.real is not None:
            if token is not None:
                raise ValueError("the real control plane authenticates users by certificate: use user_kubeconfig()")
            write_kubeconfig(Path(path), _renamed_context(yaml.safe_load(Path(self.kubeconfig).read_text()),
                                                          namespace))
            return str(path)
        assert self.runtime is not None
        write_kubeconfig(Path(path), self.runtime.kubeconfig(namespace=namespace, token=token))
        return str(path)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def with_gpus(node_capacity: dict[str, str] | None, gpus: int) -> dict[str, str] | None:
    """The node capacity with ``gpus`` fake NVIDIA GPUs added (none: unchanged)."""
    if gpus < 0:
        raise ValueError(f"gpus must be 0 or more, not {gpus}")
    if not gpus:
        return node_capacity
    return {**(node_capacity or {}), "nvidia.com/gpu": str(gpus)}


def _renamed_context(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A single-context kubeconfig renamed to ``devservers-local`` (what devctl and our docs expect)."""
    cluster = document["clusters"][0]["cluster"]
    user = document["users"][0]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": f"{CONTEXT_NAME}-{user['name']}", "user": user["user"]}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME,
                                                        "user": f"{CONTEXT_NAME}-{user['name']}",
                                                        "namespace": namespace}}],
        "current-context": CONTEXT_NAME,
    }


async def serve(*, kubeconfig: Path, port: int = 0, state_dir: Path | None = None,
                node_capacity: dict[str, str] | None = None, faults: FaultSettings | None = None,
                on_ready: Callable[[str], None] | None = None, nodes: int = 1,
                keep_objects: bool = False) -> None:
    """Run the cluster in the foreground until SIGINT or SIGTERM, then shut down cleanly.

    With ``keep_objects`` (and a ``state_dir``) the objects are saved there at shutdown and loaded at the
    next start, so a stopped cluster comes back with its objects and volumes.
    """
    temporary = state_dir is None
    state = state_dir or Path(tempfile.mkdtemp(prefix="localcluster-"))
    runtime = ClusterRuntime(state_dir=state, port=port, node_capacity=node_capacity, nodes=nodes,
                             keep_objects=keep_objects and not temporary)
    if faults is not None:
        runtime.server.faults.configure(faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start()
    try:
        write_kubeconfig(kubeconfig, runtime.kubeconfig())
        if on_ready is not None:
            on_ready(runtime.url)
        await stop.wait()
    finally:
        await runtime.stop()
        with contextlib.suppress(FileNotFoundError):
            kubeconfig.unlink()
        if temporary:
            shutil.rmtree(state, ignore_errors=True)
