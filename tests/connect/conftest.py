"""Fixtures for connecting to DevServers: the session's platform (with the operator), a small flavor, and
module-scoped DevServers with persistent homes, made by the operator through the SDK.

As in ``tests/launch``: pods take this interpreter's ``bin`` first on ``PATH`` (an image with Python,
JupyterLab and rsync installed), and a flavor of a quarter CPU keeps a 2-rank server from taking the
2-core node. Pods of the local cluster are processes of this machine, so ``sshd``, ``tar`` and
``jupyter`` inside a "pod" are the machine's own programs, reached only through the API server
(``pods/exec``, ``pods/portforward``), as on a real cluster.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace
from tests.launch.conftest import kubectl
from tests.platform_fixture import Platform, this_python_first_on_path

FLAVOR = "connect-tiny"
READY_TIMEOUT = 120.0
FLAVOR_YAML = f"""
apiVersion: devservers.io/v1
kind: DevServerFlavor
metadata:
  name: {FLAVOR}
spec:
  description: "a quarter CPU, for the connect tests"
  resources:
    requests:
      cpu: 250m
      memory: 256Mi
    limits:
      memory: 4Gi
  maxTimeToLive: 1d
"""


def free_port() -> int:
    """A port free on this machine now (pods share its ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def pods_use_this_python() -> Iterator[None]:
    with this_python_first_on_path():
        yield


@pytest.fixture(scope="module")
def connect_platform(platform: Platform, pods_use_this_python: None) -> Iterator[Platform]:
    kubectl(platform.kubeconfig, "apply", "-f", "-", input_text=FLAVOR_YAML)
    yield platform
    kubectl(platform.kubeconfig, "delete", "devserverflavor", FLAVOR, "--ignore-not-found", check=False)


@dataclass
class Server:
    """A DevServer the operator brought to Running, in a namespace of its own."""

    name: str
    namespace: str
    kubeconfig: str
    world_size: int
    client: DevServerClient = field(repr=False)

    @property
    def namespace_kubeconfig(self) -> str:
        return self.kubeconfig


def _namespace_kubeconfig(kubeconfig: str, namespace: str, directory: Path) -> str:
    """A copy of the kubeconfig whose context defaults to ``namespace`` (what devctl and ssh-proxy read)."""
    path = directory / f"{namespace}.kubeconfig"
    path.write_text(Path(kubeconfig).read_text())
    path.chmod(0o600)
    kubectl(str(path), "config", "set-context", "--current", f"--namespace={namespace}")
    return str(path)


@contextlib.contextmanager
def _server(platform: Platform, base: str, directory: Path, **create: object) -> Iterator[Server]:
    namespace = create_test_namespace(platform.kubeconfig, base)
    kubeconfig = _namespace_kubeconfig(platform.kubeconfig, namespace, directory)
    client = DevServerClient(kubeconfig=kubeconfig)
    try:
        client.create("box", flavor=FLAVOR, time_to_live="1h", home_size="1Gi", wait=True,
                      timeout=READY_TIMEOUT, **create)  # type: ignore[arg-type]
        yield Server("box", namespace, kubeconfig, int(create.get("world_size", 1)), client)  # type: ignore[call-overload]
    finally:
        with contextlib.suppress(Exception):
            kubectl(platform.kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        client.close()


@pytest.fixture(scope="module")
def server(connect_platform: Platform, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A standalone DevServer with a persistent home, for a whole test module."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:30]
    with _server(connect_platform, prefix, tmp_path_factory.mktemp("kubeconfig")) as made:
        yield made


@pytest.fixture(scope="module")
def ddp(connect_platform: Platform, request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A distributed DevServer (2 ranks, 2 processes each, gloo) with persistent homes."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:26] + "-ddp"
    with _server(connect_platform, prefix, tmp_path_factory.mktemp("kubeconfig"), mode="distributed",
                 world_size=2, nprocs_per_node=2, backend="gloo") as made:
        yield made
