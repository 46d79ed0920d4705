"""Fixtures for the notebook front end: a real IPython shell with the extension, pointed at the platform.

Everything runs against the session's platform (local cluster, CRDs, sample flavors, the operator), through
the real SDK client: no fake client, no monkeypatching.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import create_test_namespace

REPO = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("devservers_magics") is None:  # until pyproject.toml packages magics/
    sys.path.insert(0, str(REPO / "magics"))

from devservers_sdk.client import DevServerClient  # noqa: E402
from tests.magics.magic_support import READY_TIMEOUT, CellRun, Recorder, shell_pointed_at, the_ipython_shell  # noqa: E402
from tests.platform_fixture import KUBECTL, Platform  # noqa: E402


@pytest.fixture(scope="session")
def ipython() -> Any:
    """The one IPython shell of the session (IPython allows one), with the extension loaded."""
    return the_ipython_shell()


@pytest.fixture
def shell(ipython: Any, platform: Platform, namespace: str) -> Iterator[Any]:
    """The shell configured, through ``%config``, for this test's namespace of the platform."""
    with shell_pointed_at(ipython, platform.kubeconfig, namespace) as shell:
        yield shell


@pytest.fixture
def client(platform: Platform, namespace: str) -> Iterator[DevServerClient]:
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig) as sdk:
        yield sdk


@dataclass
class RunningServer:
    """A DevServer the operator brought to Running, shared by the tests of a module."""

    name: str
    namespace: str
    kubeconfig: str
    client: DevServerClient = field(repr=False)


@pytest.fixture(scope="module")
def running(platform: Platform, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One running DevServer (cpu-small) in a namespace of the module's own."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:30]
    namespace = create_test_namespace(platform.kubeconfig, prefix)
    sdk = DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig)
    try:
        sdk.create("cells", flavor="cpu-small", time_to_live="1h", wait=True, timeout=READY_TIMEOUT)
        yield RunningServer("cells", namespace, platform.kubeconfig, sdk)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [
                    KUBECTL,
                    "--kubeconfig",
                    platform.kubeconfig,
                    "delete",
                    "namespace",
                    namespace,
                    "--wait=false",
                ],
                capture_output=True,
                timeout=60,
            )
        sdk.close()


@pytest.fixture
def running_shell(ipython: Any, running: RunningServer) -> Iterator[Any]:
    with shell_pointed_at(ipython, running.kubeconfig, running.namespace) as shell:
        yield shell


@pytest.fixture
def run_cell(ipython: Any) -> Callable[[str], CellRun]:
    """Run a cell in the shell as Jupyter would, recording stdout and stderr writes with their times."""

    def run(source: str) -> CellRun:
        out, err = Recorder(), Recorder()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = ipython.run_cell(source, store_history=False)
        return CellRun(result, out, err)

    return run
