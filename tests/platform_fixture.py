"""The whole product on the session's cluster: CRDs, the sample flavors and a running operator.

Front ends (devctl, magics, notebooks, launch) test end to end against this one platform. The operator
runs as a real process, ``python -m devservers_operator``, exactly as it is deployed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle

REPO = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@dataclass
class Platform:
    kubeconfig: str
    operator: subprocess.Popen[bytes] | None
    operator_log: Path


def apply_crds_and_flavors(kubeconfig: str) -> None:
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(REPO / "crds")],
                   check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "get", "devserverflavors"],
                         capture_output=True, timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail("the DevServer CRDs were not served within 30s")
        time.sleep(0.1)
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(REPO / "examples" / "flavors")],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def platform(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    apply_crds_and_flavors(cluster.kubeconfig)
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    if cluster.emulator is None and os.environ.get("DEVSERVERS_TEST_EXTERNAL_OPERATOR"):
        yield Platform(cluster.kubeconfig, None, log_path)
        return
    # No liveness endpoint: a fixed port would collide with other operators on the same machine.
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONPATH": str(REPO / "operator"),
           "DEVSERVERS_LIVENESS": ""}
    with log_path.open("wb") as log:
        operator = subprocess.Popen([sys.executable, "-m", "devservers_operator"], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Platform(cluster.kubeconfig, operator, log_path)
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
