"""The README's SDK launch example, run exactly as written (the code block is read from README.md), from
the root of the repository as it says: ``workdir="."`` takes the code to both ranks and torchrun runs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devservers_sdk.client import DevServerClient
from tests.platform_fixture import Platform

REPO = Path(__file__).resolve().parents[2]


def readme_launch_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    found = [block for block in blocks if "client.launch(" in block]
    assert len(found) == 1, "README.md should hold exactly one Python block with client.launch("
    return found[0]


@pytest.fixture
def namespace_client(platform: Platform, namespace_kubeconfig: str,
                     pods_use_this_python: None) -> Iterator[DevServerClient]:
    with DevServerClient(kubeconfig=namespace_kubeconfig) as client:
        yield client
        for server in client.list():
            client.delete(server.name, wait=True, timeout=120)


def test_the_readme_launch_example_runs_as_written(namespace_client: DevServerClient,
                                                   namespace_kubeconfig: str) -> None:
    example = readme_launch_example()
    assert 'workdir="."' in example
    env = {**os.environ, "KUBECONFIG": namespace_kubeconfig,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", example], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "{0: 0, 1: 0}", result.stdout[-2000:]
    # Two processes per pod: each line says the global rank of its process and its node (issue 14).
    assert any(line.startswith("[rank 0 node 0] ") for line in lines), result.stdout[-2000:]
    assert any(line.startswith("[rank 3 node 1] ") for line in lines), result.stdout[-2000:]
    # The code really came along: the script is in the synced copy of this repository on rank 1.
    synced = namespace_client.exec("ddp", f"test -f ~/{REPO.name}/examples/distributed/train_ddp.py && echo yes",
                                   rank=1)
    assert synced.stdout == "yes\n"
