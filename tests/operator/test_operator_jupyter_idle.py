"""A JupyterLab kernel and the idle policy (issue 16): while a kernel of ``devctl jupyter``'s server is busy,
an idle timeout does not stop the DevServer; once it is idle with nobody connected, it does.

The operator's in-pod probe asks JupyterLab itself (``/api/kernels``, busy or connected), as the Kubeflow
notebook culler does; the kernel here sleeps, so no CPU would have shown it. The idle clock is scaled
(conftest): ``idleTimeout: 300`` is 15 s here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.connect.jupyter_kernel import Kernel, api
from tests.operator.conftest import OperatedNamespace, stays
from tests.platform_fixture import this_python_first_on_path

RELEASE = "~/.devservers-test-kernel-may-stop"  # the busy cell ends once this file exists
BUSY_CELL = f"import os, time\nwhile not os.path.exists(os.path.expanduser({RELEASE!r})): time.sleep(0.2)"
IDLE_DEADLINE = 15  # idleTimeout 300 on the scaled clock


@pytest.fixture
def pods_use_this_python() -> Iterator[None]:
    """The pods' python3 is this interpreter's (the image's Python with JupyterLab)."""
    with this_python_first_on_path():
        yield


def _stopped_for_idle(server: dict[str, Any]) -> bool:
    status = server["status"]
    return status.get("stoppedReason") == "Idle" and not status.get("pods")


@pytest.mark.slow
def test_a_busy_kernel_keeps_the_server_and_an_idle_one_lets_it_stop(operated: OperatedNamespace,
                                                                     pods_use_this_python: None) -> None:
    operated.create("nb", persistentHomeSize="1Gi", lifecycle={"idleTimeout": 300, "autoShutdown": False})
    operated.wait_phase("nb", "Running", timeout=120)
    with DevServerClient(namespace=operated.namespace, kubeconfig=operated.kubeconfig) as client:
        # This interpreter, by path: the real control plane's node agent took its PATH before this test began.
        jupyter = client.jupyter("nb", python=sys.executable)
        with client.port_forward("nb", jupyter.port) as address:
            kernel = Kernel(address.url, jupyter.token)
            assert kernel.run("print('ready')") == "ready\n"
            # Busy until the test releases it, not for a fixed time: a loaded machine cannot outlast it.
            kernel.send(BUSY_CELL)
            kernel.disconnect()  # nobody connected: only the busy state keeps it
            wait_for(lambda: [k["execution_state"] for k in api(address.url, jupyter.token, "/api/kernels")]
                     == ["busy"], timeout=60, message="JupyterLab reporting the kernel busy with the cell")
    # The idle policy is switched on now that the kernel is busy: JupyterLab's start-up alone can outlast
    # 15 s on a loaded machine, and only the kernel is under test.
    operated.patch("nb", {"spec": {"lifecycle": {"autoShutdown": True}}})

    # The probe must find the busy kernel, and keep the server running past the idle deadline while it stays busy.
    server = operated.wait_phase("nb", "Running", check=lambda s: s["status"].get("lastActivitySource") == "session",
                                 timeout=120)
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "False", idle
    stays(lambda: operated.status("nb").get("phase") == "Running", IDLE_DEADLINE + 5,
          message="the DevServer was stopped while its kernel was busy")

    with DevServerClient(namespace=operated.namespace, kubeconfig=operated.kubeconfig) as client:
        released = client.exec("nb", ["sh", "-c", f"touch {RELEASE}"])
        assert released.returncode == 0, released.stderr
    server = operated.wait_phase("nb", "Stopped", check=_stopped_for_idle, timeout=180)
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert "the in-pod probe saw 0 interactive session(s)" in idle["message"], idle
