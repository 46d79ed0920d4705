"""A JupyterLab kernel and the idle policy (issue 16): while a kernel of ``devctl jupyter``'s server is busy,
an idle timeout does not stop the DevServer; once it is idle with nobody connected, it does.

The operator's in-pod probe asks JupyterLab itself (``/api/kernels``, busy or connected), as the Kubeflow
notebook culler does; the kernel here sleeps, so no CPU would have shown it. The idle clock is scaled
(conftest): ``idleTimeout: 300`` is 15 s here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devservers_sdk.client import DevServerClient
from tests.connect.jupyter_kernel import Kernel, api
from tests.operator.conftest import OperatedNamespace, stays
from tests.platform_fixture import this_python_first_on_path

SLEEP = 45  # long enough for a slow probe on a loaded machine to find it busy with time to spare


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
            kernel.send(f"import time; time.sleep({SLEEP})")
            busy_until = time.time() + SLEEP
            kernel.disconnect()  # nobody connected: only the busy state keeps it
            assert [k["execution_state"] for k in api(address.url, jupyter.token, "/api/kernels")] == ["busy"]
    # The idle policy is switched on now that the kernel is busy: JupyterLab's start-up alone can outlast
    # 15 s on a loaded machine, and only the kernel is under test.
    operated.patch("nb", {"spec": {"lifecycle": {"autoShutdown": True}}})

    # The idle deadline has passed by now (15 s after the last SDK activity); the probe must find the busy kernel
    # and keep the server running while it stays busy.
    server = operated.wait_phase("nb", "Running", check=lambda s: s["status"].get("lastActivitySource") == "session",
                             timeout=SLEEP)
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "False", idle
    still_busy = busy_until - time.time() - 3
    assert still_busy > 3, "the machine was too slow to see the kernel busy in time; nothing was proven"
    stays(lambda: operated.status("nb").get("phase") == "Running", still_busy,
          message="the DevServer was stopped while its kernel was busy")

    server = operated.wait_phase("nb", "Stopped", check=_stopped_for_idle, timeout=SLEEP + 120)
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert "the in-pod probe saw 0 interactive session(s)" in idle["message"], idle
