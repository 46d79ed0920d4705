"""Fixtures for the devctl tests: devctl run two ways, against the session's platform, in a fresh namespace.

``devctl`` is parametrized over ``runner`` (Click's ``CliRunner``, in process) and ``process`` (a real
``python -m devservers_cli`` subprocess); see ``devctl_support``. Its kubeconfig's context defaults to the
test's namespace.

The session's local node has the host's CPUs (two on small CI machines) and ``cpu-small`` asks for one,
so every test deletes its DevServers and waits until their pods are gone before the next one starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devctl_support import Devctl, make_devctl

from tests.platform_fixture import remove_devservers


@pytest.fixture
def kubeconfig_for_test(platform: object, namespace_kubeconfig: str) -> Iterator[str]:
    """The test namespace's kubeconfig, with the platform running; its DevServers are removed afterwards."""
    yield namespace_kubeconfig
    remove_devservers(namespace_kubeconfig)


@pytest.fixture(params=["runner", "process"])
def devctl(request: pytest.FixtureRequest, kubeconfig_for_test: str) -> Devctl:
    """devctl against the platform in the test's namespace, in-process or as a subprocess."""
    return make_devctl(request.param, kubeconfig_for_test)


@pytest.fixture
def process_devctl(kubeconfig_for_test: str) -> Devctl:
    """devctl as a subprocess only (for what only a real process can show)."""
    return make_devctl("process", kubeconfig_for_test)
