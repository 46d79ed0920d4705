"""Fixtures for the distributed launch: the session's platform (local cluster, CRDs, flavors, the operator
as a process) and one distributed DevServer per module, made by the operator through the SDK.

* **Python in the pods.** The emulator's pods take ``PATH`` from the cluster process when they start, and
  ``python3`` there is the machine's, without torch. ``pods_use_this_python`` puts this interpreter's
  ``bin`` first, as an image with torch installed would. The real control plane's node agent takes its
  ``PATH`` once, when the session starts it, and the plugin puts that same ``bin`` first there. On an outside
  cluster (``DEVSERVERS_TEST_KUBECONFIG``) the image provides it and this changes nothing.
* **Size.** The machine has 2 CPUs and the sample cpu-small flavor asks for a whole one per pod, so a
  2-rank server would take the node and starve other modules' servers. The tests use their own small
  flavor, ``launch-tiny`` (a quarter CPU requested, no CPU limit).
* **Files.** Scripts are copied into every rank's home through ``exec`` with stdin, as on a real cluster
  (the pods of the emulator happen to see the host's files; a real pod does not).
* **Without the operator.** With ``DEVSERVERS_TEST_LAUNCH_PLAY_OPERATOR=1`` the operator is not started and
  ``Servers`` does its part instead: it applies ``manifests.build_objects`` (the operator's own builders) and
  writes the status it would write. Meant for working on launch while the operator is broken.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import NAME_LABEL
from devservers_sdk.kube import DEVSERVERS, PODS, Kube, Resource
from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, create_test_namespace, wait_for
from devservers_sdk.manifests import OperatorConfig, build_objects
from devservers_sdk.settings import load_kubeconfig
from tests.platform_fixture import KUBECTL, Platform, apply_crds_and_flavors, this_python_first_on_path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
EXAMPLE = ROOT / "examples" / "distributed" / "train_ddp.py"
FLAVOR = "launch-tiny"
READY_TIMEOUT = 120.0
PLAY_OPERATOR = os.environ.get("DEVSERVERS_TEST_LAUNCH_PLAY_OPERATOR") == "1"
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
SERVICES = Resource("", "v1", "services", "Service")
FLAVOR_YAML = f"""
apiVersion: devservers.io/v1
kind: DevServerFlavor
metadata:
  name: {FLAVOR}
spec:
  description: "a quarter CPU, for the launch tests"
  resources:
    requests:
      cpu: 250m
      memory: 512Mi
    limits:
      memory: 4Gi
  maxTimeToLive: 1d
"""


def kubectl(kubeconfig: str, *args: str, input_text: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=input_text, capture_output=True,
                          text=True, check=check, timeout=60)


@pytest.fixture(scope="session")
def pods_use_this_python() -> Iterator[None]:
    with this_python_first_on_path():
        yield


@pytest.fixture(scope="module")
def launch_platform(request: pytest.FixtureRequest, cluster: ClusterHandle,
                    pods_use_this_python: None) -> Iterator[Platform]:
    """The platform (or only the CRDs and flavors, when playing the operator), with the small flavor.

    The flavor is cluster-scoped and the cluster is shared by the whole session: it is removed afterwards so
    that other tests see the sample flavors only.
    """
    if PLAY_OPERATOR:
        apply_crds_and_flavors(cluster.kubeconfig)
        platform = Platform(cluster.kubeconfig, None, Path(os.devnull))
    else:
        platform = request.getfixturevalue("platform")
    kubectl(platform.kubeconfig, "apply", "-f", "-", input_text=FLAVOR_YAML)
    yield platform
    kubectl(platform.kubeconfig, "delete", "devserverflavor", FLAVOR, "--ignore-not-found")


class Servers:
    """Makes DevServers Running or Stopped: through the operator, or by doing its part (``PLAY_OPERATOR``)."""

    def __init__(self, client: DevServerClient, kubeconfig: str) -> None:
        self.client = client
        self.kubeconfig = kubeconfig
        self.namespace = client.namespace

    def running(self, name: str, **create: object) -> None:
        if not PLAY_OPERATOR:
            self.client.create(name, flavor=FLAVOR, time_to_live="1h", wait=True, timeout=READY_TIMEOUT,
                               **create)  # type: ignore[arg-type]
            return
        self.client.create(name, flavor=FLAVOR, time_to_live="1h", **create)  # type: ignore[arg-type]
        server = self.client.get(name)
        flavor = next(f for f in self.client.flavors() if f.name == FLAVOR)
        objects = build_objects(server, flavor, OperatorConfig.from_env())
        with self._kube() as kube:
            kube.create(STATEFULSETS, objects.statefulset, namespace=self.namespace)
            kube.create(SERVICES, objects.service, namespace=self.namespace)
            replicas = objects.statefulset["spec"]["replicas"]

            def ready() -> bool:
                pods = kube.list(PODS, namespace=self.namespace, label_selector=f"{NAME_LABEL}={name}")["items"]
                return len(pods) == replicas and all(
                    any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or []) for p in pods)

            wait_for(ready, timeout=READY_TIMEOUT, interval=0.2, message=f"the pods of {name} to be Ready")
            self._status(kube, name, {"phase": "Running", "readyReplicas": replicas, "replicas": replicas})

    def stopped(self, name: str, **create: object) -> None:
        if not PLAY_OPERATOR:
            self.client.create(name, flavor=FLAVOR, time_to_live="1h", **create)  # type: ignore[arg-type]
            self.client.stop(name, wait=True, timeout=READY_TIMEOUT)
            return
        self.client.create(name, flavor=FLAVOR, time_to_live="1h", **create)  # type: ignore[arg-type]
        self.client.stop(name)
        with self._kube() as kube:
            self._status(kube, name, {"phase": "Stopped", "readyReplicas": 0, "replicas": 0})

    @contextlib.contextmanager
    def _kube(self) -> Iterator[Kube]:
        kube = Kube(load_kubeconfig(self.kubeconfig))
        try:
            yield kube
        finally:
            kube.close()

    def _status(self, kube: Kube, name: str, status: dict[str, object]) -> None:
        kube.patch(DEVSERVERS, name, {"status": status}, namespace=self.namespace, subresource="status")


def copy_into_every_rank(client: DevServerClient, name: str, ranks: int, files: dict[str, Path]) -> None:
    for rank in range(ranks):
        for target, source in files.items():
            client.exec(name, ["/bin/sh", "-c", f"cat > {target}"], rank=rank, stdin=source.read_bytes(),
                        check=True)


def leftovers(server: DistributedServer, rank: int, tag: str) -> list[str]:
    """Processes of rank ``rank``'s pod whose command line holds ``tag`` (``ps`` in the pod, as a user would)."""
    listing = server.client.exec(server.name, ["ps", "-eo", "pid,args"], rank=rank, check=True).stdout
    assert isinstance(listing, str)
    return [line for line in listing.splitlines() if tag in line and "ps -eo" not in line]


@dataclass
class DistributedServer:
    """A distributed DevServer the operator brought to Running: worldSize 2, nprocsPerNode 2, gloo."""

    name: str
    namespace: str
    kubeconfig: str
    client: DevServerClient = field(repr=False)


@pytest.fixture(scope="module")
def ddp(launch_platform: Platform, request: pytest.FixtureRequest) -> Iterator[DistributedServer]:
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:30]
    namespace = create_test_namespace(launch_platform.kubeconfig, prefix)
    client = DevServerClient(namespace=namespace, kubeconfig=launch_platform.kubeconfig)
    try:
        Servers(client, launch_platform.kubeconfig).running("ddp", mode="distributed", world_size=2,
                                                            nprocs_per_node=2, backend="gloo")
        files = {"train_ddp.py": EXAMPLE, **{path.name: path for path in SCRIPTS.glob("*.py")}}
        copy_into_every_rank(client, "ddp", 2, files)
        yield DistributedServer("ddp", namespace, launch_platform.kubeconfig, client)
    finally:
        with contextlib.suppress(Exception):
            kubectl(launch_platform.kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        client.close()


@pytest.fixture
def client(launch_platform: Platform, namespace: str) -> Iterator[DevServerClient]:
    """A client in the test's own namespace (for servers a test creates itself)."""
    with DevServerClient(namespace=namespace, kubeconfig=launch_platform.kubeconfig) as sdk:
        yield sdk


@pytest.fixture
def servers(client: DevServerClient, launch_platform: Platform) -> Servers:
    return Servers(client, launch_platform.kubeconfig)
