"""The node agent as a process: a kubelet for any API server, and the kubelet API it proxies to.

``python -m devservers_sdk.localcluster node --kubeconfig node.kubeconfig --state-dir DIR ...`` registers a
Node, runs the pods bound to it as local processes and serves ``/exec``, ``/attach``, ``/portForward`` and
``/containerLogs`` on its own HTTPS port, which it advertises in ``status.daemonEndpoints``. The kubeconfig
should authenticate as ``system:node:<name>`` in ``system:nodes``, so the Node authorizer and NodeRestriction
admit exactly what a kubelet may do. With ``--provisioner-kubeconfig`` the same process also runs the
local-path volume provisioner (``controllers/local_path.py``), as kind runs one on its node.

Pods live as long as the agent: stopping it (SIGTERM/SIGINT) stops them; a SIGKILL takes them down too (their
shims die with their parent). The API objects stay, so a restarted agent starts them again, as a rebooted
node does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .apiclient import ApiClient, Credentials
from .kubelet import Kubelet

log = logging.getLogger(__name__)


@dataclass
class NodeAgentConfig:
    """Everything one node needs: who it is, where it keeps pods, and how the API server reaches it."""

    kubeconfig: Path
    state_dir: Path
    node_name: str = "localcluster"
    capacity: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # The kubelet API: its serving certificate (signed by the cluster CA, so --kubelet-certificate-authority
    # verifies it), and the CA of the API server's client certificate (--kubelet-client-certificate).
    serving_cert: Path | None = None
    serving_key: Path | None = None
    client_ca: Path | None = None
    kubelet_port: int = 0
    provisioner_kubeconfig: Path | None = None
    # Read access to every pod, Service and Endpoints (what CoreDNS holds), for the hosts file.
    names_kubeconfig: Path | None = None
    pod_cidr: str | None = None
    isolation: str = "auto"
    # What the Node declares in status.declaredFeatures (None: the kubelet's default, as a 1.37 kubelet).
    declared_features: tuple[str, ...] | None = None


def _credentials(path: Path) -> Credentials:
    return Credentials.from_kubeconfig(yaml.safe_load(path.read_text()))


def _serving_context(config: NodeAgentConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if config.serving_cert is None or config.serving_key is None:
        raise ValueError("the kubelet API needs --serving-cert and --serving-key")
    context.load_cert_chain(config.serving_cert, config.serving_key)
    if config.client_ca is not None:
        # Only the API server (or whoever holds a certificate from the cluster CA) may exec into pods.
        context.load_verify_locations(config.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class NodeAgent:
    """A running node: the kubelet, its API server and (optionally) the volume provisioner."""

    def __init__(self, config: NodeAgentConfig) -> None:
        self.config = config
        self.client = ApiClient(_credentials(config.kubeconfig), user_agent=f"kubelet/{config.node_name}")
        self.names_client = (
            ApiClient(_credentials(config.names_kubeconfig), user_agent="cluster-names")
            if config.names_kubeconfig is not None else None
        )
        self.kubelet: Kubelet | None = None
        self.kubelet_api: Any = None
        self.provisioner: Any = None

    async def start(self) -> None:
        from .kubelet_api import KubeletAPIServer

        config = self.config
        # The port must be known before the Node is registered (it is advertised in its status).
        kubelet = Kubelet(
            self.client,
            state_dir=config.state_dir,
            node_name=config.node_name,
            capacity=config.capacity or None,
            labels=config.labels,
            isolation=config.isolation,
            names_client=self.names_client,
            pod_cidr=config.pod_cidr,
            declared_features=config.declared_features,
        )
        self.kubelet_api = KubeletAPIServer(kubelet, port=config.kubelet_port, ssl_context=_serving_context(config))
        await self.kubelet_api.start()
        kubelet.kubelet_port = self.kubelet_api.port
        self.kubelet = kubelet
        if config.provisioner_kubeconfig is not None:
            from ..controllers.local_path import LocalPathProvisioner

            provisioner_client = ApiClient(_credentials(config.provisioner_kubeconfig),
                                           user_agent="local-path-provisioner")
            self.provisioner = LocalPathProvisioner(provisioner_client, volumes_dir=config.state_dir / "volumes")
            await self.provisioner.start()
        await kubelet.start()

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self.kubelet_api is not None:
            await self.kubelet_api.stop()
        if self.provisioner is not None:
            await self.provisioner.stop()
            await self.provisioner.client.close()
        if self.names_client is not None:
            await self.names_client.close()
        await self.client.close()


async def run(config: NodeAgentConfig, *, on_ready: Callable[[NodeAgent], None] | None = None) -> None:
    """Run one node in the foreground until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    agent = NodeAgent(config)
    try:
        await agent.start()
        if on_ready is not None:
            on_ready(agent)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await agent.stop()
