"""Pytest fixtures: one local cluster per test session, a fresh namespace per test.

Load with ``pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin"]`` in a conftest.

Set ``DEVSERVERS_TEST_KUBECONFIG`` to a kubeconfig to run the same tests against a real cluster instead;
tests marked ``emulator_only`` (they inspect or steer the emulator itself) are then skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cluster import LocalCluster

REAL_CLUSTER_ENV = "DEVSERVERS_TEST_KUBECONFIG"


@dataclass
class ClusterHandle:
    """What a test needs to reach the cluster, whichever kind it is."""

    kubeconfig: str
    emulator: LocalCluster | None

    def require_emulator(self) -> LocalCluster:
        if self.emulator is None:
            pytest.skip("needs the local cluster emulator")
        return self.emulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator_only: meaningful only against the local cluster emulator")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get(REAL_CLUSTER_ENV):
        return
    skip = pytest.mark.skip(reason=f"emulator_only test; {REAL_CLUSTER_ENV} points at a real cluster")
    for item in items:
        if "emulator_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterHandle]:
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        yield ClusterHandle(kubeconfig=real, emulator=None)
        return
    # A roomy node: pods are local processes whose requests are not enforced, and tests create servers faster
    # than terminating pods free the host's real 2 CPUs.
    with LocalCluster(node_capacity={"cpu": "64", "memory": "256Gi"}) as local:
        yield ClusterHandle(kubeconfig=local.kubeconfig, emulator=local)


@pytest.fixture(scope="session")
def kubeconfig(cluster: ClusterHandle) -> str:
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


def wait_for(predicate: Any, *, timeout: float = 20.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message or predicate!r} (last value: {last!r})")
