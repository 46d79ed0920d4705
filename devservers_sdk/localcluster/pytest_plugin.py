"""Pytest fixtures: one local cluster per test session, a fresh namespace per test.

Load with ``pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin"]`` in a conftest.

Which cluster the ``cluster`` fixture gives:

* by default, our emulator (``LocalCluster()``);
* with ``DEVSERVERS_TEST_BACKEND=kubernetes``, the real control plane (etcd and the kube-* binaries, built from
  Go modules on first use) with our node agent as its node;
* with ``DEVSERVERS_TEST_KUBECONFIG=/path/to/kubeconfig``, an outside cluster.

Tests marked ``emulator_only`` (they inspect or steer the emulator itself) are skipped on the last two.

The ``kubernetes_binaries`` fixture hands out the built binaries. Building them the first time takes many
minutes on two cores, so it happens once collection is finished, before any test runs (never inside a test's
timeout), and only when a selected test needs them; it shows its progress on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cluster import LocalCluster

REAL_CLUSTER_ENV = "DEVSERVERS_TEST_KUBECONFIG"
BACKEND_ENV = "DEVSERVERS_TEST_BACKEND"
BACKENDS = ("emulator", "kubernetes")
# Fixtures that need the real control plane's binaries: the build runs before the tests when one is used.
_NEEDS_BINARIES = {"kubernetes_binaries"}
_built: pytest.StashKey[Any] = pytest.StashKey()


def backend() -> str:
    """``emulator`` or ``kubernetes`` (``DEVSERVERS_TEST_BACKEND``); a typo fails loudly rather than silently."""
    value = os.environ.get(BACKEND_ENV, "").strip() or "emulator"
    if value not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND_ENV}={value!r}: choose one of {', '.join(BACKENDS)}")
    return value


@dataclass
class ClusterHandle:
    """What a test needs to reach the cluster, whichever kind it is."""

    kubeconfig: str
    emulator: LocalCluster | None
    # Ours, whichever control plane it runs (None for an outside cluster).
    local: LocalCluster | None = None

    def require_emulator(self) -> LocalCluster:
        if self.emulator is None:
            pytest.skip("needs the local cluster emulator")
        return self.emulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator_only: meaningful only against the local cluster emulator")


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = backend() == "kubernetes" and not os.environ.get(REAL_CLUSTER_ENV)
    wanted = wanted or any(_NEEDS_BINARIES & set(getattr(item, "fixturenames", ())) for item in session.items)
    if not wanted:
        return
    from .controlplane.build import ControlPlaneBuildError, ensure_binaries

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[control plane] {line}")

    try:
        session.stash[_built] = ensure_binaries(progress=progress)
    except ControlPlaneBuildError as exc:
        session.stash[_built] = exc


@pytest.fixture(scope="session")
def kubernetes_binaries(request: pytest.FixtureRequest) -> Any:
    """The real control plane's binaries; skips only when Go is not installed and nothing is cached."""
    from .controlplane.build import ControlPlaneBuildError, GoToolchainError, ensure_binaries

    built = request.session.stash.get(_built, None)
    if built is None:
        try:
            built = ensure_binaries()
        except ControlPlaneBuildError as exc:
            built = exc
    if isinstance(built, GoToolchainError) and "not installed" in str(built):
        pytest.skip(str(built))
    if isinstance(built, ControlPlaneBuildError):
        raise built
    return built


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(REAL_CLUSTER_ENV):
        reason = f"emulator_only test; {REAL_CLUSTER_ENV} points at a real cluster"
    elif backend() == "kubernetes":
        reason = f"emulator_only test; {BACKEND_ENV}=kubernetes runs the real control plane"
    else:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "emulator_only" in item.keywords:
            item.add_marker(skip)


# A roomy node: pods are local processes whose requests are not enforced, and tests create servers faster than
# terminating pods free the host's real 2 CPUs.
ROOMY_NODE = {"cpu": "64", "memory": "256Gi"}
TEST_USERS = [("alice", []), ("bob", []), ("carol", ["devservers:admins"])]


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    with cluster_for_tests(request, node_capacity=ROOMY_NODE) as handle:
        yield handle


@contextlib.contextmanager
def cluster_for_tests(request: pytest.FixtureRequest, *, node_capacity: dict[str, str],
                      nodes: int = 1) -> Iterator[ClusterHandle]:
    """A cluster for a folder of tests that overrides ``cluster``: the outside cluster when one is given, else a
    local cluster of its own, the real control plane or the emulator as ``DEVSERVERS_TEST_BACKEND`` says.

    Real control plane: the node agents take PATH once, when they start; this interpreter's bin goes first so
    that pods find this environment's python (with torch), as an image would provide it (``devctl local up``
    does the same). Users alice, bob and carol are minted.

    A folder that overrides ``cluster`` must also override every session-scoped fixture it uses that depends
    on it (``kubeconfig``): pytest computes a session fixture once, for whichever folder asked first.
    """
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        yield ClusterHandle(kubeconfig=real, emulator=None)
        return
    if backend() == "kubernetes":
        request.getfixturevalue("kubernetes_binaries")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent),
                                                  os.environ.get("PATH", os.defpath)]))
            local = LocalCluster(control_plane="kubernetes", node_capacity=node_capacity, users=TEST_USERS,
                                 nodes=nodes).start()
        try:
            yield ClusterHandle(kubeconfig=local.kubeconfig, emulator=None, local=local)
        finally:
            local.stop()
        return
    with LocalCluster(node_capacity=node_capacity, nodes=nodes) as local:
        yield ClusterHandle(kubeconfig=local.kubeconfig, emulator=local, local=local)


@pytest.fixture(scope="module")
def kubeconfig(cluster: ClusterHandle) -> str:
    """The admin kubeconfig of the test's cluster. Module-scoped, not session-scoped: pytest would compute a
    session fixture once, for whichever folder asked first, and hand that folder's cluster to one that
    overrides ``cluster``."""
    return cluster.kubeconfig


def _core_api(kubeconfig: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


@pytest.fixture
def namespace(cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of its own for one test, deleted (without waiting) afterwards."""
    # Named after the test's folder and name, so a leftover object says which test made it.
    folder = Path(str(request.node.path)).parent.name
    name = create_test_namespace(cluster.kubeconfig, f"{folder}-{request.node.name}")
    try:
        yield name
    finally:
        delete_test_namespace(cluster.kubeconfig, name)


def create_test_namespace(kubeconfig: str, base: str) -> str:
    """Create a namespace ``<base>-<random>`` (base made DNS-safe), labelled as a test's, and return its name."""
    base = base.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-").strip("-")[:50].strip("-") or "test"
    name = f"{base}-{secrets.token_hex(3)}"
    core = _core_api(kubeconfig)
    try:
        core.create_namespace({"metadata": {"name": name, "labels": {"devservers.io/test": "true"}}})
    finally:
        core.api_client.close()
    return name


def delete_test_namespace(kubeconfig: str, name: str) -> None:
    """Start deleting a test's namespace; never raises, so cleanup cannot mask the test's own outcome."""
    core = _core_api(kubeconfig)
    with contextlib.suppress(Exception):
        core.delete_namespace(name)
    core.api_client.close()


@pytest.fixture
def namespace_kubeconfig(cluster: ClusterHandle, namespace: str, tmp_path: Path) -> str:
    """A kubeconfig whose current context defaults to the test's namespace."""
    import yaml

    document = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    current = document["current-context"]
    for context in document["contexts"]:
        if context["name"] == current:
            context["context"]["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return str(path)


def wait_for(predicate: Any, *, timeout: float = 60.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message or predicate!r} (last value: {last!r})")


def wait_established(kubeconfig: str, *crds: str, timeout: float = 120.0) -> None:
    """Until every named CustomResourceDefinition is Established.

    Not ``kubectl wait --for=condition=Established``: a CRD a moment old has no ``status.conditions`` yet, and
    kubectl v1.37 then fails at once (``.status.conditions accessor error: <nil> is of the type <nil>``) instead
    of waiting; a loaded trial's control-plane fault test met it.
    """
    from kubernetes import client, config

    api = client.ApiextensionsV1Api(config.new_client_from_config(kubeconfig))

    def established(name: str) -> bool:
        crd = api.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    try:
        wait_for(lambda: all(established(name) for name in crds), timeout=timeout,
                 message=f"CustomResourceDefinitions {', '.join(crds)} Established")
    finally:
        api.api_client.close()
